//! A typed message → the JSON Go's `encoding/json` writes for the Go struct
//! the message decodes into, so a Protobuf body becomes exactly what a JSON
//! client would have sent:
//!
//! * Go writes non-pointer fields to the wire even when zero, so a zero
//!   value means nothing: it is left out when the field is `omitempty`
//!   and kept otherwise (`containerPort: 0`), as encoding/json does.
//! * Pointer fields are on the wire only when set, so a present zero is
//!   kept (`replicas: 0`); an absent one is left out (`omitempty`) or
//!   `null`.
//! * A non-pointer struct is always written (encoding/json never omits
//!   structs): `spec: {}`, `creationTimestamp: null` (a zero Time).
//! * Empty repeated fields and maps decode to nil: left out when
//!   `omitempty`, `null` otherwise.
//! * Embedded structs without a JSON name are inlined into the parent.
//! * Unknown field numbers (a newer client) are skipped, as Go does.

use super::DecodeError;
use super::schema::{Cardinality, Field, Message, Schema, Type};
use super::special;
use super::wire::{Reader, WireValue};
use base64::Engine;
use serde_json::{Map, Value, json};

/// The JSON of message `name` (a table name, `core/v1.Secret`).
pub fn message(schema: &Schema, name: &str, bytes: &[u8]) -> Result<Value, DecodeError> {
    match name {
        "meta/v1.Time" => time(bytes, false),
        "meta/v1.MicroTime" => time(bytes, true),
        "meta/v1.Duration" => {
            let nanos = varint_field(bytes, 1, "duration")?.unwrap_or(0) as i64;
            Ok(json!(special::go_duration(nanos)))
        }
        // Both hold JSON text in field 1, which Go writes out as it is;
        // nil is `null`.
        "meta/v1.FieldsV1" => embedded_json(bytes_field(bytes, 1, "Raw")?, name),
        "runtime.RawExtension" => match bytes_field(bytes, 1, "raw")? {
            // A Protobuf-encoded object inside (the `k8s\0` envelope).
            Some(raw) if raw.starts_with(&super::MAGIC) => super::decode_envelope(raw, None),
            raw => embedded_json(raw, name),
        },
        "api/resource.Quantity" | "api/resource.QuantityValue" => {
            // The canonical string the client wrote; a zero Quantity is "0".
            let s = string_field(bytes, 1, "string")?.filter(|s| !s.is_empty());
            Ok(json!(s.unwrap_or_else(|| "0".into())))
        }
        "util/intstr.IntOrString" => {
            // type 1 is String; 0 (Int) otherwise.
            if varint_field(bytes, 1, "type")? == Some(1) {
                Ok(json!(string_field(bytes, 3, "strVal")?.unwrap_or_default()))
            } else {
                Ok(json!(varint_field(bytes, 2, "intVal")?.unwrap_or(0) as i32))
            }
        }
        // A `[]string` wrapped so Protobuf can tell nil from empty.
        "meta/v1.Verbs" => {
            let schema_msg = schema
                .message(name)
                .ok_or_else(|| DecodeError::Schema(format!("no message {name}")))?;
            let obj = object(schema, schema_msg, bytes)?;
            Ok(obj.get("items").cloned().unwrap_or(Value::Null))
        }
        _ => {
            let msg = schema
                .message(name)
                .ok_or_else(|| DecodeError::Schema(format!("no message {name}")))?;
            object(schema, msg, bytes)
        }
    }
}

/// The last value of field `number` (Protobuf's rule for a repeated
/// singular field), if any.
fn last(bytes: &[u8], number: u32) -> Result<Option<WireValue<'_>>, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut found = None;
    while let Some((n, v)) = r.field()? {
        if n == number {
            found = Some(v);
        }
    }
    Ok(found)
}

fn wrong(v: WireValue<'_>, field: &str) -> DecodeError {
    DecodeError::WrongWireType {
        wire: v.wire_type(),
        field: field.into(),
    }
}

fn varint_field(bytes: &[u8], number: u32, field: &str) -> Result<Option<u64>, DecodeError> {
    match last(bytes, number)? {
        None => Ok(None),
        Some(WireValue::Varint(x)) => Ok(Some(x)),
        Some(v) => Err(wrong(v, field)),
    }
}

fn bytes_field<'a>(bytes: &'a [u8], number: u32, field: &str) -> Result<Option<&'a [u8]>, DecodeError> {
    match last(bytes, number)? {
        None => Ok(None),
        Some(WireValue::Bytes(b)) => Ok(Some(b)),
        Some(v) => Err(wrong(v, field)),
    }
}

fn string_field(bytes: &[u8], number: u32, field: &str) -> Result<Option<String>, DecodeError> {
    Ok(bytes_field(bytes, number, field)?.map(|b| String::from_utf8_lossy(b).into_owned()))
}

/// metav1.Time / MicroTime: an empty message is the zero time, which Go
/// writes as `null`; Time drops the nanoseconds.
fn time(bytes: &[u8], micro: bool) -> Result<Value, DecodeError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let seconds = varint_field(bytes, 1, "seconds")?.unwrap_or(0) as i64;
    if micro {
        let nanos = varint_field(bytes, 2, "nanos")?.unwrap_or(0) as i32;
        Ok(json!(special::rfc3339_micro(seconds, nanos)))
    } else {
        Ok(json!(special::rfc3339(seconds)))
    }
}

fn embedded_json(raw: Option<&[u8]>, what: &str) -> Result<Value, DecodeError> {
    match raw {
        None | Some([]) => Ok(Value::Null),
        Some(raw) => serde_json::from_slice(raw).map_err(|e| DecodeError::EmbeddedJson {
            what: what.into(),
            error: e.to_string(),
        }),
    }
}

/// A scalar of type `ty` from one wire value.
fn scalar(ty: &Type, field: &str, v: WireValue<'_>) -> Result<Value, DecodeError> {
    Ok(match (ty, v) {
        (Type::String, WireValue::Bytes(b)) => json!(String::from_utf8_lossy(b)),
        // Go writes []byte as standard base64.
        (Type::Bytes, WireValue::Bytes(b)) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        (Type::Bool, WireValue::Varint(x)) => json!(x != 0),
        // Negative int32s are sign-extended to ten bytes on the wire;
        // truncating gives the value back, as Go's decoder does.
        (Type::Int32, WireValue::Varint(x)) => json!(x as i32),
        (Type::Int64, WireValue::Varint(x)) => json!(x as i64),
        (Type::Uint32, WireValue::Varint(x)) => json!(x as u32),
        (Type::Uint64, WireValue::Varint(x)) => json!(x),
        (Type::Double, WireValue::Fixed64(x)) => json!(f64::from_bits(x)),
        (Type::Float, WireValue::Fixed32(x)) => json!(f32::from_bits(x)),
        (_, v) => return Err(wrong(v, field)),
    })
}

/// The value Go holds for a scalar that was not on the wire.
fn zero(ty: &Type) -> Value {
    match ty {
        Type::String => json!(""),
        // A nil []byte.
        Type::Bytes | Type::Message(_) => Value::Null,
        Type::Bool => json!(false),
        Type::Double | Type::Float => json!(0.0),
        _ => json!(0),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

/// The elements one wire value of a repeated field holds: one, or for a
/// packed repeated number (a length-delimited run) as many as it holds.
fn repeated(schema: &Schema, field: &Field, v: WireValue<'_>) -> Result<Vec<Value>, DecodeError> {
    match (&field.ty, v) {
        (Type::Message(m), WireValue::Bytes(b)) => Ok(vec![message(schema, m, b)?]),
        (Type::String | Type::Bytes, v) => Ok(vec![scalar(&field.ty, &field.json, v)?]),
        (ty, WireValue::Bytes(packed)) => {
            let mut r = Reader::new(packed);
            let mut out = vec![];
            while !r.at_end() {
                let v = match ty {
                    Type::Double => WireValue::Fixed64(r.fixed64()?),
                    Type::Float => WireValue::Fixed32(r.fixed32()?),
                    _ => WireValue::Varint(r.varint()?),
                };
                out.push(scalar(ty, &field.json, v)?);
            }
            Ok(out)
        }
        (ty, v) => Ok(vec![scalar(ty, &field.json, v)?]),
    }
}

/// One map entry: a message with the key as field 1 and the value as
/// field 2, either of which may be absent (then zero).
fn entry(schema: &Schema, field: &Field, v: WireValue<'_>) -> Result<(String, Value), DecodeError> {
    let WireValue::Bytes(b) = v else {
        return Err(wrong(v, &field.json));
    };
    let key_type = field.key.clone().unwrap_or(Type::String);
    let key = match last(b, 1)? {
        Some(k) => scalar(&key_type, &field.json, k)?,
        None => zero(&key_type),
    };
    let value = match (&field.ty, last(b, 2)?) {
        (Type::Message(m), None) => message(schema, m, &[])?,
        (Type::Message(m), Some(WireValue::Bytes(b))) => message(schema, m, b)?,
        (ty, Some(v)) => scalar(ty, &field.json, v)?,
        // Go's decoder starts a map's []byte value empty, not nil.
        (Type::Bytes, None) => json!(""),
        (ty, None) => zero(ty),
    };
    let key = match key {
        Value::String(s) => s,
        other => other.to_string(),
    };
    Ok((key, value))
}

/// A message with fields: a JSON object.
fn object(schema: &Schema, msg: &Message, bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut slots: Vec<Vec<WireValue<'_>>> = vec![vec![]; msg.fields.len()];
    let mut r = Reader::new(bytes);
    while let Some((number, v)) = r.field()? {
        if let Some(i) = msg.fields.iter().position(|f| f.number == number) {
            slots[i].push(v);
        }
    }
    let mut out = Map::new();
    let mut inlined = vec![];
    for (field, values) in msg.fields.iter().zip(slots) {
        let value = match field.cardinality {
            Cardinality::Map => {
                let mut entries = Map::new();
                for v in values {
                    let (k, v) = entry(schema, field, v)?;
                    entries.insert(k, v);
                }
                (!entries.is_empty()).then_some(Value::Object(entries))
            }
            Cardinality::Repeated => {
                let mut items = vec![];
                for v in values {
                    items.extend(repeated(schema, field, v)?);
                }
                (!items.is_empty()).then_some(Value::Array(items))
            }
            Cardinality::Single => match (&field.ty, values.last().copied()) {
                (_, None) if field.pointer => None,
                (Type::Message(m), None) => Some(message(schema, m, &[])?),
                (Type::Message(m), Some(WireValue::Bytes(b))) => Some(message(schema, m, b)?),
                (ty, Some(v)) => Some(scalar(ty, &field.json, v)?),
                (ty, None) => Some(zero(ty)),
            },
        };
        if field.inline {
            inlined.extend(value);
            continue;
        }
        let keep = match (&value, field.cardinality) {
            // nil: left out, or null.
            (None, _) => !field.omitempty,
            // encoding/json never omits a struct.
            (Some(_), Cardinality::Single) if matches!(field.ty, Type::Message(_)) => true,
            (Some(v), Cardinality::Single) => field.pointer || !field.omitempty || !is_zero(v),
            (Some(_), _) => true,
        };
        if keep {
            out.insert(field.json.clone(), value.unwrap_or(Value::Null));
        }
    }
    // An embedded struct's fields, where the parent has none of that name
    // (Go's rule: the shallower field wins).
    for v in inlined {
        if let Value::Object(m) = v {
            for (k, v) in m {
                out.entry(k).or_insert(v);
            }
        }
    }
    Ok(Value::Object(out))
}
