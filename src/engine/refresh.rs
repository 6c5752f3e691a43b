//! Refresh: resolve interrupted creates, then read every recorded resource
//! from the cloud with one batched read per kind.
//!
//! A resource whose cloud cannot be reached (an in-cluster object of a
//! cluster that is down or gone) does not stop the refresh: it is planned
//! from the attributes state recorded, and marked as not refreshed; and when
//! the resource hosting it (its cluster) is gone, so is it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::events::Event;
use super::{Engine, EngineError};
use crate::plan::{Prior, PriorResource};
use crate::provider::{Live, ProviderError, ReadRequest, ReadSession};
use crate::state::{ResourceState, State};

/// What a pending create turned out to be.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The address of the resource whose create was interrupted.
    pub address: String,
    /// The resource, when the interrupted create did make it.
    pub adopted: Option<ResourceState>,
    /// Why it could not be looked up (its cloud is unreachable); the
    /// pending record then stays.
    pub unresolved: Option<String>,
}

/// One kind's answer to a batched read: per request, the live resource,
/// `None` when it is gone, or why it could not be read.
type Answers = Vec<Result<Option<Live>, ProviderError>>;

impl Engine {
    /// Looks up every pending create of `state` (by tags or natural key).
    pub async fn resolve_pending(&self, state: &State) -> Result<Vec<Resolution>, EngineError> {
        let mut out = Vec::new();
        for (address, pending) in &state.pending {
            let kind = self.kind(&pending.kind)?;
            let mut cx = self.op_context(address, &pending.token);
            cx.exclude = state.ids_tracked_for(address);
            let found = match kind.find_existing(&cx, &pending.desired).await {
                Ok(Some(live)) if cx.exclude.contains(&live.id) => Ok(None),
                other => other,
            };
            let found = match found {
                Ok(found) => found,
                Err(e) if e.is_unreachable() => {
                    (self.events)(&Event::Warning {
                        address: address.clone(),
                        message: format!("cannot look up what an interrupted create made: {e}"),
                    });
                    out.push(Resolution {
                        address: address.clone(),
                        adopted: None,
                        unresolved: Some(e.to_string()),
                    });
                    continue;
                }
                Err(source) => {
                    return Err(EngineError::Provider {
                        address: address.clone(),
                        op: "resolve interrupted create",
                        source,
                    });
                }
            };
            (self.events)(&Event::PendingResolved {
                address: address.clone(),
                found: found.as_ref().map(|l| l.id.clone()),
            });
            out.push(Resolution {
                address: address.clone(),
                adopted: found.map(|live| ResourceState {
                    kind: pending.kind.clone(),
                    id: live.id,
                    attributes: live.attrs,
                    dependencies: pending.dependencies.clone(),
                }),
                unresolved: None,
            });
        }
        Ok(out)
    }

    /// Reads every resource recorded in `state` (after pending creates are
    /// resolved into it) and returns the prior the planner needs.
    pub async fn read_live(&self, state: &State) -> Result<Prior, EngineError> {
        (self.events)(&Event::Refreshing {
            count: state.resources.len(),
        });
        let mut by_kind: BTreeMap<&str, Vec<(&String, &ResourceState)>> = BTreeMap::new();
        for (address, r) in &state.resources {
            by_kind.entry(r.kind.as_str()).or_default().push((address, r));
        }
        // Every kind announces what it will read before any read starts, so
        // that kinds reading the same objects share one describe.
        let session = Arc::new(ReadSession::new());
        let mut batches = Vec::new();
        for (kind_name, items) in by_kind {
            let kind = self.kind(kind_name)?.clone();
            let requests: Vec<ReadRequest> = items
                .iter()
                .map(|(a, r)| ReadRequest {
                    address: (*a).clone(),
                    id: r.id.clone(),
                    attrs: r.attributes.clone(),
                })
                .collect();
            kind.announce(&session, &requests);
            batches.push((kind, requests));
        }
        let mut reads = tokio::task::JoinSet::new();
        for (kind, requests) in batches {
            let session = session.clone();
            reads.spawn(async move {
                let answers = read_batch(kind.as_ref(), &session, &requests).await;
                (kind.def().type_name, requests, answers)
            });
        }
        let mut prior = Prior {
            resources: BTreeMap::new(),
            outputs: state.outputs.clone().into_iter().collect(),
        };
        while let Some(joined) = reads.join_next().await {
            let (kind, requests, answers) = match joined {
                Ok(r) => r,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            let answers = answers.map_err(|source| EngineError::Provider {
                address: requests.first().map(|r| r.address.clone()).unwrap_or_default(),
                op: "refresh",
                source,
            })?;
            if answers.len() != requests.len() {
                return Err(EngineError::ShortRead {
                    kind: kind.to_string(),
                    requested: requests.len(),
                    returned: answers.len(),
                });
            }
            for (req, answer) in requests.into_iter().zip(answers) {
                let recorded = &state.resources[&req.address];
                let (live, not_refreshed) = match answer {
                    Ok(live) => {
                        // What state sealed is a secret as the cloud shows it
                        // too (an old password, before the plan replaces it).
                        if let Some(l) = &live {
                            crate::sensitive::register_unsealed(&recorded.attributes, &l.attrs);
                        }
                        (live, None)
                    }
                    Err(e) if e.is_unreachable() => {
                        (self.events)(&Event::Warning {
                            address: req.address.clone(),
                            message: format!("not refreshed: {e}"),
                        });
                        let recorded_live = Live {
                            id: recorded.id.clone(),
                            attrs: recorded.attributes.clone(),
                        };
                        (Some(recorded_live), Some(e.to_string()))
                    }
                    Err(source) => {
                        return Err(EngineError::Provider {
                            address: req.address.clone(),
                            op: "refresh",
                            source,
                        });
                    }
                };
                prior.resources.insert(
                    req.address.clone(),
                    PriorResource {
                        kind: recorded.kind.clone(),
                        id: live
                            .as_ref()
                            .map_or_else(|| recorded.id.clone(), |l| l.id.clone()),
                        live: live.map(|l| l.attrs),
                        dependencies: recorded.dependencies.clone(),
                        not_refreshed,
                    },
                );
            }
        }
        self.gone_with_their_hosts(&mut prior);
        let mut augmented = prior.resources.clone();
        for (address, found) in crate::plan::live_dependencies(&prior.resources) {
            if let Some(p) = augmented.get_mut(&address) {
                p.dependencies.extend(found);
                p.dependencies.sort();
                p.dependencies.dedup();
            }
        }
        // Only when they keep the dependencies acyclic (deletes are ordered
        // by them); a cycle would mean a misread reference.
        let edges = augmented
            .iter()
            .flat_map(|(a, p)| p.dependencies.iter().map(move |d| (d.clone(), a.clone())));
        if crate::graph::ResourceGraph::from_edges(augmented.keys().cloned(), edges).is_ok() {
            prior.resources = augmented;
        }
        Ok(prior)
    }

    /// A resource that could not be read and lives in a host (see
    /// [`crate::provider::KindDef::hosts_objects`]) that no longer exists
    /// went with it.
    fn gone_with_their_hosts(&self, prior: &mut Prior) {
        let gone_hosts: Vec<String> = prior
            .resources
            .iter()
            .filter(|(_, p)| p.live.is_none())
            .filter(|(_, p)| self.kinds.get(&p.kind).is_some_and(|k| k.def().hosts_objects))
            .map(|(a, _)| a.clone())
            .collect();
        for host in gone_hosts {
            let inside: Vec<String> = prior
                .resources
                .iter()
                .filter(|(_, p)| p.not_refreshed.is_some() && lives_in(prior, p, &host))
                .map(|(a, _)| a.clone())
                .collect();
            for address in inside {
                if let Some(p) = prior.resources.get_mut(&address) {
                    p.live = None;
                    p.not_refreshed = None;
                }
                (self.events)(&Event::Warning {
                    address,
                    message: format!("{host} no longer exists, and this went with it"),
                });
            }
        }
    }
}

/// Whether `resource` depends, directly or through other resources, on
/// `host`, by the dependencies state recorded.
fn lives_in(prior: &Prior, resource: &PriorResource, host: &str) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    let mut queue: Vec<&str> = resource.dependencies.iter().map(String::as_str).collect();
    while let Some(a) = queue.pop() {
        if a == host {
            return true;
        }
        if seen.insert(a)
            && let Some(p) = prior.resources.get(a)
        {
            queue.extend(p.dependencies.iter().map(String::as_str));
        }
    }
    false
}

/// Reads `requests` in one batch; when the batch fails because the cloud
/// of some of them cannot be reached (in-cluster objects of several
/// clusters, one down), reads them one by one so that each answer is its
/// own. Any other failure fails the batch.
async fn read_batch(
    kind: &dyn crate::provider::ResourceKind,
    session: &ReadSession,
    requests: &[ReadRequest],
) -> Result<Answers, ProviderError> {
    match kind.read_in(session, requests).await {
        Ok(lives) => Ok(lives.into_iter().map(Ok).collect()),
        Err(e) if e.is_unreachable() => {
            let mut out = Vec::with_capacity(requests.len());
            for r in requests {
                out.push(match kind.read(std::slice::from_ref(r)).await {
                    Ok(mut one) if one.len() == 1 => Ok(one.remove(0)),
                    Ok(other) => Err(ProviderError::unexpected(
                        "read",
                        format!("one request, {} answers", other.len()),
                    )),
                    Err(e) => Err(e),
                });
            }
            Ok(out)
        }
        Err(e) => Err(e),
    }
}
