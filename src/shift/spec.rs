//! Steps, pauses and gates as written on the command line and in a stack's
//! `[shift.<var>]` table, and turning a gate specification into a [`Gate`].
//!
//! Gate syntax (`--gate`, repeatable):
//!
//! - `deployment:NAMESPACE/NAME` or `deployment:NAMESPACE/NAME@RESOURCE`:
//!   the Deployment gate; the cluster is the one RESOURCE's `connection`
//!   attribute (an `aws.eks.cluster`) or `cluster` attribute (an
//!   in-cluster resource) names in state. Without `@RESOURCE`, the one
//!   resource in state with a `connection` attribute.
//! - `prometheus:URL;QUERY;OP;THRESHOLD`: the Prometheus gate; OP is one
//!   of `<`, `<=`, `>`, `>=`, `==`. The URL ends at the first `;`, the
//!   threshold and operator are the last two fields, so the query may itself
//!   hold `;`.

use std::time::Duration;

use super::deployment::DeploymentGate;
use super::gate::{Comparison, Gate, GateOutcome};
use super::prometheus::PrometheusGate;
use crate::config::Span;
use crate::provider::kube::connection::Connection;
use crate::state::{State, StateLocation};

/// A gate specification that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

fn err(s: impl Into<String>) -> SpecError {
    SpecError(s.into())
}

/// A gate as specified, before it is bound to a cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum GateSpec {
    /// `deployment:NAMESPACE/NAME[@RESOURCE]`.
    Deployment {
        /// The Deployment's namespace.
        namespace: String,
        /// The Deployment's name.
        name: String,
        /// The stack resource whose connection reaches the cluster.
        cluster: Option<String>,
    },
    /// `prometheus:URL;QUERY;OP;THRESHOLD`.
    Prometheus(PrometheusGate),
}

/// A `[shift.<var>]` table of a stack.
#[derive(Debug, Clone)]
pub struct ShiftDecl {
    /// The variable shifted (the table's name).
    pub variable: String,
    /// The step values, as `--var` would give them.
    pub steps: Vec<String>,
    /// The pause after each step before the gates are evaluated.
    pub pause: Option<Duration>,
    /// The gates.
    pub gates: Vec<GateSpec>,
    /// Where the table's name is written.
    pub span: Span,
}

/// Parses one `--gate` value.
pub fn parse_gate(s: &str) -> Result<GateSpec, SpecError> {
    let (kind, rest) = s.split_once(':').ok_or_else(|| {
        err(format!(
            "gate `{s}`: write `deployment:NAMESPACE/NAME[@RESOURCE]` or `prometheus:URL;QUERY;OP;THRESHOLD`"
        ))
    })?;
    match kind.trim() {
        "deployment" => {
            let (target, cluster) = match rest.rsplit_once('@') {
                Some((t, c)) if !c.trim().is_empty() => (t, Some(c.trim().to_string())),
                Some(_) => return Err(err(format!("gate `{s}`: nothing after `@`"))),
                None => (rest, None),
            };
            let (namespace, name) = target
                .split_once('/')
                .map(|(n, m)| (n.trim(), m.trim()))
                .filter(|(n, m)| !n.is_empty() && !m.is_empty() && !m.contains('/'))
                .ok_or_else(|| err(format!("gate `{s}`: the Deployment is written NAMESPACE/NAME")))?;
            Ok(GateSpec::Deployment {
                namespace: namespace.to_string(),
                name: name.to_string(),
                cluster,
            })
        }
        "prometheus" => {
            let (url, rest) = rest
                .split_once(';')
                .ok_or_else(|| err(format!("gate `{s}`: write prometheus:URL;QUERY;OP;THRESHOLD")))?;
            let (rest, threshold) = rest
                .rsplit_once(';')
                .ok_or_else(|| err(format!("gate `{s}`: write prometheus:URL;QUERY;OP;THRESHOLD")))?;
            let (query, op) = rest
                .rsplit_once(';')
                .ok_or_else(|| err(format!("gate `{s}`: write prometheus:URL;QUERY;OP;THRESHOLD")))?;
            prometheus(url, query, op, threshold.trim().parse().ok(), threshold)
                .map_err(|e| err(format!("gate `{s}`: {e}")))
        }
        other => Err(err(format!(
            "gate `{s}`: unknown gate type `{other}` (known: deployment, prometheus)"
        ))),
    }
}

/// A Prometheus gate from its parts; `threshold_text` names a threshold that
/// did not parse.
pub fn prometheus(
    url: &str,
    query: &str,
    op: &str,
    threshold: Option<f64>,
    threshold_text: &str,
) -> Result<GateSpec, SpecError> {
    let url = url.trim();
    if !url.starts_with("http://") {
        return Err(err(format!("the URL `{url}` must start with http://")));
    }
    if query.trim().is_empty() {
        return Err(err("the query is empty"));
    }
    let op = Comparison::parse(op)
        .ok_or_else(|| err(format!("`{}` is not an operator (<, <=, >, >=, ==)", op.trim())))?;
    let threshold = threshold.filter(|t| !t.is_nan()).ok_or_else(|| {
        err(format!(
            "the threshold `{}` is not a number",
            threshold_text.trim()
        ))
    })?;
    Ok(GateSpec::Prometheus(PrometheusGate {
        url: url.to_string(),
        query: query.trim().to_string(),
        op,
        threshold,
    }))
}

/// Parses `--steps 10,50,100`.
pub fn parse_steps(s: &str) -> Result<Vec<String>, SpecError> {
    let steps: Vec<String> = s.split(',').map(|p| p.trim().to_string()).collect();
    if steps.iter().any(String::is_empty) {
        return Err(err(format!(
            "steps `{s}`: write values separated by commas, like 10,50,100"
        )));
    }
    Ok(steps)
}

/// Parses a pause: a number with `ms`, `s`, `m` or `h` (a bare number is
/// seconds).
pub fn parse_pause(s: &str) -> Result<Duration, SpecError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| err(format!("pause `{s}`: write a duration like 60s, 2m or 500ms")))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(err(format!(
                "pause `{s}`: unknown unit `{other}` (ms, s, m or h)"
            )));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| err(format!("pause `{s}` is out of range")))
}

/// A Deployment gate whose cluster is read from the state file at each
/// check, so a shift may start before the stack's cluster exists.
struct FromState {
    namespace: String,
    name: String,
    cluster: Option<String>,
    state: StateLocation,
    stack: String,
    region: String,
}

#[async_trait::async_trait]
impl Gate for FromState {
    fn name(&self) -> String {
        format!("deployment {}/{}", self.namespace, self.name)
    }

    async fn check(&self) -> GateOutcome {
        let fail = |why: String| GateOutcome::fail(self.name(), None, why);
        let state = match self.state.read(&self.stack, &self.region).await {
            Ok(Some(s)) => s,
            Ok(None) => return fail(format!("no state at {}", self.state)),
            Err(e) => return fail(format!("cannot read state: {e}")),
        };
        let spec = GateSpec::Deployment {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            cluster: self.cluster.clone(),
        };
        match spec.build(&state) {
            Ok(gate) => gate.check().await,
            Err(e) => fail(e.0),
        }
    }
}

impl GateSpec {
    /// A gate to evaluate whose cluster (for a Deployment gate) is looked
    /// up in the state `state` of stack `stack` (in `region`) when it is
    /// checked.
    pub fn bind(&self, state: &StateLocation, stack: &str, region: &str) -> Box<dyn Gate> {
        match self {
            GateSpec::Prometheus(g) => Box::new(g.clone()),
            GateSpec::Deployment {
                namespace,
                name,
                cluster,
            } => Box::new(FromState {
                namespace: namespace.clone(),
                name: name.clone(),
                cluster: cluster.clone(),
                state: state.clone(),
                stack: stack.to_string(),
                region: region.to_string(),
            }),
        }
    }

    /// A gate to evaluate, its cluster found in `state`.
    pub fn build(&self, state: &State) -> Result<Box<dyn Gate>, SpecError> {
        match self {
            GateSpec::Prometheus(g) => Ok(Box::new(g.clone())),
            GateSpec::Deployment {
                namespace,
                name,
                cluster,
            } => Ok(Box::new(DeploymentGate {
                connection: connection(state, cluster.as_deref())?,
                namespace: namespace.clone(),
                name: name.clone(),
            })),
        }
    }
}

/// The connection of `resource` in state, or of the one resource with a
/// `connection` attribute.
fn connection(state: &State, resource: Option<&str>) -> Result<Connection, SpecError> {
    let value = match resource {
        Some(address) => {
            let r = state.resources.get(address).ok_or_else(|| {
                err(format!(
                    "state tracks no resource `{address}` to take the cluster from (apply the stack first?)"
                ))
            })?;
            r.attributes
                .get("connection")
                .or_else(|| r.attributes.get("cluster"))
                .ok_or_else(|| {
                    err(format!(
                        "`{address}` has neither a `connection` nor a `cluster` attribute to reach a cluster"
                    ))
                })?
        }
        None => {
            let with: Vec<(&String, &crate::Value)> = state
                .resources
                .iter()
                .filter_map(|(a, r)| r.attributes.get("connection").map(|c| (a, c)))
                .collect();
            match with.as_slice() {
                [(_, c)] => *c,
                [] => {
                    return Err(err(
                        "no cluster in state for a deployment gate (apply the stack first, or name one with @RESOURCE)",
                    ));
                }
                many => {
                    let names: Vec<&str> = many.iter().map(|(a, _)| a.as_str()).collect();
                    return Err(err(format!(
                        "several clusters in state ({}): name one with deployment:NAMESPACE/NAME@RESOURCE",
                        names.join(", ")
                    )));
                }
            }
        }
    };
    Connection::parse(value).map_err(|e| err(format!("the cluster connection: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_parse() {
        assert_eq!(
            parse_gate("deployment:yelb/yelb-appserver-v2@cluster"),
            Ok(GateSpec::Deployment {
                namespace: "yelb".into(),
                name: "yelb-appserver-v2".into(),
                cluster: Some("cluster".into())
            })
        );
        assert!(matches!(
            parse_gate("deployment:yelb/v2"),
            Ok(GateSpec::Deployment { cluster: None, .. })
        ));
        let GateSpec::Prometheus(p) =
            parse_gate("prometheus:http://127.0.0.1:9090;sum(rate(x{a=\"b;c\"}[1m]));>=;0.99").unwrap()
        else {
            panic!("not a prometheus gate");
        };
        assert_eq!(p.url, "http://127.0.0.1:9090");
        assert_eq!(p.query, "sum(rate(x{a=\"b;c\"}[1m]))");
        assert_eq!(p.op, Comparison::Ge);
        assert_eq!(p.threshold, 0.99);
        for (bad, says) in [
            ("deployment:yelb", "NAMESPACE/NAME"),
            ("deployment:/x", "NAMESPACE/NAME"),
            ("deployment:a/b@", "nothing after"),
            (
                "prometheus:http://x;up;>=",
                "write prometheus:URL;QUERY;OP;THRESHOLD",
            ),
            ("prometheus:http://x;up;=>;1", "is not an operator"),
            ("prometheus:http://x;up;>=;high", "not a number"),
            ("prometheus:https://x;up;>=;1", "http://"),
            ("prometheus:http://x; ;>=;1", "empty"),
            ("http:foo", "unknown gate type `http`"),
            ("nothing", "write"),
        ] {
            let e = parse_gate(bad).expect_err(bad);
            assert!(e.0.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn steps_and_pauses_parse() {
        assert_eq!(
            parse_steps("10, 50,100"),
            Ok(vec!["10".into(), "50".into(), "100".into()])
        );
        assert!(parse_steps("10,,100").is_err());
        assert_eq!(parse_pause("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_pause("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_pause("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_pause("3"), Ok(Duration::from_secs(3)));
        assert!(parse_pause("1d").is_err());
        assert!(parse_pause("s").is_err());
    }
}
