//! Executing a plan: its step graph walked concurrently; every step records
//! itself in state as it happens.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::events::{Event, Op};
use super::steps::{Step, step_graph_omitting};
use super::{Engine, EngineError};
use crate::config::{Resource, Stack};
use crate::graph::{CancelFlag, Outcome, walk};
use crate::plan::eval::{Lookup, Scope, desired_attrs, eval, normalize_attr};
use crate::plan::{Action, Detach, Plan, ReplaceOrder, ResourceChange};
use crate::provider::{InPlace, KindDef, Live, OpContext, ProviderError, ResourceKind};
use crate::state::{PendingCreate, ResourceState, State, StateStore};
use crate::{Attrs, Value};

/// How many times a create that failed with a transient error (throttling,
/// a server fault, a lost connection) is tried in all, looking for what an
/// earlier attempt may have made before each new one.
const CREATE_ATTEMPTS: u32 = 4;
/// The pause before the second attempt; doubled before each next one.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);

/// How each step of an apply ended.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Every step of the plan and how it ended: a failure holds the error,
    /// a skip names the failed step that caused it.
    pub outcomes: BTreeMap<Step, Outcome<Step, EngineError>>,
    /// Set when writing state failed: the run stopped starting steps.
    pub state_failure: Option<StateFailure>,
    /// Resources dropped from state without a delete call, because their
    /// cloud could not be reached and the resource hosting them was
    /// deleted (in-cluster objects of a deleted cluster): address and host.
    pub dropped: Vec<(String, String)>,
}

/// Where state stood when a write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFailure {
    /// The step whose result could not be recorded.
    pub step: Step,
    /// The state's location: it holds the last version written.
    pub location: String,
    /// Where the version before it is kept.
    pub backup: String,
}

impl ApplyReport {
    /// True when every step succeeded and state recorded every one.
    pub fn is_success(&self) -> bool {
        self.state_failure.is_none() && self.outcomes.values().all(|o| matches!(o, Outcome::Done))
    }

    /// Steps that failed, with their errors: the root causes.
    pub fn failures(&self) -> Vec<(&Step, &EngineError)> {
        self.outcomes
            .iter()
            .filter_map(|(s, o)| match o {
                Outcome::Failed(e) => Some((s, e)),
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

/// What one apply shares between its steps.
struct Run {
    stack: Option<Stack>,
    plan: Plan,
    /// The position of each address's change in `plan.resources`: steps
    /// look their change up by address, and a scan each time would make an
    /// apply quadratic in the plan's size.
    positions: HashMap<String, usize>,
    store: Arc<Mutex<StateStore>>,
    azs: Vec<String>,
    /// Resources that host others (see [`KindDef::hosts_objects`]) and are
    /// deleted by this run.
    deleted_hosts: BTreeSet<String>,
    /// Resources whose delete could not reach their cloud, by the host
    /// whose deletion drops them from state.
    deferred: std::sync::Mutex<BTreeMap<String, Vec<String>>>,
    /// The first step whose state write failed.
    state_failure: std::sync::Mutex<Option<StateFailure>>,
    /// Resources dropped with their host.
    dropped: std::sync::Mutex<Vec<(String, String)>>,
    /// Where state is kept and its backup, for a state failure's report.
    location: (String, String),
    /// For create-before-destroy replacements under way: the address state
    /// keeps the old object under until its delete step.
    deposed: std::sync::Mutex<BTreeMap<String, String>>,
    /// Set when the run stops (Ctrl-C or a failed state write): steps in
    /// flight finish, but retry nothing.
    stop: CancelFlag,
}

impl Run {
    /// The plan's change of `address`.
    fn change(&self, address: &str) -> Option<&ResourceChange> {
        self.positions
            .get(address)
            .and_then(|&i| self.plan.resources.get(i))
    }

    /// Fails with [`EngineError::Stopped`] once the run is stopping, so that
    /// a step that started but has not yet called the cloud calls nothing.
    fn check_going(&self) -> Result<(), EngineError> {
        if self.stop.is_cancelled() {
            Err(EngineError::Stopped)
        } else {
            Ok(())
        }
    }
}

/// Locks a mutex that guards plain data; a panic elsewhere cannot leave it
/// inconsistent, so a poisoned lock is used as is.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Executes `plan`, recording every step in `store`. `stack` gives the
    /// expressions to evaluate for creates and updates (a destroy plan needs
    /// none). The step graph is checked before any cloud call.
    ///
    /// A failed step fails its dependents (skipped) and lets independent
    /// steps finish. A failed state write stops the run: nothing new starts,
    /// steps in flight finish and are recorded if state can still be
    /// written, and the report's `state_failure` says where state stands.
    pub async fn apply(
        &self,
        stack: Option<&Stack>,
        plan: &Plan,
        store: Arc<Mutex<StateStore>>,
        azs: &[String],
    ) -> Result<ApplyReport, EngineError> {
        let (graph, deleted_hosts, location) = {
            let mut guard = store.lock().await;
            let graph = step_graph_omitting(plan, guard.state(), self.omit)?;
            record_unchanged_dependencies(plan, &mut guard)?;
            let hosts = plan
                .resources
                .iter()
                .filter(|r| matches!(r.action, Action::Delete | Action::Replace))
                .filter(|r| self.kinds.get(&r.kind).is_some_and(|k| k.def().hosts_objects))
                .map(|r| r.address.clone())
                .collect();
            (graph, hosts, (guard.location(), guard.backup_location()))
        };
        let run = Arc::new(Run {
            stack: stack.cloned(),
            plan: plan.clone(),
            positions: plan
                .resources
                .iter()
                .enumerate()
                .map(|(i, r)| (r.address.clone(), i))
                .collect(),
            store: store.clone(),
            azs: azs.to_vec(),
            deleted_hosts,
            deferred: Default::default(),
            state_failure: Default::default(),
            dropped: Default::default(),
            location,
            deposed: Default::default(),
            // Stopped by the user's cancel, or by a failed state write.
            stop: self.cancel.child(),
        });
        let stop = run.stop.clone();
        let outcomes = walk(&graph, self.parallelism, &stop, |step: Step| {
            let engine = self.clone();
            let run = run.clone();
            let stop = stop.clone();
            async move {
                run.check_going()?;
                let started = Instant::now();
                (engine.events)(&Event::Started {
                    address: step.address.clone(),
                    op: step.op,
                });
                let result = engine.run_step(&step, &run).await;
                match &result {
                    Ok(id) => (engine.events)(&Event::Finished {
                        address: step.address.clone(),
                        op: step.op,
                        id: id.clone(),
                        elapsed: started.elapsed(),
                    }),
                    // Reported as not started once the walk is over.
                    Err(EngineError::Stopped) => {}
                    Err(e) => {
                        if matches!(e, EngineError::State(_)) {
                            stop.cancel();
                            let mut failure = lock(&run.state_failure);
                            if failure.is_none() {
                                *failure = Some(StateFailure {
                                    step: step.clone(),
                                    location: run.location.0.clone(),
                                    backup: run.location.1.clone(),
                                });
                            }
                        }
                        (engine.events)(&Event::Failed {
                            address: step.address.clone(),
                            op: step.op,
                            error: e.to_string(),
                            elapsed: started.elapsed(),
                        })
                    }
                }
                result.map(|_| ())
            }
        })
        .await;
        let outcomes = not_started_as_cancelled(outcomes);
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
        let state_failure = lock(&run.state_failure).take();
        if state_failure.is_none() {
            self.save_outputs(stack, plan, &store, azs).await?;
        }
        let dropped = std::mem::take(&mut *lock(&run.dropped));
        Ok(ApplyReport {
            outcomes,
            state_failure,
            dropped,
        })
    }

    /// Runs one step; returns the resource's cloud id.
    async fn run_step(&self, step: &Step, run: &Run) -> Result<Option<String>, EngineError> {
        match step.op {
            Op::Delete => self.delete_step(&step.address, run).await,
            Op::Detach => self.detach_step(&step.address, run).await,
            Op::Expand => self.expand_step(&step.address, run).await,
            Op::Create | Op::Update => self.forward_step(step, run).await,
        }
    }

    async fn delete_step(&self, step_address: &str, run: &Run) -> Result<Option<String>, EngineError> {
        // A create-before-destroy replacement deletes the old object, which
        // its create step moved to a deposed address.
        let replaced_first = run.change(step_address).is_some_and(|c| {
            c.action == Action::Replace && c.replace_order == Some(ReplaceOrder::CreateBeforeDestroy)
        });
        let deposed = lock(&run.deposed).get(step_address).cloned();
        let address = match (replaced_first, deposed.as_deref()) {
            (true, Some(d)) => d,
            (true, None) => {
                return Err(EngineError::Internal(format!(
                    "{step_address}: the old object's address is unknown (its replacement was not created)"
                )));
            }
            (false, _) => step_address,
        };
        let recorded = run.store.lock().await.state().resources.get(address).cloned();
        let Some(recorded) = recorded else { return Ok(None) };
        let kind = self.kind(&recorded.kind)?;
        let cx = self.op_context(address, "");
        let prior = Live {
            id: recorded.id.clone(),
            attrs: recorded.attributes.clone(),
        };
        run.check_going()?;
        failpoint("before-delete", step_address).await?;
        if let Err(source) = kind.delete(&cx, &prior).await {
            if source.is_unreachable()
                && let Some(host) = self.deleted_host_of(address, run).await
            {
                (self.events)(&Event::Warning {
                    address: address.to_string(),
                    message: format!("{source}; it goes with {host}, which this run deletes"),
                });
                lock(&run.deferred)
                    .entry(host)
                    .or_default()
                    .push(address.to_string());
                return Ok(Some(recorded.id));
            }
            return Err(EngineError::Provider {
                address: address.to_string(),
                op: "delete",
                source,
            });
        }
        failpoint("after-delete", step_address).await?;
        // Objects are deferred to the host by its address in the stack.
        let mut dropped = lock(&run.deferred).remove(step_address).unwrap_or_default();
        let mut store = run.store.lock().await;
        if kind.def().hosts_objects {
            // Interrupted creates inside it cannot be resolved any more:
            // whatever they made went with it.
            dropped.extend(
                store
                    .state()
                    .pending
                    .iter()
                    .filter(|(_, p)| p.dependencies.iter().any(|d| d == step_address))
                    .map(|(a, _)| a.clone()),
            );
        }
        let mut forgotten = vec![address.to_string()];
        forgotten.extend(dropped.iter().cloned());
        store.forget(&format!("remove/{address}"), forgotten, dropped.clone())?;
        drop(store);
        for d in dropped {
            (self.events)(&Event::Dropped {
                address: d.clone(),
                host: step_address.to_string(),
            });
            lock(&run.dropped).push((d, step_address.to_string()));
        }
        Ok(Some(recorded.id))
    }

    /// The host (a resource deleted by this run whose kind hosts objects)
    /// that `address` lives in, following the dependencies state records.
    async fn deleted_host_of(&self, address: &str, run: &Run) -> Option<String> {
        let store = run.store.lock().await;
        let state = store.state();
        let mut seen = BTreeSet::new();
        let mut queue = vec![address.to_string()];
        while let Some(a) = queue.pop() {
            let Some(r) = state.resources.get(&a) else {
                continue;
            };
            for d in &r.dependencies {
                if run.deleted_hosts.contains(d) {
                    return Some(d.clone());
                }
                if seen.insert(d.clone()) {
                    queue.push(d.clone());
                }
            }
        }
        None
    }

    /// Removes from the resource's lists the references the plan says it
    /// must let go of before their objects are deleted.
    async fn detach_step(&self, address: &str, run: &Run) -> Result<Option<String>, EngineError> {
        let change = run.change(address).ok_or_else(|| {
            EngineError::Internal(format!("{address}: detach of a resource not in the plan"))
        })?;
        let recorded = run.store.lock().await.state().resources.get(address).cloned();
        let recorded = recorded
            .ok_or_else(|| EngineError::Internal(format!("{address}: detach of a resource not in state")))?;
        let kind = self.kind(&recorded.kind)?;
        let (desired, changed) = detached(&recorded.attributes, &change.detach_from);
        if changed.is_empty() {
            return Ok(Some(recorded.id));
        }
        let dependencies = recorded.dependencies.clone();
        self.update_recorded(
            run,
            address,
            "detach",
            kind.as_ref(),
            recorded,
            &desired,
            &changed,
            dependencies,
        )
        .await
    }

    /// The stack's resource at `address` and its desired attributes,
    /// evaluated over state as it is now (what it depends on is applied).
    async fn desired_now<'r>(
        &self,
        address: &str,
        run: &'r Run,
    ) -> Result<(&'r Resource, Attrs), EngineError> {
        let stack = run
            .stack
            .as_ref()
            .ok_or_else(|| EngineError::Internal(format!("{address}: no stack to evaluate")))?;
        let resource = stack
            .resources
            .get(address)
            .ok_or_else(|| EngineError::Internal(format!("{address}: not in the stack")))?;
        let guard = run.store.lock().await;
        let scope = StateScope {
            state: guard.state(),
            azs: &run.azs,
        };
        let (known, unknown) =
            desired_attrs(resource, &stack.name, &scope).map_err(|source| EngineError::Eval {
                address: address.to_string(),
                source,
            })?;
        if let Some(name) = unknown.iter().next() {
            return Err(EngineError::Internal(format!(
                "{address}: `{name}` is still unknown at apply time"
            )));
        }
        Ok((resource, known))
    }

    /// Make-before-break's interim update: the object gets what its update
    /// adds and keeps what the update removes, so that dependents changing
    /// next find both (see `plan::make_before_break`).
    async fn expand_step(&self, address: &str, run: &Run) -> Result<Option<String>, EngineError> {
        let (resource, desired) = self.desired_now(address, run).await?;
        let recorded = run.store.lock().await.state().resources.get(address).cloned();
        let recorded = recorded
            .ok_or_else(|| EngineError::Internal(format!("{address}: expand of a resource not in state")))?;
        let expand = resource.kind.expand.ok_or_else(|| {
            EngineError::Internal(format!(
                "{address}: {} has no interim form",
                resource.kind.type_name
            ))
        })?;
        let interim = expand(&recorded.attributes, &desired);
        let changed = changed_attrs(resource.kind, &recorded.attributes, &interim);
        if changed.is_empty() {
            return Ok(Some(recorded.id));
        }
        let kind = self.kind(resource.kind.type_name)?.clone();
        let dependencies = recorded.dependencies.clone();
        self.update_recorded(
            run,
            address,
            "expand",
            kind.as_ref(),
            recorded,
            &interim,
            &changed,
            dependencies,
        )
        .await
    }

    async fn forward_step(&self, step: &Step, run: &Run) -> Result<Option<String>, EngineError> {
        let address = step.address.as_str();
        let (resource, desired) = self.desired_now(address, run).await?;
        let kind = self.kind(resource.kind.type_name)?.clone();
        let dependencies = run
            .change(address)
            .map(|c| c.dependencies.clone())
            .unwrap_or_default();
        let record = |live: Live| ResourceState {
            kind: resource.kind.type_name.to_string(),
            id: live.id,
            attributes: live.attrs,
            dependencies: dependencies.clone(),
        };
        if step.op == Op::Create {
            let token = uuid::Uuid::new_v4().to_string();
            let pending = PendingCreate {
                kind: resource.kind.type_name.to_string(),
                token: token.clone(),
                started_at: crate::state::now_rfc3339(),
                desired: desired.clone(),
                dependencies: dependencies.clone(),
            };
            let replaces_first = run.change(address).is_some_and(|c| {
                c.action == Action::Replace && c.replace_order == Some(ReplaceOrder::CreateBeforeDestroy)
            });
            let mut cx = self.op_context(address, &token);
            {
                let mut store = run.store.lock().await;
                // Checked under the lock: a state write that failed while
                // this step waited for it stops the run.
                run.check_going()?;
                if replaces_first {
                    let deposed = store.begin_replacement(address, pending)?;
                    lock(&run.deposed).insert(address.to_string(), deposed);
                } else {
                    store.begin_create(address, pending)?;
                }
                cx.exclude = store.state().ids_tracked_for(address);
            }
            failpoint("before-create", address).await?;
            // On failure the pending record stays: the call may have made
            // something, and the next run looks for it.
            let live = self
                .create_resolving_doubt(&kind, &cx, &desired, &run.stop)
                .await?;
            failpoint("after-create", address).await?;
            let id = live.id.clone();
            run.store.lock().await.finish_create(address, record(live))?;
            Ok(Some(id))
        } else {
            let recorded = run.store.lock().await.state().resources.get(address).cloned();
            let recorded = recorded.ok_or_else(|| {
                EngineError::Internal(format!("{address}: update of a resource not in state"))
            })?;
            let changed = changed_attrs(resource.kind, &recorded.attributes, &desired);
            self.update_recorded(
                run,
                address,
                "update",
                kind.as_ref(),
                recorded,
                &desired,
                &changed,
                dependencies,
            )
            .await
        }
    }

    /// Updates the object state records at `address` to `desired` (the
    /// attributes `changed` differ), and records the result with
    /// `dependencies`. `op` names the step in errors.
    #[allow(clippy::too_many_arguments)]
    async fn update_recorded(
        &self,
        run: &Run,
        address: &str,
        op: &'static str,
        kind: &dyn ResourceKind,
        recorded: ResourceState,
        desired: &Attrs,
        changed: &[String],
        dependencies: Vec<String>,
    ) -> Result<Option<String>, EngineError> {
        let prior = Live {
            id: recorded.id.clone(),
            attrs: recorded.attributes.clone(),
        };
        // A kind's update never sees a change it cannot make in place: the
        // planner replaces a resource whose force-new attribute changes, and
        // a plan saying otherwise (edited, or from a buggy planner) stops
        // here rather than in each kind.
        let force_new: Vec<&str> = changed
            .iter()
            .filter(|name| kind.def().attr(name).is_some_and(|a| a.force_new))
            .map(String::as_str)
            .collect();
        if !force_new.is_empty() {
            return Err(EngineError::Internal(format!(
                "{address}: an in-place {op} would change {}, which only a replacement can change",
                force_new.join(", ")
            )));
        }
        let cx = self.op_context(address, "");
        run.check_going()?;
        failpoint("before-update", address).await?;
        let change = InPlace {
            prior: &prior,
            desired,
            changed,
        };
        let live = kind
            .update(&cx, change)
            .await
            .map_err(|source| EngineError::Provider {
                address: address.to_string(),
                op,
                source,
            })?;
        failpoint("after-update", address).await?;
        let id = live.id.clone();
        run.store.lock().await.put_resource(
            address,
            ResourceState {
                kind: recorded.kind,
                id: live.id,
                attributes: live.attrs,
                dependencies,
            },
        )?;
        Ok(Some(id))
    }

    /// Creates a resource. When the create fails in a way that leaves it
    /// open whether it took effect (a lost answer, throttling, a server
    /// fault), looks for the resource by its ownership tags or natural key
    /// before trying again, so that nothing is made twice; a resource found
    /// is brought to the desired attributes that can change in place.
    async fn create_resolving_doubt(
        &self,
        kind: &Arc<dyn ResourceKind>,
        cx: &OpContext,
        desired: &Attrs,
        stop: &CancelFlag,
    ) -> Result<Live, EngineError> {
        let failed = |source| EngineError::Provider {
            address: cx.address.clone(),
            op: "create",
            source,
        };
        let mut delay = FIRST_RETRY_DELAY;
        let mut attempt = 1;
        loop {
            let source = match kind.create(cx, desired).await {
                Ok(live) => return Ok(live),
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(failed(e)),
            };
            // A lookup that fails leaves the doubt open: trying the create
            // again could make a second object. Give up; the pending record
            // stays, and the next run looks again.
            let found = match kind.find_existing(cx, desired).await {
                Ok(found) => found.filter(|f| !cx.exclude.contains(&f.id)),
                Err(lookup) => {
                    cx.progress.report(&format!(
                        "cannot tell whether the failed create made anything: the lookup failed ({lookup})"
                    ));
                    return Err(failed(source));
                }
            };
            if let Some(found) = found {
                cx.progress.report(&format!(
                    "found {} after a create that failed with: {source}",
                    found.id
                ));
                let changed = changed_attrs(kind.def(), &found.attrs, desired);
                let in_place = changed
                    .iter()
                    .all(|name| kind.def().attr(name).is_none_or(|a| !a.force_new));
                if changed.is_empty() || !in_place {
                    return Ok(found);
                }
                let change = InPlace {
                    prior: &found,
                    desired,
                    changed: &changed,
                };
                return kind.update(cx, change).await.map_err(failed);
            }
            if attempt >= CREATE_ATTEMPTS || stop.is_cancelled() {
                return Err(failed(source));
            }
            cx.progress.report(&format!(
                "create failed ({source}); nothing was made; trying again in {:.1}s",
                delay.as_secs_f64()
            ));
            tokio::time::sleep(delay).await;
            if stop.is_cancelled() {
                return Err(failed(source));
            }
            delay *= 2;
            attempt += 1;
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
        // A partial plan (`--target`) changes only the outputs it plans to
        // change; the others keep what the last apply recorded, as they
        // may depend on changes it left out.
        let outputs = if plan.partial {
            let mut kept = guard.state().outputs.clone();
            for o in plan.outputs.iter().filter(|o| o.is_change()) {
                match outputs.get(&o.name) {
                    Some(v) if !plan.destroy => kept.insert(o.name.clone(), v.clone()),
                    _ => kept.remove(&o.name),
                };
            }
            kept
        } else {
            outputs
        };
        if outputs != guard.state().outputs {
            guard.set_outputs(outputs)?;
        }
        Ok(())
    }
}

/// Steps that stopped before their cloud call because the run was stopping
/// (and what was skipped because of them) were never started: cancelled.
fn not_started_as_cancelled(
    mut outcomes: BTreeMap<Step, Outcome<Step, EngineError>>,
) -> BTreeMap<Step, Outcome<Step, EngineError>> {
    let stopped: BTreeSet<Step> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(EngineError::Stopped)))
        .map(|(s, _)| s.clone())
        .collect();
    for o in outcomes.values_mut() {
        let cancel = match o {
            Outcome::Failed(EngineError::Stopped) => true,
            Outcome::Skipped { because } => stopped.contains(because),
            _ => false,
        };
        if cancel {
            *o = Outcome::Cancelled;
        }
    }
    outcomes
}

/// A test failpoint at an engine step (see [`crate::failpoint`]); a `fail-`
/// failpoint fails the step.
async fn failpoint(point: &str, address: &str) -> Result<(), EngineError> {
    crate::failpoint::hit(point, address)
        .await
        .map_err(|spec| EngineError::Provider {
            address: address.to_string(),
            op: "failpoint",
            source: ProviderError::unexpected("failpoint", spec),
        })
}

/// The desired attributes that differ from `current` (normalised as the
/// planner compares them).
fn changed_attrs(kind: &KindDef, current: &Attrs, desired: &Attrs) -> Vec<String> {
    desired
        .iter()
        .filter(|(name, v)| {
            let live = current.get(*name).cloned();
            !crate::sensitive::same(live.map(|l| normalize_attr(kind, name, l)).as_ref(), Some(*v))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// `attrs` with the values of `detaches` removed from their lists, and the
/// attributes that changed.
fn detached(attrs: &Attrs, detaches: &[Detach]) -> (Attrs, Vec<String>) {
    let mut out = attrs.clone();
    let mut changed = Vec::new();
    for d in detaches {
        if let Some(Value::Array(items)) = out.get_mut(&d.attribute) {
            let before = items.len();
            items.retain(|i| !i.as_str().is_some_and(|s| d.values.iter().any(|v| v == s)));
            if items.len() != before && !changed.contains(&d.attribute) {
                changed.push(d.attribute.clone());
            }
        }
    }
    (out, changed)
}

/// Records the dependencies of resources the plan leaves unchanged as the
/// stack now gives them: their live objects match the stack, so they refer
/// to what it says, and deletes are ordered by these.
fn record_unchanged_dependencies(plan: &Plan, store: &mut StateStore) -> Result<(), EngineError> {
    let stale: Vec<(&str, &Vec<String>)> = plan
        .resources
        .iter()
        .filter(|r| r.action == Action::NoOp)
        .filter(|r| {
            store
                .state()
                .resources
                .get(&r.address)
                .is_some_and(|s| s.dependencies != r.dependencies)
        })
        .map(|r| (r.address.as_str(), &r.dependencies))
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    store.update_labeled("dependencies", |s| {
        for (address, deps) in stale {
            if let Some(r) = s.resources.get_mut(address) {
                r.dependencies.clone_from(deps);
            }
        }
    })?;
    Ok(())
}

/// Records refreshed attributes of resources the plan leaves alone,
/// and the outcome of interrupted creates, before any step runs.
pub fn refreshed_state(state: &State, prior: &crate::plan::Prior) -> BTreeMap<String, ResourceState> {
    let mut out = BTreeMap::new();
    for (address, p) in &prior.resources {
        if p.not_refreshed.is_some() {
            continue;
        }
        if let (Some(live), Some(recorded)) = (&p.live, state.resources.get(address)) {
            out.insert(
                address.clone(),
                ResourceState {
                    kind: recorded.kind.clone(),
                    id: p.id.clone(),
                    attributes: live.clone(),
                    // With the references the live object shows added.
                    dependencies: p.dependencies.clone(),
                },
            );
        }
    }
    out
}

impl Engine {
    /// An engine whose step graphs leave out the edges that make a
    /// dependent let go of what it depends on before that is deleted: a
    /// deliberately broken engine, for showing that the randomized harness
    /// notices.
    #[cfg(test)]
    pub(crate) fn sabotaged(mut self) -> Engine {
        self.omit = super::steps::Omit { reverse_edges: true };
        self
    }
}
