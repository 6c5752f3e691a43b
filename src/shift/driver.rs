//! The shift loop: apply a step, pause, evaluate every gate, go on; on a
//! failed gate (or a failed apply) apply the last good step again and stop.
//!
//! **Last good.** Before the first step, the last good value is
//! [`ShiftPlan::start`]: the variable's value in effect before the shift,
//! which the command line takes from `--var NAME=VALUE` for the shifted
//! variable itself or else the stack's default. After each step whose apply
//! succeeded and whose gates all passed, that step is the last good value.
//! A failure at the first step therefore returns to the start value.

use std::time::Duration;

use super::gate::{Gate, GateOutcome};
use crate::engine::{Event, EventSink};

/// Applies the stack with the shifted variable at one value, through the
/// normal plan/apply path (the command line's `apply`). Its futures need
/// not be `Send`: the command line's apply path holds its terminal view
/// across awaits.
#[async_trait::async_trait(?Send)]
pub trait StepApplier: Send + Sync {
    /// Applies with the variable at `value`.
    async fn apply(&self, value: &str) -> Result<(), StepError>;

    /// Waits `pause`; `false` when the wait was interrupted (Ctrl-C) and
    /// the shift should stop where it is.
    async fn wait(&self, pause: Duration) -> bool {
        tokio::time::sleep(pause).await;
        true
    }
}

/// Why a step's apply did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// The apply failed (the message says why).
    Failed(String),
    /// The user interrupted it (Ctrl-C): the shift stops without applying
    /// anything else.
    Interrupted,
}

/// One shift to run.
pub struct ShiftPlan {
    /// The variable shifted.
    pub variable: String,
    /// Its values, in order.
    pub steps: Vec<String>,
    /// The wait after each apply before the gates are evaluated.
    pub pause: Duration,
    /// The gates, all evaluated after every step.
    pub gates: Vec<Box<dyn Gate>>,
    /// The last good value before the first step (see the module docs).
    pub start: String,
}

/// A completed shift.
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftReport {
    /// The variable shifted.
    pub variable: String,
    /// Each step's value and its gates' outcomes.
    pub steps: Vec<(String, Vec<GateOutcome>)>,
}

/// Why a shift stopped.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ShiftError {
    /// A gate failed after a step.
    #[error(
        "shift of `{variable}` stopped at {variable}={step}: gate {} failed, observed {}: {}; {rollback}",
        .failed[0].gate, .failed[0].observed_or_none(), .failed[0].detail
    )]
    GateFailed {
        /// The variable shifted.
        variable: String,
        /// The step whose gates failed.
        step: String,
        /// The failed gates' outcomes (never empty).
        failed: Vec<GateOutcome>,
        /// What became of the return to the last good value.
        rollback: String,
        /// Whether the last good value was applied again.
        rolled_back: bool,
    },
    /// A step's apply failed.
    #[error("shift of `{variable}` stopped: applying {variable}={step} failed: {message}; {rollback}")]
    ApplyFailed {
        /// The variable shifted.
        variable: String,
        /// The step whose apply failed.
        step: String,
        /// The apply's error.
        message: String,
        /// What became of the return to the last good value.
        rollback: String,
        /// Whether the last good value was applied again.
        rolled_back: bool,
    },
    /// Interrupted during a pause (the step stays applied) or during an
    /// apply (state records what it did); nothing else is applied.
    #[error("shift of `{variable}` interrupted {when} {variable}={step}; nothing else was applied")]
    Interrupted {
        /// The variable shifted.
        variable: String,
        /// The step being applied, or applied last.
        step: String,
        /// "during the pause after" or "while applying".
        when: &'static str,
    },
}

/// Runs `plan`, applying through `applier` and reporting on `events`.
pub async fn run(
    plan: &ShiftPlan,
    applier: &dyn StepApplier,
    events: &EventSink,
) -> Result<ShiftReport, ShiftError> {
    let variable = plan.variable.clone();
    let of = plan.steps.len();
    let mut last_good = plan.start.clone();
    let mut report = ShiftReport {
        variable: variable.clone(),
        steps: Vec::new(),
    };
    for (i, step) in plan.steps.iter().enumerate() {
        events(&Event::ShiftStep {
            variable: variable.clone(),
            value: step.clone(),
            step: i + 1,
            of,
            rollback: false,
        });
        if let Err(error) = applier.apply(step).await {
            let message = match error {
                StepError::Failed(m) => m,
                StepError::Interrupted => {
                    return Err(ShiftError::Interrupted {
                        variable,
                        step: step.clone(),
                        when: "while applying",
                    });
                }
            };
            let (rollback, rolled_back) = roll_back(plan, applier, events, &last_good).await;
            return Err(ShiftError::ApplyFailed {
                variable,
                step: step.clone(),
                message,
                rollback,
                rolled_back,
            });
        }
        if !applier.wait(plan.pause).await {
            return Err(ShiftError::Interrupted {
                variable,
                step: step.clone(),
                when: "during the pause after",
            });
        }
        let mut outcomes = Vec::with_capacity(plan.gates.len());
        for gate in &plan.gates {
            let outcome = gate.check().await;
            events(&Event::GateChecked {
                gate: outcome.gate.clone(),
                passed: outcome.passed,
                observed: outcome.observed.clone(),
                detail: outcome.detail.clone(),
            });
            outcomes.push(outcome);
        }
        let failed: Vec<GateOutcome> = outcomes.iter().filter(|o| !o.passed).cloned().collect();
        if !failed.is_empty() {
            let (rollback, rolled_back) = roll_back(plan, applier, events, &last_good).await;
            return Err(ShiftError::GateFailed {
                variable,
                step: step.clone(),
                failed,
                rollback,
                rolled_back,
            });
        }
        last_good = step.clone();
        report.steps.push((step.clone(), outcomes));
    }
    Ok(report)
}

/// Applies `last_good` again; the sentence saying how it went, and whether
/// it did.
async fn roll_back(
    plan: &ShiftPlan,
    applier: &dyn StepApplier,
    events: &EventSink,
    last_good: &str,
) -> (String, bool) {
    events(&Event::ShiftStep {
        variable: plan.variable.clone(),
        value: last_good.to_string(),
        step: 0,
        of: plan.steps.len(),
        rollback: true,
    });
    match applier.apply(last_good).await {
        Ok(()) => (
            format!("returned to the last good {}={last_good}", plan.variable),
            true,
        ),
        Err(StepError::Failed(e)) => (
            format!(
                "returning to the last good {}={last_good} FAILED too: {e}",
                plan.variable
            ),
            false,
        ),
        Err(StepError::Interrupted) => (
            format!(
                "returning to the last good {}={last_good} was interrupted",
                plan.variable
            ),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records applies; fails those of `fail_apply`.
    struct Recorder {
        applied: Arc<Mutex<Vec<String>>>,
        fail_apply: Option<&'static str>,
    }

    #[async_trait::async_trait(?Send)]
    impl StepApplier for Recorder {
        async fn apply(&self, value: &str) -> Result<(), StepError> {
            if let Ok(mut a) = self.applied.lock() {
                a.push(value.to_string());
            }
            if self.fail_apply == Some(value) {
                return Err(StepError::Failed("boom".to_string()));
            }
            Ok(())
        }
        async fn wait(&self, _: Duration) -> bool {
            true
        }
    }

    /// Fails while the last applied value is `bad`.
    struct Watch {
        applied: Arc<Mutex<Vec<String>>>,
        bad: &'static str,
    }

    #[async_trait::async_trait]
    impl Gate for Watch {
        fn name(&self) -> String {
            "watch".to_string()
        }
        async fn check(&self) -> GateOutcome {
            let last = self
                .applied
                .lock()
                .ok()
                .and_then(|a| a.last().cloned())
                .unwrap_or_default();
            if last == self.bad {
                GateOutcome::fail("watch", Some("0.5".into()), "bad")
            } else {
                GateOutcome::pass("watch", Some("1".into()), "good")
            }
        }
    }

    fn plan(applied: &Arc<Mutex<Vec<String>>>, bad: &'static str) -> ShiftPlan {
        ShiftPlan {
            variable: "w".into(),
            steps: vec!["10".into(), "50".into(), "100".into()],
            pause: Duration::ZERO,
            gates: vec![Box::new(Watch {
                applied: applied.clone(),
                bad,
            })],
            start: "0".into(),
        }
    }

    fn sink() -> (EventSink, Arc<Mutex<Vec<Event>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let sink: EventSink = Arc::new(move |e: &Event| {
            if let Ok(mut v) = s.lock() {
                v.push(e.clone());
            }
        });
        (sink, seen)
    }

    fn applied(a: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        a.lock().map(|v| v.clone()).unwrap_or_default()
    }

    #[tokio::test]
    async fn all_steps_pass() {
        let a = Arc::new(Mutex::new(Vec::new()));
        let (sink, seen) = sink();
        let r = Recorder {
            applied: a.clone(),
            fail_apply: None,
        };
        let report = run(&plan(&a, "none"), &r, &sink).await.expect("passes");
        assert_eq!(report.steps.len(), 3);
        assert_eq!(applied(&a), ["10", "50", "100"]);
        let gates = seen
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|e| matches!(e, Event::GateChecked { .. }))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(gates, 3);
    }

    #[tokio::test]
    async fn failed_gate_returns_to_the_last_good_step() {
        let a = Arc::new(Mutex::new(Vec::new()));
        let (sink, _) = sink();
        let r = Recorder {
            applied: a.clone(),
            fail_apply: None,
        };
        let e = run(&plan(&a, "50"), &r, &sink).await.expect_err("fails");
        assert_eq!(applied(&a), ["10", "50", "10"]);
        let text = e.to_string();
        assert!(
            text.contains("w=50: gate watch failed, observed 0.5")
                && text.contains("returned to the last good w=10"),
            "{text}"
        );
    }

    /// Interrupted at the second apply.
    struct Interrupter {
        applied: Arc<Mutex<Vec<String>>>,
    }

    #[async_trait::async_trait(?Send)]
    impl StepApplier for Interrupter {
        async fn apply(&self, value: &str) -> Result<(), StepError> {
            let n = self
                .applied
                .lock()
                .map(|mut a| {
                    a.push(value.to_string());
                    a.len()
                })
                .unwrap_or(0);
            if n == 2 {
                return Err(StepError::Interrupted);
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_interrupted_apply_stops_without_a_rollback() {
        let a = Arc::new(Mutex::new(Vec::new()));
        let (sink, _) = sink();
        let r = Interrupter { applied: a.clone() };
        let e = run(&plan(&a, "none"), &r, &sink).await.expect_err("stops");
        assert!(
            matches!(&e, ShiftError::Interrupted { step, when: "while applying", .. } if step == "50"),
            "{e}"
        );
        assert_eq!(applied(&a), ["10", "50"]);
    }

    #[tokio::test]
    async fn a_failure_at_the_first_step_returns_to_the_start() {
        let a = Arc::new(Mutex::new(Vec::new()));
        let (sink, _) = sink();
        let r = Recorder {
            applied: a.clone(),
            fail_apply: None,
        };
        run(&plan(&a, "10"), &r, &sink).await.expect_err("fails");
        assert_eq!(applied(&a), ["10", "0"]);
        let failing = Recorder {
            applied: a.clone(),
            fail_apply: Some("50"),
        };
        let e = run(&plan(&a, "none"), &failing, &sink).await.expect_err("fails");
        assert!(
            matches!(
                e,
                ShiftError::ApplyFailed {
                    rolled_back: true,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(applied(&a)[2..], ["10", "50", "10"]);
    }
}
