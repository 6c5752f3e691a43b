//! The gate trait: one health check evaluated after each shift step.

use std::fmt;

/// What one evaluation of a gate found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GateOutcome {
    /// The gate's name, as [`Gate::name`] gives it (shown in messages).
    pub gate: String,
    /// Whether the step may stand.
    pub passed: bool,
    /// The value observed, as text (`0.97`, `2/3 replicas updated`);
    /// `None` when nothing could be observed (an unreachable server, an
    /// empty result).
    pub observed: Option<String>,
    /// A sentence for a human: why it passed or failed.
    pub detail: String,
}

impl GateOutcome {
    /// A passed gate.
    pub fn pass(gate: impl Into<String>, observed: Option<String>, detail: impl Into<String>) -> Self {
        GateOutcome {
            gate: gate.into(),
            passed: true,
            observed,
            detail: detail.into(),
        }
    }

    /// A failed gate.
    pub fn fail(gate: impl Into<String>, observed: Option<String>, detail: impl Into<String>) -> Self {
        GateOutcome {
            gate: gate.into(),
            passed: false,
            observed,
            detail: detail.into(),
        }
    }

    /// The observed value, or `none` when nothing was observed.
    pub fn observed_or_none(&self) -> &str {
        self.observed.as_deref().unwrap_or("none")
    }
}

/// A health check. Implementations never return an error: anything that
/// prevents a check (a server down, a malformed answer) is a failed
/// outcome, since a shift must not go on when health is unknown.
#[async_trait::async_trait]
pub trait Gate: Send + Sync {
    /// A short name for messages: `deployment yelb/yelb-appserver-v2`.
    fn name(&self) -> String;

    /// Evaluates the gate now.
    async fn check(&self) -> GateOutcome;
}

/// A comparison of an observed value to a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Comparison {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
}

impl Comparison {
    /// Every operator, as written.
    pub const ALL: [(&'static str, Comparison); 5] = [
        ("<=", Comparison::Le),
        (">=", Comparison::Ge),
        ("==", Comparison::Eq),
        ("<", Comparison::Lt),
        (">", Comparison::Gt),
    ];

    /// Parses `<`, `<=`, `>`, `>=` or `==` (surrounding spaces allowed).
    pub fn parse(s: &str) -> Option<Comparison> {
        let s = s.trim();
        Self::ALL.iter().find(|(text, _)| *text == s).map(|(_, c)| *c)
    }

    /// Whether `value <op> threshold` holds. NaN never holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
            Comparison::Eq => value == threshold,
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Eq => "==",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_parse_and_compare() {
        assert_eq!(Comparison::parse(" >= "), Some(Comparison::Ge));
        assert_eq!(Comparison::parse("="), None);
        assert_eq!(Comparison::parse("=>"), None);
        assert!(Comparison::Ge.holds(0.99, 0.99));
        assert!(!Comparison::Gt.holds(0.99, 0.99));
        assert!(Comparison::Lt.holds(1.0, 2.0));
        assert!(Comparison::Le.holds(2.0, 2.0));
        assert!(Comparison::Eq.holds(1.0, 1.0));
        for (_, c) in Comparison::ALL {
            assert!(!c.holds(f64::NAN, 1.0), "{c} holds for NaN");
            assert_eq!(Comparison::parse(&c.to_string()), Some(c));
        }
    }
}
