//! The Deployment gate: the target Deployment has rolled out completely.

use k8s_openapi::api::apps::v1::Deployment;

use super::gate::{Gate, GateOutcome};
use crate::provider::kube::connection::{Connection, config_for};

/// Passes when the Deployment is `Available=True`, its controller has seen
/// the latest spec (`observedGeneration >= generation`) and
/// `updatedReplicas == availableReplicas == spec.replicas`.
#[derive(Debug, Clone)]
pub struct DeploymentGate {
    /// The cluster, as in-cluster resources reach it.
    pub connection: Connection,
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub name: String,
}

impl DeploymentGate {
    /// Judges a Deployment as read, in its JSON form (pure).
    pub fn judge(&self, dep: &serde_json::Value) -> GateOutcome {
        let name = self.name();
        let int = |pointer: &str| dep.pointer(pointer).and_then(serde_json::Value::as_i64);
        let generation = int("/metadata/generation").unwrap_or(0);
        let observed_gen = int("/status/observedGeneration").unwrap_or(0);
        // Kubernetes defaults spec.replicas to 1.
        let wanted = int("/spec/replicas").unwrap_or(1);
        let updated = int("/status/updatedReplicas").unwrap_or(0);
        let available = int("/status/availableReplicas").unwrap_or(0);
        let available_cond = dep
            .pointer("/status/conditions")
            .and_then(serde_json::Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Available"));
        let observed = Some(format!("{updated} updated, {available} available of {wanted}"));
        let problem = if observed_gen < generation {
            Some(format!(
                "the controller has not seen the latest spec (observedGeneration {observed_gen} < generation {generation})"
            ))
        } else if !available_cond.is_some_and(|c| c["status"] == "True") {
            Some(match available_cond {
                Some(c) => format!(
                    "Available={} ({})",
                    c["status"].as_str().unwrap_or("?"),
                    c["reason"].as_str().unwrap_or("no reason given")
                ),
                None => "no Available condition yet".to_string(),
            })
        } else if updated != wanted || available != wanted {
            Some("not every replica is updated and available".to_string())
        } else {
            None
        };
        match problem {
            Some(p) => GateOutcome::fail(name, observed, p),
            None => GateOutcome::pass(name, observed, "Available, every replica updated"),
        }
    }
}

#[async_trait::async_trait]
impl Gate for DeploymentGate {
    fn name(&self) -> String {
        format!("deployment {}/{}", self.namespace, self.name)
    }

    async fn check(&self) -> GateOutcome {
        let unreachable = |why: String| GateOutcome::fail(self.name(), None, why);
        let config = match config_for(&self.connection).await {
            Ok(c) => c,
            Err(e) => return unreachable(format!("cannot reach the cluster: {e}")),
        };
        let client = match kube::Client::try_from(config) {
            Ok(c) => c,
            Err(e) => return unreachable(format!("cannot build a Kubernetes client: {e}")),
        };
        let api: kube::Api<Deployment> = kube::Api::namespaced(client, &self.namespace);
        match api.get_opt(&self.name).await {
            Ok(Some(dep)) => match serde_json::to_value(&dep) {
                Ok(json) => self.judge(&json),
                Err(e) => unreachable(format!("cannot read the Deployment: {e}")),
            },
            Ok(None) => unreachable("the Deployment does not exist".to_string()),
            Err(e) => unreachable(format!("cannot read the Deployment: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> DeploymentGate {
        DeploymentGate {
            connection: Connection::Context {
                context: "test".to_string(),
                kubeconfig: None,
            },
            namespace: "yelb".to_string(),
            name: "v2".to_string(),
        }
    }

    #[test]
    fn rolled_out_passes_and_each_lag_fails() {
        let g = gate();
        let base = serde_json::json!({
            "metadata": {"name": "v2", "generation": 2},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2,
                "conditions": [{"type": "Available", "status": "True"}]}
        });
        let ok = g.judge(&(base.clone()));
        assert!(ok.passed, "{ok:?}");
        let mut stale = base.clone();
        stale["status"]["observedGeneration"] = 1.into();
        assert!(
            g.judge(&(stale))
                .detail
                .contains("observedGeneration 1 < generation 2")
        );
        let mut down = base.clone();
        down["status"]["conditions"][0]["status"] = "False".into();
        assert!(!g.judge(&(down)).passed);
        let mut rolling = base.clone();
        rolling["status"]["updatedReplicas"] = 1.into();
        let r = g.judge(&(rolling));
        assert!(!r.passed);
        assert_eq!(r.observed.as_deref(), Some("1 updated, 2 available of 2"));
        let mut no_status = base;
        no_status["status"] = serde_json::json!({});
        assert!(!g.judge(&(no_status)).passed);
    }
}
