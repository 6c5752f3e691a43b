//! Scripted faults of the [`FakeCloud`](super::FakeCloud), and the small
//! deterministic PRNG they (and the engine harness) draw from.
//!
//! Whether a call fails is a pure function of the script's seed, the run
//! number, the call's target (a resource address, or a kind's type name for
//! a batched read), the operation and the attempt (how many times the same
//! target and operation were called before in this run). The order in which
//! concurrent calls reach the cloud therefore never changes what happens to
//! each of them.

use std::time::Duration;

/// One step of the splitmix64 generator: advances `state` and returns the
/// next output. Small, fast and good enough for tests.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic pseudo-random generator (splitmix64).
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for tests, and never loops.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of `items`, which must not be empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// 64-bit FNV-1a of `s`: a stable hash of a name (unlike `DefaultHasher`,
/// fixed across Rust releases).
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The operations of the fake cloud's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallOp {
    /// Creating an object.
    Create,
    /// A batched read of objects by id.
    Read,
    /// Changing an object's attributes in place.
    Update,
    /// Deleting an object.
    Delete,
    /// Looking an object up by ownership tags or natural key.
    Find,
}

impl CallOp {
    /// The API operation's name, as errors give it.
    pub fn api_name(self) -> &'static str {
        match self {
            CallOp::Create => "CreateObject",
            CallOp::Read => "DescribeObjects",
            CallOp::Update => "ModifyObject",
            CallOp::Delete => "DeleteObject",
            CallOp::Find => "FindObjects",
        }
    }

    /// Whether the operation changes the world.
    pub fn mutates(self) -> bool {
        matches!(self, CallOp::Create | CallOp::Update | CallOp::Delete)
    }
}

impl std::fmt::Display for CallOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CallOp::Create => "create",
            CallOp::Read => "read",
            CallOp::Update => "update",
            CallOp::Delete => "delete",
            CallOp::Find => "find",
        })
    }
}

/// A set of [`CallOp`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpSet(u8);

impl OpSet {
    /// No operation.
    pub const NONE: OpSet = OpSet(0);
    /// Every operation.
    pub const ALL: OpSet = OpSet(0x1f);

    /// The set of `ops`.
    pub const fn of(ops: &[CallOp]) -> OpSet {
        let mut bits = 0;
        let mut i = 0;
        while i < ops.len() {
            bits |= 1 << ops[i] as u8;
            i += 1;
        }
        OpSet(bits)
    }

    /// Whether `op` is in the set.
    pub const fn contains(self, op: CallOp) -> bool {
        self.0 & (1 << op as u8) != 0
    }
}

/// How often each fault happens, as probabilities per call. The outcomes
/// (failures, lost responses, crashes, short reads) exclude each other;
/// latency comes on top of any of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRates {
    /// A call first waits a random time up to `max_latency` (tokio time, so
    /// tests run it with paused time).
    pub latency: f64,
    /// The longest latency.
    pub max_latency: Duration,
    /// The call fails before it has any effect with a transient error
    /// (`Throttling`, or no code as for a refused connection).
    pub transient: f64,
    /// The call fails before it has any effect with a non-transient error
    /// (`ValidationError`).
    pub permanent: f64,
    /// A create, update or delete takes effect, then the answer is lost: the
    /// caller gets a transient error without a code.
    pub lost_response: f64,
    /// The operations that lost responses and crashes after the effect may
    /// hit (only creates, updates and deletes have effects).
    pub after_effect_ops: OpSet,
    /// The process "dies" before the call has any effect: the cloud
    /// signals a crash and the call never returns.
    pub crash_before: f64,
    /// A create, update or delete takes effect, then the process "dies".
    pub crash_after: f64,
    /// A batched read answers fewer results than it was asked for (the last
    /// is missing), as a provider with a pagination bug would. Not a fault
    /// a correct provider has; it shows whether refresh checks the counts.
    pub short_read: f64,
}

impl FaultRates {
    /// No faults at all.
    pub const NONE: FaultRates = FaultRates {
        latency: 0.0,
        max_latency: Duration::ZERO,
        transient: 0.0,
        permanent: 0.0,
        lost_response: 0.0,
        after_effect_ops: OpSet::ALL,
        crash_before: 0.0,
        crash_after: 0.0,
        short_read: 0.0,
    };
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates::NONE
    }
}

/// What happens to one call, besides its latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOutcome {
    /// The call does what it is asked.
    Proceed,
    /// The call fails before any effect, with this error code (`None`: no
    /// code, as for a connection failure).
    FailBefore {
        /// The error code returned.
        code: Option<&'static str>,
    },
    /// The effect happens, then a transient error without code is returned.
    LoseResponse,
    /// A crash before the call has any effect.
    CrashBefore,
    /// A crash right after the call's effect.
    CrashAfter,
    /// A batched read drops its last result.
    ShortRead,
}

/// The fate of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// How long the call takes before anything happens.
    pub latency: Option<Duration>,
    /// What the call then does.
    pub outcome: FaultOutcome,
}

impl Decision {
    /// A call without latency or fault.
    pub const CLEAN: Decision = Decision {
        latency: None,
        outcome: FaultOutcome::Proceed,
    };
}

/// Faults for one run: the same script always gives every call the same
/// fate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultScript {
    /// Seed of the decisions.
    pub seed: u64,
    /// The run number (so that consecutive runs meet different faults).
    pub run: u64,
    /// How often each fault happens.
    pub rates: FaultRates,
}

impl FaultScript {
    /// The fate of attempt `attempt` (from 0) of `op` on `target` in this run.
    pub fn decide(&self, target: &str, op: CallOp, attempt: u32) -> Decision {
        let mut h = self.seed ^ 0x5EED_FA17;
        let mut mix = |v: u64| {
            h ^= v;
            splitmix64(&mut h)
        };
        mix(self.run);
        mix(hash_str(target));
        mix(op as u64 + 1);
        let base = mix(u64::from(attempt));
        let mut rng = SplitMix::new(base);
        let r = &self.rates;
        let latency = (rng.chance(r.latency) && !r.max_latency.is_zero()).then(|| {
            let max = r.max_latency.as_millis().max(1) as u64;
            Duration::from_millis(rng.range(1, max))
        });
        let u = rng.unit();
        let transient_code = if rng.chance(0.5) { Some("Throttling") } else { None };
        let mutates = op.mutates() && r.after_effect_ops.contains(op);
        // Outcomes that cannot happen to this operation count as Proceed.
        let table: [(f64, FaultOutcome); 6] = [
            (r.transient, FaultOutcome::FailBefore { code: transient_code }),
            (
                r.permanent,
                FaultOutcome::FailBefore {
                    code: Some("ValidationError"),
                },
            ),
            (
                if mutates { r.lost_response } else { 0.0 },
                FaultOutcome::LoseResponse,
            ),
            (r.crash_before, FaultOutcome::CrashBefore),
            (
                if mutates { r.crash_after } else { 0.0 },
                FaultOutcome::CrashAfter,
            ),
            (
                if op == CallOp::Read { r.short_read } else { 0.0 },
                FaultOutcome::ShortRead,
            ),
        ];
        let mut acc = 0.0;
        let mut outcome = FaultOutcome::Proceed;
        for (p, o) in table {
            acc += p;
            if u < acc {
                outcome = o;
                break;
            }
        }
        Decision { latency, outcome }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_depend_only_on_their_inputs() {
        let script = FaultScript {
            seed: 7,
            run: 2,
            rates: FaultRates {
                latency: 0.5,
                max_latency: Duration::from_secs(2),
                transient: 0.2,
                permanent: 0.1,
                lost_response: 0.1,
                after_effect_ops: OpSet::of(&[CallOp::Create, CallOp::Update, CallOp::Delete]),
                crash_before: 0.05,
                crash_after: 0.05,
                short_read: 0.0,
            },
        };
        let a = script.decide("vpc", CallOp::Create, 0);
        for _ in 0..3 {
            assert_eq!(script.decide("vpc", CallOp::Create, 0), a);
        }
        // Different inputs give a spread of outcomes.
        let outcomes: std::collections::BTreeSet<String> = (0..200)
            .map(|i| format!("{:?}", script.decide(&format!("r{i}"), CallOp::Create, 0).outcome))
            .collect();
        assert!(outcomes.len() >= 5, "{outcomes:?}");
        // Reads never lose a response or crash after an effect, nor do
        // operations left out of `after_effect_ops`.
        let no_updates = FaultScript {
            rates: FaultRates {
                after_effect_ops: OpSet::of(&[CallOp::Create]),
                ..script.rates
            },
            ..script
        };
        for i in 0..200 {
            for (s, op) in [(&script, CallOp::Read), (&no_updates, CallOp::Update)] {
                let d = s.decide(&format!("r{i}"), op, 0);
                assert!(!matches!(
                    d.outcome,
                    FaultOutcome::LoseResponse | FaultOutcome::CrashAfter
                ));
            }
        }
        assert!(OpSet::ALL.contains(CallOp::Find) && !OpSet::NONE.contains(CallOp::Create));
    }

    #[test]
    fn splitmix_is_deterministic_and_bounded() {
        let mut a = SplitMix::new(42);
        let mut b = SplitMix::new(42);
        for _ in 0..100 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
        assert_eq!(SplitMix::new(1).below(0), 0);
    }
}
