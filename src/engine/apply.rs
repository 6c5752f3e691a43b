//! Executing a plan: a graph of steps (create, update, delete) walked
//! concurrently; every step records itself in state as it happens.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Mutex;

use super::events::{Event, Op};
use super::{Engine, EngineError};
use crate::Value;
use crate::config::Stack;
use crate::graph::{Outcome, WorkGraph, walk};
use crate::plan::eval::{Lookup, Scope, desired_attrs, eval, normalize_attr};
use crate::plan::{Action, Plan};
use crate::provider::Live;
use crate::state::{PendingCreate, ResourceState, State, StateStore};

/// One unit of work: an operation on one resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Step {
    /// The address of the resource operated on.
    pub address: String,
    /// The operation. A replacement is two steps: a delete, then a create.
    pub op: Op,
}

/// How each step of an apply ended.
#[derive(Debug)]
pub struct ApplyReport {
    /// Every step of the plan and how it ended: a failure holds the error
    /// message, a skip names the failed step that caused it.
    pub outcomes: BTreeMap<Step, Outcome<Step, String>>,
}

impl ApplyReport {
    /// True when every step succeeded.
    pub fn is_success(&self) -> bool {
        self.outcomes.values().all(|o| matches!(o, Outcome::Done))
    }

    /// Steps that failed, with their errors: the root causes.
    pub fn failures(&self) -> Vec<(&Step, &str)> {
        self.outcomes
            .iter()
            .filter_map(|(s, o)| match o {
                Outcome::Failed(e) => Some((s, e.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Number of steps in each end state: (done, failed, skipped, cancelled).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0);
        for o in self.outcomes.values() {
            match o {
                Outcome::Done => c.0 += 1,
                Outcome::Failed(_) => c.1 += 1,
                Outcome::Skipped { .. } => c.2 += 1,
                Outcome::Cancelled => c.3 += 1,
            }
        }
        c
    }
}

/// Values from the state as it is now, for evaluating references at apply
/// time (when every dependency is done, every value must be known).
struct StateScope<'a> {
    state: &'a State,
    azs: &'a [String],
}

impl Scope for StateScope<'_> {
    fn attr(&self, resource: &str, attr: &str) -> Lookup {
        let Some(r) = self.state.resources.get(resource) else {
            return Lookup::Missing;
        };
        if attr == "id" {
            return Lookup::Known(Value::String(r.id.clone()));
        }
        r.attributes
            .get(attr)
            .cloned()
            .map_or(Lookup::Missing, Lookup::Known)
    }
    fn azs(&self) -> &[String] {
        self.azs
    }
}

/// Builds the step graph for a plan. Creates and updates follow the stack's
/// dependencies; deletes run in reverse of the dependencies recorded in
/// state; a replacement deletes before it creates.
pub fn step_graph(plan: &Plan, state: &State) -> WorkGraph<Step> {
    let mut g = WorkGraph::new();
    let step = |address: &str, op| Step {
        address: address.to_string(),
        op,
    };
    let mut forward: BTreeMap<&str, Step> = BTreeMap::new();
    let mut deletes: BTreeMap<&str, Step> = BTreeMap::new();
    for r in &plan.resources {
        match r.action {
            Action::NoOp => {}
            Action::Create => {
                forward.insert(&r.address, step(&r.address, Op::Create));
            }
            Action::Update => {
                forward.insert(&r.address, step(&r.address, Op::Update));
            }
            Action::Delete => {
                deletes.insert(&r.address, step(&r.address, Op::Delete));
            }
            Action::Replace => {
                deletes.insert(&r.address, step(&r.address, Op::Delete));
                forward.insert(&r.address, step(&r.address, Op::Create));
            }
        }
    }
    for s in deletes.values().chain(forward.values()) {
        g.add(s.clone());
    }
    for r in &plan.resources {
        if let Some(s) = forward.get(r.address.as_str()) {
            for dep in &r.dependencies {
                if let Some(d) = forward.get(dep.as_str()) {
                    g.order(d, s);
                }
            }
        }
        if let (Some(del), Some(create)) = (deletes.get(r.address.as_str()), forward.get(r.address.as_str()))
        {
            g.order(del, create);
        }
    }
    // A recorded resource that depends on X goes (or stops referring to X)
    // before X is deleted.
    for (address, recorded) in &state.resources {
        for dep in &recorded.dependencies {
            let Some(dep_delete) = deletes.get(dep.as_str()) else {
                continue;
            };
            if let Some(own_delete) = deletes.get(address.as_str()) {
                g.order(own_delete, dep_delete);
            } else if let Some(own_update) = forward.get(address.as_str()).filter(|s| s.op == Op::Update) {
                g.order(own_update, dep_delete);
            }
        }
    }
    g
}

/// Test hooks, inert unless `MESHFORM_FAILPOINT` is set. Right after the
/// cloud create of `<address>` returns and before state records it:
/// - `after-create:<address>` announces itself on stderr and hangs, so a
///   crash-safety test can SIGKILL the process in exactly that window;
/// - `delay-after-create:<address>` announces itself and waits two seconds,
///   so an interrupt test can press Ctrl-C while that create is in flight.
async fn failpoint_after_create(address: &str) {
    let Ok(fp) = std::env::var("MESHFORM_FAILPOINT") else {
        return;
    };
    if fp.strip_prefix("after-create:") == Some(address) {
        eprintln!("meshform: failpoint after-create:{address} reached");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    if fp.strip_prefix("delay-after-create:") == Some(address) {
        eprintln!("meshform: failpoint delay-after-create:{address} reached");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

impl Engine {
    /// Executes `plan`, recording every step in `store`. `stack` gives the
    /// expressions to evaluate for creates and updates (a destroy plan needs
    /// none).
    pub async fn apply(
        &self,
        stack: Option<&Stack>,
        plan: &Plan,
        store: Arc<Mutex<StateStore>>,
        azs: &[String],
    ) -> Result<ApplyReport, EngineError> {
        let graph = {
            let guard = store.lock().await;
            step_graph(plan, guard.state())
        };
        let stack = Arc::new(stack.cloned());
        let azs: Arc<Vec<String>> = Arc::new(azs.to_vec());
        let deps: Arc<BTreeMap<String, Vec<String>>> = Arc::new(
            plan.resources
                .iter()
                .map(|r| (r.address.clone(), r.dependencies.clone()))
                .collect(),
        );
        let outcomes = walk(&graph, self.parallelism, &self.cancel, |step: Step| {
            let engine = self.clone();
            let store = store.clone();
            let stack = stack.clone();
            let azs = azs.clone();
            let deps = deps.clone();
            async move {
                let started = Instant::now();
                (engine.events)(&Event::Started {
                    address: step.address.clone(),
                    op: step.op,
                });
                let result = engine
                    .run_step(&step, (*stack).as_ref(), &store, &azs, &deps)
                    .await;
                match &result {
                    Ok(id) => (engine.events)(&Event::Finished {
                        address: step.address.clone(),
                        op: step.op,
                        id: id.clone(),
                        elapsed: started.elapsed(),
                    }),
                    Err(e) => (engine.events)(&Event::Failed {
                        address: step.address.clone(),
                        op: step.op,
                        error: e.to_string(),
                        elapsed: started.elapsed(),
                    }),
                }
                result.map(|_| ()).map_err(|e| e.to_string())
            }
        })
        .await;
        for (step, outcome) in &outcomes {
            match outcome {
                Outcome::Skipped { because } => (self.events)(&Event::Skipped {
                    address: step.address.clone(),
                    op: step.op,
                    because: because.address.clone(),
                }),
                Outcome::Cancelled => (self.events)(&Event::Cancelled {
                    address: step.address.clone(),
                    op: step.op,
                }),
                _ => {}
            }
        }
        self.save_outputs(stack.as_ref().as_ref(), plan, &store, &azs)
            .await?;
        Ok(ApplyReport { outcomes })
    }

    async fn run_step(
        &self,
        step: &Step,
        stack: Option<&Stack>,
        store: &Mutex<StateStore>,
        azs: &[String],
        deps: &BTreeMap<String, Vec<String>>,
    ) -> Result<Option<String>, EngineError> {
        let address = &step.address;
        match step.op {
            Op::Delete => {
                let recorded = store.lock().await.state().resources.get(address).cloned();
                let Some(recorded) = recorded else { return Ok(None) };
                let kind = self.kind(&recorded.kind)?;
                let cx = self.op_context(address, "");
                let prior = Live {
                    id: recorded.id.clone(),
                    attrs: recorded.attributes.clone(),
                };
                kind.delete(&cx, &prior)
                    .await
                    .map_err(|source| EngineError::Provider {
                        address: address.clone(),
                        op: "delete",
                        source,
                    })?;
                store.lock().await.remove_resource(address)?;
                Ok(Some(recorded.id))
            }
            Op::Create | Op::Update => {
                let stack =
                    stack.ok_or_else(|| EngineError::Internal(format!("{address}: no stack to evaluate")))?;
                let resource = stack
                    .resources
                    .get(address)
                    .ok_or_else(|| EngineError::Internal(format!("{address}: not in the stack")))?;
                let desired = {
                    let guard = store.lock().await;
                    let scope = StateScope {
                        state: guard.state(),
                        azs,
                    };
                    let (known, unknown) =
                        desired_attrs(resource, &stack.name, &scope).map_err(|source| EngineError::Eval {
                            address: address.clone(),
                            source,
                        })?;
                    if let Some(name) = unknown.iter().next() {
                        return Err(EngineError::Internal(format!(
                            "{address}: `{name}` is still unknown at apply time"
                        )));
                    }
                    known
                };
                let kind = self.kind(resource.kind.type_name)?;
                let dependencies = deps.get(address).cloned().unwrap_or_default();
                if step.op == Op::Create {
                    let token = uuid::Uuid::new_v4().to_string();
                    store.lock().await.begin_create(
                        address,
                        PendingCreate {
                            kind: resource.kind.type_name.to_string(),
                            token: token.clone(),
                            started_at: crate::state::now_rfc3339(),
                            desired: desired.clone(),
                            dependencies: dependencies.clone(),
                        },
                    )?;
                    let cx = self.op_context(address, &token);
                    // On failure the pending record stays: the call may have
                    // created something, and the next run looks for it.
                    let live = kind
                        .create(&cx, &desired)
                        .await
                        .map_err(|source| EngineError::Provider {
                            address: address.clone(),
                            op: "create",
                            source,
                        })?;
                    failpoint_after_create(address).await;
                    let id = live.id.clone();
                    store.lock().await.finish_create(
                        address,
                        ResourceState {
                            kind: resource.kind.type_name.to_string(),
                            id: live.id,
                            attributes: live.attrs,
                            dependencies,
                        },
                    )?;
                    Ok(Some(id))
                } else {
                    let recorded = store
                        .lock()
                        .await
                        .state()
                        .resources
                        .get(address)
                        .cloned()
                        .ok_or_else(|| {
                            EngineError::Internal(format!("{address}: update of a resource not in state"))
                        })?;
                    let changed: Vec<String> = desired
                        .iter()
                        .filter(|(name, v)| {
                            let live = recorded.attributes.get(*name).cloned();
                            live.map(|l| normalize_attr(resource.kind, name, l)).as_ref() != Some(*v)
                        })
                        .map(|(name, _)| name.clone())
                        .collect();
                    let prior = Live {
                        id: recorded.id.clone(),
                        attrs: recorded.attributes.clone(),
                    };
                    let cx = self.op_context(address, "");
                    let live = kind
                        .update(&cx, &prior, &desired, &changed)
                        .await
                        .map_err(|source| EngineError::Provider {
                            address: address.clone(),
                            op: "update",
                            source,
                        })?;
                    let id = live.id.clone();
                    store.lock().await.put_resource(
                        address,
                        ResourceState {
                            kind: resource.kind.type_name.to_string(),
                            id: live.id,
                            attributes: live.attrs,
                            dependencies,
                        },
                    )?;
                    Ok(Some(id))
                }
            }
        }
    }

    /// Records the stack's outputs from state: every output whose value can
    /// be computed from what exists now.
    async fn save_outputs(
        &self,
        stack: Option<&Stack>,
        plan: &Plan,
        store: &Mutex<StateStore>,
        azs: &[String],
    ) -> Result<(), EngineError> {
        let mut guard = store.lock().await;
        let outputs: BTreeMap<String, Value> = match stack {
            Some(stack) if !plan.destroy => {
                let scope = StateScope {
                    state: guard.state(),
                    azs,
                };
                stack
                    .outputs
                    .iter()
                    .filter_map(|(name, o)| eval(&o.expr, &scope).ok().flatten().map(|v| (name.clone(), v)))
                    .collect()
            }
            _ => BTreeMap::new(),
        };
        if outputs != guard.state().outputs {
            guard.set_outputs(outputs)?;
        }
        Ok(())
    }
}

/// Records refreshed attributes of resources that the plan leaves alone,
/// and the outcome of interrupted creates, before any step runs.
pub fn refreshed_state(state: &State, prior: &crate::plan::Prior) -> BTreeMap<String, ResourceState> {
    let mut out = BTreeMap::new();
    for (address, p) in &prior.resources {
        if let (Some(live), Some(recorded)) = (&p.live, state.resources.get(address)) {
            out.insert(
                address.clone(),
                ResourceState {
                    kind: recorded.kind.clone(),
                    id: p.id.clone(),
                    attributes: live.clone(),
                    dependencies: recorded.dependencies.clone(),
                },
            );
        }
    }
    out
}
