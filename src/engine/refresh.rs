//! Refresh: resolve interrupted creates, then read every recorded resource
//! from the cloud with one batched read per kind.

use std::collections::BTreeMap;

use super::events::Event;
use super::{Engine, EngineError};
use crate::plan::{Prior, PriorResource};
use crate::provider::ReadRequest;
use crate::state::{ResourceState, State};

/// What a pending create turned out to be.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The address of the resource whose create was interrupted.
    pub address: String,
    /// The resource, when the interrupted create did make it.
    pub adopted: Option<ResourceState>,
}

impl Engine {
    /// Looks up every pending create of `state` (by tags or natural key).
    pub async fn resolve_pending(&self, state: &State) -> Result<Vec<Resolution>, EngineError> {
        let mut out = Vec::new();
        for (address, pending) in &state.pending {
            let kind = self.kind(&pending.kind)?;
            let cx = self.op_context(address, &pending.token);
            let found = kind
                .find_existing(&cx, &pending.desired)
                .await
                .map_err(|source| EngineError::Provider {
                    address: address.clone(),
                    op: "resolve interrupted create",
                    source,
                })?;
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
        let mut reads = tokio::task::JoinSet::new();
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
            reads.spawn(async move {
                let result = kind.read(&requests).await;
                (requests, result)
            });
        }
        let mut prior = Prior {
            resources: BTreeMap::new(),
            outputs: state.outputs.clone().into_iter().collect(),
        };
        while let Some(joined) = reads.join_next().await {
            let (requests, result) = match joined {
                Ok(r) => r,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            let lives = result.map_err(|source| EngineError::Provider {
                address: requests.first().map(|r| r.address.clone()).unwrap_or_default(),
                op: "refresh",
                source,
            })?;
            for (req, live) in requests.into_iter().zip(lives) {
                let recorded = &state.resources[&req.address];
                prior.resources.insert(
                    req.address.clone(),
                    PriorResource {
                        kind: recorded.kind.clone(),
                        id: live
                            .as_ref()
                            .map_or_else(|| recorded.id.clone(), |l| l.id.clone()),
                        live: live.map(|l| l.attrs),
                        dependencies: recorded.dependencies.clone(),
                    },
                );
            }
        }
        Ok(prior)
    }
}
