//! The state file's content.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Attrs, Value};

/// The state file format this meshform writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Everything meshform knows about one stack's deployed resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format of the file; files with a newer version are refused.
    pub format_version: u32,
    /// Random id given when the state is first created and never changed:
    /// tells apart two states of the same stack name.
    pub lineage: String,
    /// Incremented by every write.
    pub serial: u64,
    /// The stack's name.
    pub stack: String,
    /// Managed resources by address.
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceState>,
    /// Creates that were started but not recorded as finished, by address.
    #[serde(default)]
    pub pending: BTreeMap<String, PendingCreate>,
    /// The stack's outputs from the last apply, by name.
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
}

impl State {
    /// An empty state for `stack`: a fresh random (uuid v4) lineage, serial 0.
    pub fn new(stack: &str) -> State {
        State {
            format_version: FORMAT_VERSION,
            lineage: uuid::Uuid::new_v4().to_string(),
            serial: 0,
            stack: stack.to_string(),
            resources: BTreeMap::new(),
            pending: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }
}

/// What follows a resource's address in the address state keeps the old
/// object of a create-before-destroy replacement under, from just before the
/// new object is created until the old one is deleted: `policy~deposed`
/// (then `policy~deposed-2`, ... if one is left already). Resource names
/// cannot hold `~`, so it never clashes with a stack's resource; a stack
/// never declares it, so a plan deletes what an interrupted run left there.
pub const DEPOSED_SUFFIX: &str = "~deposed";

impl State {
    /// A free address for the old object of `address` (see [`DEPOSED_SUFFIX`]).
    pub fn free_deposed_address(&self, address: &str) -> String {
        let first = format!("{address}{DEPOSED_SUFFIX}");
        (1..)
            .map(|n| {
                if n == 1 {
                    first.clone()
                } else {
                    format!("{first}-{n}")
                }
            })
            .find(|a| !self.resources.contains_key(a) && !self.pending.contains_key(a))
            .unwrap_or(first)
    }

    /// The cloud ids state tracks for `address`: its object, and old objects
    /// of it kept under deposed addresses.
    pub fn ids_tracked_for(&self, address: &str) -> Vec<String> {
        let deposed = format!("{address}{DEPOSED_SUFFIX}");
        self.resources
            .iter()
            .filter(|(a, _)| *a == address || a.starts_with(&deposed))
            .map(|(_, r)| r.id.clone())
            .collect()
    }
}

/// The address a deposed address (see [`DEPOSED_SUFFIX`]) keeps an old
/// object of; `None` for any other address.
pub fn deposed_of(address: &str) -> Option<&str> {
    address.split_once(DEPOSED_SUFFIX).map(|(a, _)| a)
}

/// A managed resource as last applied or refreshed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// The resource type name (for example `aws_vpc`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The cloud id.
    pub id: String,
    /// Configurable and computed attributes.
    pub attributes: Attrs,
    /// Addresses of the resources this one depends on, so that it can be
    /// destroyed in the right order after it left the configuration.
    #[serde(default)]
    pub dependencies: Vec<String>,
}

/// A create that was started: recorded BEFORE the cloud call so that a crash
/// between the call and the state write can be resolved on the next run (by
/// looking the resource up by its tags / natural key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCreate {
    /// The resource type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Idempotency token, passed to the API as client token where it has one.
    pub token: String,
    /// When the create started (RFC 3339, UTC).
    pub started_at: String,
    /// The fully known desired attributes the create was called with.
    pub desired: Attrs,
    /// Addresses of the resources this one depends on.
    #[serde(default)]
    pub dependencies: Vec<String>,
}

impl PendingCreate {
    /// A pending create of `kind` starting now, with a fresh random (uuid v4)
    /// token.
    pub fn new(kind: &str, desired: Attrs, dependencies: Vec<String>) -> PendingCreate {
        PendingCreate {
            kind: kind.to_string(),
            token: uuid::Uuid::new_v4().to_string(),
            started_at: now_rfc3339(),
            desired,
            dependencies,
        }
    }
}

/// The current time as RFC 3339 UTC with second precision, for example
/// `2026-11-22T10:00:00Z`.
pub fn now_rfc3339() -> String {
    format_rfc3339(SystemTime::now())
}

/// Formats a time as RFC 3339 UTC with second precision (fractions are
/// dropped). Times outside years 1..=9999 are clamped.
pub fn format_rfc3339(time: SystemTime) -> String {
    // Whole seconds since the epoch, rounded down (also before the epoch).
    let secs: i64 = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -whole.saturating_add(i64::from(d.subsec_nanos() > 0))
        }
    };
    // 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z
    let secs = secs.clamp(-62_135_596_800, 253_402_300_799);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based month
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: i64) -> String {
        let t = if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        };
        format_rfc3339(t)
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(1_795_341_600), "2026-11-22T10:00:00Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(at(-1), "1969-12-31T23:59:59Z");
        assert_eq!(at(-86_400 * 365), "1969-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(UNIX_EPOCH - Duration::from_millis(500)),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(
            format_rfc3339(UNIX_EPOCH + Duration::from_millis(1_999)),
            "1970-01-01T00:00:01Z"
        );
        assert_eq!(at(i64::MAX / 2), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn new_state_is_empty_with_fresh_lineage() {
        let a = State::new("dev");
        let b = State::new("dev");
        assert_eq!(a.format_version, FORMAT_VERSION);
        assert_eq!(a.serial, 0);
        assert_eq!(a.stack, "dev");
        assert!(a.resources.is_empty() && a.pending.is_empty() && a.outputs.is_empty());
        assert_ne!(a.lineage, b.lineage);
        assert!(uuid::Uuid::parse_str(&a.lineage).is_ok());
    }

    #[test]
    fn json_field_names_and_defaults() {
        let text = r#"{"format_version":1,"lineage":"l","serial":3,"stack":"s",
            "resources":{"aws_vpc.main":{"type":"aws_vpc","id":"vpc-1","attributes":{"cidr_block":"10.0.0.0/16"}}}}"#;
        let state: State = serde_json::from_str(text).expect("parses");
        let vpc = &state.resources["aws_vpc.main"];
        assert_eq!(vpc.kind, "aws_vpc");
        assert!(vpc.dependencies.is_empty());
        assert!(state.pending.is_empty() && state.outputs.is_empty());
        let back = serde_json::to_value(&state).expect("serializes");
        assert_eq!(back["resources"]["aws_vpc.main"]["type"], "aws_vpc");
    }
}
