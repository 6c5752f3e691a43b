//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which
//! client-go's typed clients (kubectl create, Helm's release storage) send
//! for built-in kinds and do not retry as JSON. The fake decodes them into
//! the JSON a JSON client would have sent and handles that as it handles
//! JSON; it answers in JSON, which those clients also accept.
//!
//! A body is the 4 bytes `k8s\0` and a `runtime.Unknown` message:
//! typeMeta (1: apiVersion 1, kind 2), raw (2: the typed message),
//! contentEncoding (3), contentType (4). The typed message is read with
//! the table in `proto/k8s-schema.txt` (see `schema.rs`), whose messages
//! come from Kubernetes' `generated.proto` files.

mod json;
mod schema;
mod special;
#[cfg(test)]
mod tests;
mod wire;

use super::kinds::ResourceType;
use super::status::ApiError;
use schema::Schema;
use serde_json::{Value, json};
use std::fmt;
use wire::{Reader, WireValue};

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The prefix of every Kubernetes Protobuf body.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// Why a body could not be decoded, worded as Go's decoders word it.
#[derive(Clone, Debug, PartialEq)]
pub enum DecodeError {
    UnexpectedEof,
    IntegerOverflow,
    InvalidLength,
    IllegalTag { field: u64, wire: u8 },
    IllegalWireType(u8),
    WrongWireType { wire: u8, field: String },
    Empty,
    NotProtobuf,
    EmptyBody,
    MissingKind { api_version: String, kind: String },
    MissingVersion { api_version: String, kind: String },
    NotRegistered { api_version: String, kind: String },
    ContentEncoding(String),
    EmbeddedJson { what: String, error: String },
    Schema(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnexpectedEof => write!(f, "unexpected EOF"),
            DecodeError::IntegerOverflow => write!(f, "proto: integer overflow"),
            DecodeError::InvalidLength => write!(f, "proto: negative length found during unmarshaling"),
            DecodeError::IllegalTag { field, wire } => {
                write!(f, "proto: illegal tag {field} (wire type {wire})")
            }
            DecodeError::IllegalWireType(w) => write!(f, "proto: illegal wireType {w}"),
            DecodeError::WrongWireType { wire, field } => {
                write!(f, "proto: wrong wireType = {wire} for field {field}")
            }
            DecodeError::Empty => write!(f, "empty data"),
            DecodeError::NotProtobuf => write!(
                f,
                "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
            ),
            DecodeError::EmptyBody => write!(f, "empty body"),
            DecodeError::MissingKind { api_version, kind } => write!(
                f,
                "Object 'Kind' is missing in 'runtime.TypeMeta{{APIVersion:{api_version:?}, Kind:{kind:?}}}'"
            ),
            DecodeError::MissingVersion { api_version, kind } => write!(
                f,
                "Object 'apiVersion' is missing in 'runtime.TypeMeta{{APIVersion:{api_version:?}, Kind:{kind:?}}}'"
            ),
            DecodeError::NotRegistered { api_version, kind } => write!(
                f,
                "no kind {kind:?} is registered for version {api_version:?} in the fake kube server's protobuf schema"
            ),
            DecodeError::ContentEncoding(e) => write!(
                f,
                "the fake kube server does not read protobuf bodies with contentEncoding {e:?}"
            ),
            DecodeError::EmbeddedJson { what, error } => write!(f, "{what}: {error}"),
            DecodeError::Schema(e) => write!(f, "the fake kube server's protobuf schema is unreadable: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A body that failed to decode, with the kind its envelope named when
/// decoding got that far (the real server's message depends on it).
#[derive(Debug)]
pub struct BodyError {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub error: DecodeError,
}

/// The envelope's apiVersion, kind and typed message, with an empty
/// apiVersion or kind taken from `default`, as the real decoder does with
/// the kind the path implies.
fn envelope<'a>(
    bytes: &'a [u8],
    default: Option<(&str, &str)>,
) -> Result<(String, String, &'a [u8]), DecodeError> {
    let data = match bytes {
        [] => return Err(DecodeError::Empty),
        b if !b.starts_with(&MAGIC) => return Err(DecodeError::NotProtobuf),
        b if b.len() == MAGIC.len() => return Err(DecodeError::EmptyBody),
        b => &b[MAGIC.len()..],
    };
    let (mut api_version, mut kind, mut raw, mut encoding) =
        (String::new(), String::new(), &[][..], String::new());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut r = Reader::new(data);
    while let Some((n, v)) = r.field()? {
        match (n, v) {
            (1, WireValue::Bytes(type_meta)) => {
                let mut t = Reader::new(type_meta);
                while let Some((n, v)) = t.field()? {
                    match (n, v) {
                        (1, WireValue::Bytes(b)) => api_version = text(b),
                        (2, WireValue::Bytes(b)) => kind = text(b),
                        (1, v) => return Err(wrong(v, "APIVersion")),
                        (2, v) => return Err(wrong(v, "Kind")),
                        _ => {}
                    }
                }
            }
            (2, WireValue::Bytes(b)) => raw = b,
            (3, WireValue::Bytes(b)) => encoding = text(b),
            (4, WireValue::Bytes(_)) => {}
            (1, v) => return Err(wrong(v, "TypeMeta")),
            (2, v) => return Err(wrong(v, "Raw")),
            (3, v) => return Err(wrong(v, "ContentEncoding")),
            (4, v) => return Err(wrong(v, "ContentType")),
            _ => {}
        }
    }
    if !encoding.is_empty() {
        return Err(DecodeError::ContentEncoding(encoding));
    }
    if let Some((default_version, default_kind)) = default {
        if api_version.is_empty() {
            api_version = default_version.into();
        }
        if kind.is_empty() {
            kind = default_kind.into();
        }
    }
    Ok((api_version, kind, raw))
}

fn wrong(v: WireValue<'_>, field: &str) -> DecodeError {
    DecodeError::WrongWireType {
        wire: v.wire_type(),
        field: field.into(),
    }
}

/// The typed message an envelope names, as JSON with its apiVersion and
/// kind.
fn typed(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, DecodeError> {
    let type_meta = || (api_version.to_string(), kind.to_string());
    if kind.is_empty() {
        let (api_version, kind) = type_meta();
        return Err(DecodeError::MissingKind { api_version, kind });
    }
    if api_version.is_empty() {
        let (api_version, kind) = type_meta();
        return Err(DecodeError::MissingVersion { api_version, kind });
    }
    let schema = Schema::get()?;
    let name = schema.resolve(api_version, kind).ok_or_else(|| {
        let (api_version, kind) = type_meta();
        DecodeError::NotRegistered { api_version, kind }
    })?;
    let mut obj = json::message(schema, &name, raw)?;
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
    Ok(obj)
}

/// An embedded Protobuf object (inside a RawExtension).
fn decode_envelope(bytes: &[u8], default: Option<(&str, &str)>) -> Result<Value, DecodeError> {
    let (api_version, kind, raw) = envelope(bytes, default)?;
    typed(&api_version, &kind, raw)
}

/// A whole Protobuf body as JSON.
pub fn decode(bytes: &[u8], default: Option<(&str, &str)>) -> Result<Value, BodyError> {
    let (api_version, kind, raw) = envelope(bytes, default).map_err(|error| BodyError {
        api_version: None,
        kind: None,
        error,
    })?;
    typed(&api_version, &kind, raw).map_err(|error| BodyError {
        api_version: Some(api_version),
        kind: Some(kind),
        error,
    })
}

/// The first bytes of a body for a message, as the real server quotes
/// them: hex, or text when it looks like JSON.
fn summarize(body: &[u8]) -> String {
    const MAX: usize = 30;
    let more = if body.len() > MAX { " ..." } else { "" };
    let head = &body[..body.len().min(MAX)];
    match body.first() {
        None => "<empty>".into(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(head)),
        Some(_) => format!(
            "{}{more}",
            head.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

/// A Protobuf body for an object of type `ty` (create, update), as JSON;
/// an undecodable one gets the real server's 400.
pub fn request_body(body: &[u8], ty: &ResourceType) -> Result<Value, ApiError> {
    if ty.custom {
        // Custom resources have no Protobuf form on the real server either.
        return Err(ApiError::unsupported_media_type(
            MEDIA_TYPE,
            "application/json, application/yaml",
        ));
    }
    let api_version = ty.api_version();
    decode(body, Some((&api_version, &ty.kind))).map_err(|e| match (&e.api_version, &e.kind) {
        (Some(v), Some(k)) => {
            let version = v.rsplit('/').next().unwrap_or(v);
            ApiError::bad_request(format!(
                "{k} in version {version:?} cannot be handled as a {}: {}",
                ty.kind, e.error
            ))
        }
        _ => ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): {} ({})",
            ty.kind,
            e.error,
            summarize(body)
        )),
    })
}

/// A Protobuf DeleteOptions body (DELETE), as JSON. The real server takes
/// meta.k8s.io/v1 DeleteOptions or any group's own.
pub fn delete_options(body: &[u8]) -> Result<Value, ApiError> {
    let options = decode(body, Some(("meta.k8s.io/v1", "DeleteOptions")))
        .map_err(|e| ApiError::bad_request(e.error.to_string()))?;
    if options["kind"] != "DeleteOptions" {
        return Err(ApiError::bad_request(
            "decoded object cannot be converted to DeleteOptions",
        ));
    }
    Ok(options)
}

/// A body for the request log: JSON as it is, Protobuf decoded.
pub fn logged_body(content_type: Option<&str>, body: &[u8]) -> Option<Value> {
    if body.starts_with(&MAGIC) && content_type.is_some_and(|t| t.starts_with(MEDIA_TYPE)) {
        decode(body, None).ok()
    } else {
        serde_json::from_slice(body).ok()
    }
}

/// Whether an Accept header lets the fake answer JSON (all it writes): no
/// header, or any of `application/json` (with any parameters),
/// `application/*`, `*/*`.
pub fn accepts_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return true;
    };
    accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        matches!(media.as_str(), "application/json" | "application/*" | "*/*")
    })
}

/// 406 for an Accept header that allows nothing the fake writes, worded
/// as the real server's (which lists JSON, YAML and Protobuf; the fake
/// writes only JSON).
pub fn not_acceptable() -> ApiError {
    ApiError::new(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json",
    )
}
