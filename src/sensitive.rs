//! Sensitive values: secrets (a Redis AUTH token, a password put in a
//! Kubernetes Secret) that never show and never reach state.
//!
//! A value is sensitive when it is the value of a variable declared
//! `sensitive = true`, or of an attribute whose schema says
//! [`AttrSchema::sensitive`](crate::provider::AttrSchema). Such values are
//! registered here as the stack is loaded and planned, and then:
//!
//! - **Shown as `(sensitive)`**: the command line passes everything it
//!   prints (plans, human and JSON; progress lines; logs; error messages)
//!   through [`redact`] / [`redact_value`], which replace every occurrence
//!   of a registered secret, and of its base64 form (a Secret's `data`).
//!   Secrets shorter than [`MIN_SUBSTRING`] characters are replaced only
//!   where a whole value equals them, not inside longer text, so a short
//!   secret does not blank out every word that contains it.
//! - **Kept out of state**: before a change is written (snapshot and
//!   journal alike), [`seal`] replaces each string holding a secret, and
//!   every value of a sensitive attribute, with a salted SHA-256 marker.
//!   The planner compares a marker with a desired value by hashing the
//!   desired value with the marker's salt ([`same`]), so a change shows as
//!   a change and no change as none, without the plaintext on disk.
//!
//! Planning stays pure in what it computes: registering a secret only
//! changes what output hides.

use std::borrow::Cow;
use std::sync::RwLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::{Attrs, Value};

/// What a sensitive value shows as.
pub const SHOWN: &str = "(sensitive)";

/// Secrets at least this long are also hidden inside longer text.
pub const MIN_SUBSTRING: usize = 6;

/// How a sealed value starts in state: `(sensitive sha256:<salt>:<digest>)`.
const MARKER_PREFIX: &str = "(sensitive sha256:";

/// The secrets registered in this process, longest first (so that a
/// secret containing another is replaced whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers the strings in `value` (at any depth) as secrets, with their
/// base64 forms.
pub fn register(value: &Value) {
    let mut found = Vec::new();
    collect_strings(value, &mut found);
    if found.is_empty() {
        return;
    }
    let Ok(mut secrets) = SECRETS.write() else { return };
    for s in found {
        let encoded = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        for candidate in [s, encoded] {
            if !candidate.is_empty() && !candidate.starts_with(MARKER_PREFIX) && !secrets.contains(&candidate)
            {
                secrets.push(candidate);
            }
        }
    }
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
}

/// Strings (numbers and booleans as their text) of `value`.
fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(m) => m.values().for_each(|i| collect_strings(i, out)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// Runs `f` over the registered secrets without copying them: every
/// printed line and every state write asks, so this stays cheap.
fn with_secrets<R>(f: impl FnOnce(&[String]) -> R) -> R {
    match SECRETS.read() {
        Ok(guard) => f(&guard),
        Err(poisoned) => f(&poisoned.into_inner()),
    }
}

/// `text` with every secret long enough replaced by [`SHOWN`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = with_secrets(|secrets| replace_secrets(text, secrets));
    // A sealed value reads as what it stands for.
    while let Some(start) = out.find(MARKER_PREFIX) {
        let Some(len) = out[start..].find(')') else { break };
        let mut text = out.into_owned();
        text.replace_range(start..start + len + 1, SHOWN);
        out = Cow::Owned(text);
    }
    out
}

/// `text` with each of `secrets` replaced: inside it when long enough,
/// or when it is the whole text.
fn replace_secrets<'t>(text: &'t str, secrets: &[String]) -> Cow<'t, str> {
    if secrets.iter().any(|s| s == text) {
        return Cow::Borrowed(SHOWN);
    }
    let mut out = Cow::Borrowed(text);
    for s in secrets.iter().filter(|s| s.chars().count() >= MIN_SUBSTRING) {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), SHOWN));
        }
    }
    out
}

/// Whether `text` holds a secret (whole, or inside it when long enough).
pub fn holds_secret(text: &str) -> bool {
    with_secrets(|secrets| {
        secrets
            .iter()
            .any(|s| s == text || (s.chars().count() >= MIN_SUBSTRING && text.contains(s.as_str())))
    })
}

/// `value` with every string [`redact`]ed, at any depth (object keys too).
pub fn redact_value(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(redact(s).into_owned()),
        Value::Array(items) => Value::Array(items.iter().map(redact_value).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (redact(k).into_owned(), redact_value(v)))
                .collect(),
        ),
        Value::Number(n) if holds_secret(&n.to_string()) => Value::String(SHOWN.to_string()),
        other => other.clone(),
    }
}

/// The marker state keeps instead of `plain`: a fresh salt and the SHA-256
/// of salt and value.
pub fn marker(plain: &str) -> String {
    let salt = uuid::Uuid::new_v4().simple().to_string();
    format!("{MARKER_PREFIX}{salt}:{})", digest(&salt, plain))
}

fn digest(salt: &str, plain: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(plain.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `value` is a marker standing for `plain`.
pub fn marker_matches(value: &str, plain: &str) -> bool {
    let Some(rest) = value
        .strip_prefix(MARKER_PREFIX)
        .and_then(|r| r.strip_suffix(')'))
    else {
        return false;
    };
    let Some((salt, hash)) = rest.split_once(':') else {
        return false;
    };
    digest(salt, plain) == hash
}

/// Registers, as secrets, the values in `live` that state recorded sealed
/// in `recorded` (same path, marker matching): a secret the cloud still
/// shows after the stack has moved to a new one is hidden too.
pub fn register_unsealed(recorded: &Attrs, live: &Attrs) {
    for (name, r) in recorded {
        if let Some(l) = live.get(name) {
            register_matching(r, l);
        }
    }
}

fn register_matching(recorded: &Value, live: &Value) {
    match (recorded, live) {
        (Value::String(m), Value::String(plain)) if is_marker(m) && marker_matches(m, plain) => {
            register(live);
        }
        (Value::String(m), other) if is_marker(m) && marker_matches(m, &other.to_string()) => register(other),
        (Value::Array(r), Value::Array(l)) => r.iter().zip(l).for_each(|(a, b)| register_matching(a, b)),
        (Value::Object(r), Value::Object(l)) => {
            for (k, v) in r {
                if let Some(w) = l.get(k) {
                    register_matching(v, w);
                }
            }
        }
        _ => {}
    }
}

/// Whether `s` is a marker.
pub fn is_marker(s: &str) -> bool {
    s.starts_with(MARKER_PREFIX)
}

/// `value` with every string holding a secret replaced by its marker.
pub fn seal_value(value: &Value) -> Value {
    match value {
        Value::String(s) if holds_secret(s) => Value::String(marker(s)),
        Value::Number(n) if holds_secret(&n.to_string()) => Value::String(marker(&n.to_string())),
        Value::Array(items) => Value::Array(items.iter().map(seal_value).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), seal_value(v))).collect()),
        other => other.clone(),
    }
}

/// Seals `attrs` of an object of type `kind` for state, in place: every
/// value of an attribute its schema marks sensitive becomes a marker of its
/// JSON text (a string: of the string itself), and every other string
/// holding a secret becomes a marker. Markers already there stay. With no
/// secret registered and no sensitive attribute, nothing is walked.
pub fn seal(kind: &str, attrs: &mut Attrs) {
    let def = crate::provider::kind_def(kind);
    let sensitive = |name: &str| def.and_then(|d| d.attr(name)).is_some_and(|a| a.sensitive);
    let any_secret = with_secrets(|secrets| !secrets.is_empty());
    if !any_secret && !attrs.keys().any(|name| sensitive(name)) {
        return;
    }
    for (name, v) in attrs.iter_mut() {
        let sealed = match &*v {
            Value::String(s) if is_marker(s) => continue,
            Value::Null => continue,
            Value::String(s) if sensitive(name) => Value::String(marker(s)),
            other if sensitive(name) => Value::String(marker(&other.to_string())),
            other if any_secret => seal_value(other),
            _ => continue,
        };
        *v = sealed;
    }
}

/// Whether a recorded or live value `before` and a desired value `after`
/// are the same, a marker in `before` matching the value it was made
/// from.
pub fn same(before: Option<&Value>, after: Option<&Value>) -> bool {
    match (before, after) {
        (Some(b), Some(a)) => same_value(b, a),
        (None, None) => true,
        _ => false,
    }
}

/// [`same`] for whole attribute maps: `recorded` may hold seals.
pub fn same_attrs(recorded: &Attrs, other: &Attrs) -> bool {
    recorded.len() == other.len()
        && recorded
            .iter()
            .all(|(k, v)| other.get(k).is_some_and(|w| same_value(v, w)))
}

fn same_value(before: &Value, after: &Value) -> bool {
    match (before, after) {
        (Value::String(m), Value::String(plain)) if is_marker(m) => marker_matches(m, plain),
        (Value::String(m), other) if is_marker(m) => marker_matches(m, &other.to_string()),
        (Value::Array(b), Value::Array(a)) => {
            b.len() == a.len() && b.iter().zip(a).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(b), Value::Object(a)) => {
            b.len() == a.len() && b.iter().all(|(k, v)| a.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => before == after,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // The registry is process-wide: each test uses its own secrets.

    #[test]
    fn registered_secrets_are_redacted_in_text_and_values_with_their_base64() {
        register(&json!("s3nt1nel-redact"));
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3nt1nel-redact");
        assert_eq!(redact("pw=s3nt1nel-redact;"), "pw=(sensitive);");
        assert_eq!(redact(&format!("data: {b64}")), "data: (sensitive)");
        let v = redact_value(&json!({"a": ["x s3nt1nel-redact y"], "s3nt1nel-redact": 1}));
        assert_eq!(v, json!({"a": ["x (sensitive) y"], "(sensitive)": 1}));
        assert_eq!(redact("nothing here"), "nothing here");
    }

    #[test]
    fn a_short_secret_hides_whole_values_only() {
        register(&json!("q7z"));
        assert_eq!(redact("q7z"), SHOWN);
        assert_eq!(redact("aq7zb"), "aq7zb");
        assert_eq!(redact_value(&json!(["q7z", "xq7z"])), json!([SHOWN, "xq7z"]));
    }

    #[test]
    fn sealed_values_match_what_they_were_made_from_and_nothing_else() {
        register(&json!("s3nt1nel-seal"));
        let attrs: Attrs = json!({"yaml": [{"stringData": {"password": "s3nt1nel-seal"}, "kind": "Secret"}]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut sealed = attrs.clone();
        seal("no.such.kind", &mut sealed);
        let text = serde_json::to_string(&sealed).unwrap_or_default();
        assert!(!text.contains("s3nt1nel-seal"), "{text}");
        assert_eq!(sealed["yaml"][0]["kind"], "Secret");
        assert!(same(sealed.get("yaml"), attrs.get("yaml")));
        let changed = json!([{"stringData": {"password": "other"}, "kind": "Secret"}]);
        assert!(!same(sealed.get("yaml"), Some(&changed)));
        // Sealing again keeps the marker (and its salt).
        let mut again = sealed.clone();
        seal("no.such.kind", &mut again);
        assert_eq!(again, sealed);
        // Two seals of one value differ (fresh salt), both match it.
        let (a, b) = (marker("x"), marker("x"));
        assert_ne!(a, b);
        assert!(marker_matches(&a, "x") && marker_matches(&b, "x") && !marker_matches(&a, "y"));
    }
}
