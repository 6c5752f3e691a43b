//! The lifecycle an EKS cluster and an EKS node group share: wait until
//! `ACTIVE`, adopt a name this stack already holds after a create found it
//! taken, find an owned one, wait until gone. Each kind says how to
//! describe one object and read its status, tags and health; the waits, the
//! ownership checks and the wording of their errors live here once.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::eks_util::{Step, wait_for, waiting_on};
use super::toolkit::ownership::{owned_by, owner_of};
use crate::provider::{Live, OpContext, ProviderError};

/// What the lifecycle needs to know about a kind of EKS object (a cluster,
/// a node group): its calls' names and how to read a described one. Each
/// kind declares one as a constant.
pub struct Lifecycle<T: 'static> {
    /// The create call's name, for errors of a create and what follows it.
    pub create_op: &'static str,
    /// The delete call's name, for errors of a delete.
    pub delete_op: &'static str,
    /// Its status as EKS spells it (`ACTIVE`, `CREATING`, ...).
    pub status: fn(&T) -> Option<&str>,
    /// Its tags.
    pub tags: fn(&T) -> BTreeMap<String, String>,
    /// Its health issues, as one line.
    pub health: fn(&T) -> String,
    /// Its live view.
    pub live: fn(&T) -> Result<Live, ProviderError>,
}

/// A described object, or `None` when it does not exist.
pub type Described<'a, T> = Pin<Box<dyn Future<Output = Result<Option<T>, ProviderError>> + Send + 'a>>;

/// One EKS object the lifecycle acts on.
pub struct EksObject<'a, T: 'static> {
    /// Its kind's lifecycle.
    pub kind: &'static Lifecycle<T>,
    /// How progress lines and errors name it (`EKS cluster web`).
    pub what: String,
    /// How an ownership error says its name is taken (`an EKS cluster
    /// named web already exists`).
    pub taken: String,
    /// Describes it.
    pub describe: Box<dyn Fn() -> Described<'a, T> + Send + Sync + 'a>,
}

/// The statuses that end a wait for `ACTIVE`.
pub struct Until {
    /// Statuses that end it well (`ACTIVE`, and for an update of a node
    /// group also `DEGRADED`, which an update may be what repairs).
    pub done: &'static [&'static str],
    /// Statuses from which the object will not become `ACTIVE`.
    pub broken: &'static [&'static str],
}

/// The status EKS shows while it deletes an object.
const DELETING: &str = "DELETING";

/// Waits until `obj` reaches one of `until.done` and returns its live view;
/// one of `until.broken`, or the object going away, is an error of
/// `operation` carrying its health issues.
pub async fn wait_active<T: Send + Sync>(
    obj: &EksObject<'_, T>,
    cx: &OpContext,
    operation: &str,
    until: &Until,
    timeout: Duration,
) -> Result<Live, ProviderError> {
    let what = &obj.what;
    wait_for(what, &cx.progress, timeout, || async {
        let Some(item) = (obj.describe)().await? else {
            return Err(ProviderError::unexpected(
                operation,
                format!("{what} disappeared while meshform waited for it to become ACTIVE"),
            ));
        };
        match (obj.kind.status)(&item) {
            Some(s) if until.done.contains(&s) => {
                if s != "ACTIVE" {
                    tracing::warn!(object = %what, status = s, issues = %(obj.kind.health)(&item), "EKS object is not ACTIVE");
                }
                (obj.kind.live)(&item).map(Step::Done)
            }
            Some(s) if until.broken.contains(&s) => Err(ProviderError::Api {
                operation: operation.to_string(),
                code: None,
                message: format!("{what} is {s}: {}", (obj.kind.health)(&item)),
            }),
            s => Ok(waiting_on(s)),
        }
    })
    .await
}

/// After a create of `obj` failed with `taken` (the name is in use): the
/// existing object once `ACTIVE` if this stack and address own it, an error
/// naming its owner otherwise, or `taken` itself if it went away meanwhile.
pub async fn adopt<T: Send + Sync>(
    obj: &EksObject<'_, T>,
    cx: &OpContext,
    taken: ProviderError,
    until: &Until,
    timeout: Duration,
) -> Result<Live, ProviderError> {
    let Some(item) = (obj.describe)().await? else {
        return Err(taken);
    };
    let refused = |message: String| ProviderError::Api {
        operation: obj.kind.create_op.to_string(),
        code: taken.code().map(str::to_string),
        message,
    };
    let tags = (obj.kind.tags)(&item);
    if !owned_by(&tags, cx) {
        return Err(refused(format!(
            "{} and is not owned by stack {:?} address {:?}: {}; pick another name or delete it",
            obj.taken,
            cx.stack,
            cx.address,
            owner_of(&tags)
        )));
    }
    if (obj.kind.status)(&item) == Some(DELETING) {
        return Err(refused(format!(
            "{} is still being deleted; apply again once it is gone",
            obj.what
        )));
    }
    tracing::info!(object = %obj.what, address = %cx.address, "adopting the existing EKS object this resource owns");
    wait_active(obj, cx, obj.kind.create_op, until, timeout).await
}

/// The object if it exists, this stack and address own it and it is not
/// being deleted, once `ACTIVE` (as a create would return it).
pub async fn find_owned<T: Send + Sync>(
    obj: &EksObject<'_, T>,
    cx: &OpContext,
    until: &Until,
    timeout: Duration,
) -> Result<Option<Live>, ProviderError> {
    let Some(item) = (obj.describe)().await? else {
        return Ok(None);
    };
    if !owned_by(&(obj.kind.tags)(&item), cx) || (obj.kind.status)(&item) == Some(DELETING) {
        return Ok(None);
    }
    wait_active(obj, cx, obj.kind.create_op, until, timeout)
        .await
        .map(Some)
}

/// Waits until the describe no longer finds `obj`; status `failed` is an
/// error carrying its health issues.
pub async fn wait_deleted<T: Send + Sync>(
    obj: &EksObject<'_, T>,
    cx: &OpContext,
    failed: &str,
    timeout: Duration,
) -> Result<(), ProviderError> {
    let what = &obj.what;
    wait_for(what, &cx.progress, timeout, || async {
        let Some(item) = (obj.describe)().await? else {
            return Ok(Step::Done(()));
        };
        match (obj.kind.status)(&item) {
            Some(s) if s == failed => Err(ProviderError::Api {
                operation: obj.kind.delete_op.to_string(),
                code: None,
                message: format!("deleting {what} failed: {}", (obj.kind.health)(&item)),
            }),
            s => Ok(waiting_on(s)),
        }
    })
    .await
}
