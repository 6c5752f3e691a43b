//! The operation journal: each state change as one appended line, so that a
//! write costs the size of the change, not of the whole state.
//!
//! A line is `<crc32 of the JSON, 8 lowercase hex digits> <JSON record>\n`;
//! the record names the state's lineage, the serial the change produces and
//! the [`Change`]. A crash during an append leaves at most the last line torn
//! (no newline, or a checksum that does not match): it is ignored. A bad line
//! before the last one is corruption.
//!
//! Replay applies, in order, the records whose serial follows the state's:
//! records at or below the state's serial are already in it (the snapshot
//! was replaced by a compaction whose journal removal did not happen), so
//! replaying a journal twice changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{PendingCreate, ResourceState, State};
use super::store::{sort_attrs, sort_value};
use crate::Value;

/// One change to a state, as recorded in the journal. Applying it is
/// deterministic given the state it follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// A create of `address` is about to be called.
    BeginCreate {
        /// The resource address.
        address: String,
        /// The intent.
        pending: PendingCreate,
    },
    /// A replacing create of `address` is about to be called: its object
    /// moves to `deposed`, resources depending on `address` also depend on
    /// `deposed`, and the intent is recorded.
    BeginReplacement {
        /// The resource address.
        address: String,
        /// Where the old object goes.
        deposed: String,
        /// The intent.
        pending: PendingCreate,
    },
    /// The create of `address` finished.
    FinishCreate {
        /// The resource address.
        address: String,
        /// What was created.
        resource: ResourceState,
    },
    /// The pending create of `address` is dropped.
    AbandonCreate {
        /// The resource address.
        address: String,
    },
    /// `address` holds `resource` (after an update or refresh).
    PutResource {
        /// The resource address.
        address: String,
        /// Its new record.
        resource: ResourceState,
    },
    /// Resources and pending creates are forgotten (after a delete).
    Forget {
        /// Resource addresses to drop.
        resources: Vec<String>,
        /// Pending creates to drop.
        pending: Vec<String>,
    },
    /// The outputs are replaced.
    SetOutputs {
        /// The new outputs.
        outputs: BTreeMap<String, Value>,
    },
    /// Any other change, as the entries it sets (`Some`) or removes (`None`).
    Diff {
        /// Changed resources.
        #[serde(default)]
        resources: BTreeMap<String, Option<ResourceState>>,
        /// Changed pending creates.
        #[serde(default)]
        pending: BTreeMap<String, Option<PendingCreate>>,
        /// The new outputs, when they changed.
        #[serde(default)]
        outputs: Option<BTreeMap<String, Value>>,
    },
}

impl Change {
    /// The change that turns `old` into `new` (identity fields aside).
    pub fn diff(old: &State, new: &State) -> Change {
        fn entries<T: Clone + PartialEq>(
            old: &BTreeMap<String, T>,
            new: &BTreeMap<String, T>,
        ) -> BTreeMap<String, Option<T>> {
            let mut out: BTreeMap<String, Option<T>> = new
                .iter()
                .filter(|(k, v)| old.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            out.extend(
                old.keys()
                    .filter(|k| !new.contains_key(*k))
                    .map(|k| (k.clone(), None)),
            );
            out
        }
        Change::Diff {
            resources: entries(&old.resources, &new.resources),
            pending: entries(&old.pending, &new.pending),
            outputs: (old.outputs != new.outputs).then(|| new.outputs.clone()),
        }
    }

    /// Applies the change to `state` (not its serial).
    pub fn apply(self, state: &mut State) {
        match self {
            Change::BeginCreate { address, pending } => {
                state.pending.insert(address, pending);
            }
            Change::BeginReplacement {
                address,
                deposed,
                pending,
            } => {
                if let Some(old) = state.resources.remove(&address) {
                    for (a, r) in state.resources.iter_mut() {
                        if *a != address && r.dependencies.contains(&address) {
                            r.dependencies.push(deposed.clone());
                        }
                    }
                    state.resources.insert(deposed, old);
                }
                state.pending.insert(address, pending);
            }
            Change::FinishCreate { address, resource } => {
                state.pending.remove(&address);
                state.resources.insert(address, resource);
            }
            Change::AbandonCreate { address } => {
                state.pending.remove(&address);
            }
            Change::PutResource { address, resource } => {
                state.resources.insert(address, resource);
            }
            Change::Forget { resources, pending } => {
                for a in resources {
                    state.resources.remove(&a);
                }
                for a in pending {
                    state.pending.remove(&a);
                }
            }
            Change::SetOutputs { outputs } => state.outputs = outputs,
            Change::Diff {
                resources,
                pending,
                outputs,
            } => {
                for (a, r) in resources {
                    match r {
                        Some(r) => state.resources.insert(a, r),
                        None => state.resources.remove(&a),
                    };
                }
                for (a, p) in pending {
                    match p {
                        Some(p) => state.pending.insert(a, p),
                        None => state.pending.remove(&a),
                    };
                }
                if let Some(outputs) = outputs {
                    state.outputs = outputs;
                }
            }
        }
    }

    /// Replaces what is sensitive by salted hashes ([`crate::sensitive::seal`]),
    /// so that neither the journal nor the snapshot holds a secret.
    pub fn seal(&mut self) {
        use crate::sensitive::{seal, seal_value};
        self.rewrite(
            |r| seal(&r.kind, &mut r.attributes),
            |p| seal(&p.kind, &mut p.desired),
            |v| *v = seal_value(v),
        );
    }

    /// Sorts the keys of every JSON object the change carries, as the
    /// snapshot does, so that a replayed state equals the written one.
    pub fn canonicalize(&mut self) {
        self.rewrite(
            |r| sort_attrs(&mut r.attributes),
            |p| sort_attrs(&mut p.desired),
            sort_value,
        );
    }

    /// Runs `resource`, `pending` and `output` over every resource record,
    /// pending create and output value the change carries.
    fn rewrite(
        &mut self,
        resource: impl Fn(&mut ResourceState),
        pending: impl Fn(&mut PendingCreate),
        output: impl Fn(&mut Value),
    ) {
        match self {
            Change::BeginCreate { pending: p, .. } | Change::BeginReplacement { pending: p, .. } => {
                pending(p)
            }
            Change::FinishCreate { resource: r, .. } | Change::PutResource { resource: r, .. } => resource(r),
            Change::AbandonCreate { .. } | Change::Forget { .. } => {}
            Change::SetOutputs { outputs } => outputs.values_mut().for_each(output),
            Change::Diff {
                resources,
                pending: ps,
                outputs,
            } => {
                resources.values_mut().flatten().for_each(resource);
                ps.values_mut().flatten().for_each(pending);
                if let Some(o) = outputs {
                    o.values_mut().for_each(output);
                }
            }
        }
    }
}

/// A journal line's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The lineage of the state the change applies to.
    pub lineage: String,
    /// The serial the state has once the change is applied.
    pub serial: u64,
    /// The change.
    pub change: Change,
}

#[derive(Serialize)]
struct RecordRef<'a> {
    lineage: &'a str,
    serial: u64,
    change: &'a Change,
}

/// The journal line recording `change`, producing `serial` of `lineage`.
pub fn encode(lineage: &str, serial: u64, change: &Change) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_vec(&RecordRef {
        lineage,
        serial,
        change,
    })?;
    let mut line = format!("{:08x} ", crc32(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    Ok(line)
}

/// The records of a journal's bytes, and whether a torn last line was
/// ignored. Fails (with a message) on a bad line that is not the last.
pub fn decode(bytes: &[u8]) -> Result<(Vec<Record>, bool), String> {
    let mut records = Vec::new();
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // After the last newline: empty, or a line whose append was cut short.
    let tail = lines.pop().unwrap_or_default();
    let mut torn = !tail.is_empty();
    let count = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        match decode_line(line) {
            Some(r) => records.push(r),
            // A write cut short by a power loss can leave a whole but
            // garbled last line.
            None if i + 1 == count && !torn => torn = true,
            None => return Err(format!("journal line {} is damaged", i + 1)),
        }
    }
    Ok((records, torn))
}

fn decode_line(line: &[u8]) -> Option<Record> {
    let (sum, json) = (line.get(..8)?, line.get(9..)?);
    if line.get(8) != Some(&b' ') {
        return None;
    }
    let sum = u32::from_str_radix(std::str::from_utf8(sum).ok()?, 16).ok()?;
    if sum != crc32(json) {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Records applied.
    pub applied: usize,
    /// Records skipped because the state already had them.
    pub skipped: usize,
    /// A torn last line was ignored.
    pub torn: bool,
}

/// Applies the journal `bytes` to `state` (see the module docs). Fails
/// (with a message) on damage before the last line, a record of another
/// lineage, or a gap in serials.
pub fn replay(state: &mut State, bytes: &[u8]) -> Result<Replayed, String> {
    let (records, torn) = decode(bytes)?;
    let mut done = Replayed {
        applied: 0,
        skipped: 0,
        torn,
    };
    for r in records {
        if r.lineage != state.lineage {
            return Err(format!(
                "the journal records changes to lineage {}, but the state has lineage {}",
                r.lineage, state.lineage
            ));
        }
        if r.serial <= state.serial {
            done.skipped += 1;
            continue;
        }
        if r.serial != state.serial + 1 {
            return Err(format!(
                "the journal jumps from serial {} to {}",
                state.serial, r.serial
            ));
        }
        r.change.apply(state);
        state.serial = r.serial;
        done.applied += 1;
    }
    Ok(done)
}

/// CRC-32 (IEEE 802.3, as in zlib and PNG).
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |c, b| {
        TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(id: &str) -> ResourceState {
        ResourceState {
            kind: "aws_vpc".into(),
            id: id.into(),
            attributes: json!({"cidr_block": "10.0.0.0/16"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            dependencies: vec![],
        }
    }

    #[test]
    fn crc32_known_vector() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn records_round_trip_and_torn_tail_is_ignored() {
        let mut state = State::new("dev");
        let mut bytes = Vec::new();
        for (n, id) in ["vpc-1", "vpc-2"].into_iter().enumerate() {
            let change = Change::PutResource {
                address: format!("r{n}"),
                resource: resource(id),
            };
            bytes.extend(encode(&state.lineage, n as u64 + 1, &change).unwrap());
        }
        let whole = bytes.clone();
        let third = encode(&state.lineage, 3, &Change::AbandonCreate { address: "x".into() }).unwrap();
        // Every cut of the third line is ignored; the first two apply.
        for cut in 0..third.len() {
            let mut torn = whole.clone();
            torn.extend_from_slice(&third[..cut]);
            let mut s = state.clone();
            let done = replay(&mut s, &torn).unwrap();
            assert_eq!(done.applied, 2, "cut at {cut}");
            assert_eq!(done.torn, cut > 0, "cut at {cut}");
            assert_eq!(s.serial, 2);
            assert_eq!(s.resources["r1"].id, "vpc-2");
        }
        // A garbled but whole last line is torn too; garbled earlier is not.
        let mut garbled = whole.clone();
        garbled[12] ^= 0x20;
        assert!(replay(&mut state.clone(), &garbled).is_err());
        let mut last = whole.clone();
        let n = last.len();
        last[n - 5] ^= 0x20;
        let done = replay(&mut state, &last).unwrap();
        assert_eq!((done.applied, done.torn), (1, true));
    }

    #[test]
    fn replay_skips_what_the_state_has_and_refuses_gaps_and_other_lineages() {
        let mut state = State::new("dev");
        let mut bytes = Vec::new();
        for serial in 1..=3 {
            let change = Change::PutResource {
                address: format!("r{serial}"),
                resource: resource("vpc"),
            };
            bytes.extend(encode(&state.lineage, serial, &change).unwrap());
        }
        let mut once = state.clone();
        replay(&mut once, &bytes).unwrap();
        let mut twice = once.clone();
        let done = replay(&mut twice, &bytes).unwrap();
        assert_eq!((done.applied, done.skipped), (0, 3));
        assert_eq!(twice, once);

        state.serial = 5;
        assert!(
            replay(
                &mut state.clone(),
                &encode(&state.lineage, 7, &Change::AbandonCreate { address: "x".into() }).unwrap()
            )
            .is_err()
        );
        assert!(
            replay(
                &mut state,
                &encode("other", 6, &Change::AbandonCreate { address: "x".into() }).unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn diff_replays_to_the_new_state() {
        let mut old = State::new("dev");
        old.resources.insert("a".into(), resource("1"));
        old.resources.insert("b".into(), resource("2"));
        let mut new = old.clone();
        new.resources.remove("a");
        new.resources.insert("c".into(), resource("3"));
        new.outputs.insert("o".into(), json!(1));
        let change = Change::diff(&old, &new);
        match &change {
            Change::Diff { resources, .. } => assert_eq!(resources.len(), 2, "only what changed"),
            other => panic!("{other:?}"),
        }
        let mut replayed = old.clone();
        change.apply(&mut replayed);
        assert_eq!(replayed, new);
    }
}
