//! Helpers shared by the EKS kinds: error classification, the retry over IAM
//! propagation delays, status waits that report progress, update waits
//! (DescribeUpdate) and the EKS forms of tags and attributes.
//!
//! EKS operations are slow (a cluster takes 10-15 minutes to create) and
//! depend on IAM roles that may have been created seconds earlier; both
//! waits here report what they are doing through [`Progress`] so that the
//! user sees a live status rather than a silent pause.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use aws_sdk_eks::Client;
use aws_sdk_eks::types::{Update, UpdateStatus};
use tokio::time::Instant;

use super::toolkit::errors::Service;
use super::toolkit::poll::Poll;
pub use super::toolkit::poll::{Step, format_elapsed};
use super::toolkit::tags::sync_with;
use crate::provider::{Progress, ProviderError, attr_str, attr_tags};
use crate::{Attrs, Value};

/// How long a create keeps retrying errors caused by IAM propagation (a role
/// created moments ago that EKS cannot assume yet).
pub const IAM_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);

/// First pause before retrying an IAM propagation error; doubles each time.
const IAM_RETRY_FIRST_DELAY: Duration = Duration::from_secs(2);
/// Longest pause between two retries of an IAM propagation error.
const IAM_RETRY_MAX_DELAY: Duration = Duration::from_secs(15);

/// First pause between two polls of a status wait; doubles each time.
const POLL_FIRST_DELAY: Duration = Duration::from_secs(2);
/// Longest pause between two polls of a status wait.
const POLL_MAX_DELAY: Duration = Duration::from_secs(15);

/// `Ok(None)` when `result` failed because the cluster or node group is
/// not there; the value, or any other error, unchanged.
pub fn unless_gone<T>(result: Result<T, ProviderError>) -> Result<Option<T>, ProviderError> {
    super::toolkit::errors::unless_gone(Service::Eks, result)
}

/// A status wait's step for a cluster or node group not there yet.
pub fn waiting_on<T>(status: Option<&str>) -> Step<T> {
    Step::Waiting(format!("status {}", status.unwrap_or("unknown")))
}

/// A cluster's or node group's health issues (code, message, resources),
/// as one line.
pub fn issues_line<'a>(
    issues: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>, &'a [String])>,
) -> String {
    let issues: Vec<String> = issues
        .into_iter()
        .map(|(code, message, resources)| {
            let code = code.unwrap_or("issue");
            let message = message.unwrap_or("no message");
            if resources.is_empty() {
                format!("{code}: {message}")
            } else {
                format!("{code}: {message} ({})", resources.join(", "))
            }
        })
        .collect();
    if issues.is_empty() {
        "no health issues reported".to_string()
    } else {
        issues.join("; ")
    }
}

/// True when an EKS error means the name is taken (or, for a delete, that
/// the resource is still in use).
pub fn is_in_use(err: &ProviderError) -> bool {
    err.code() == Some("ResourceInUseException")
}

/// True when an error from CreateCluster or CreateNodegroup is one of the
/// known symptoms of IAM eventual consistency: a freshly created role that
/// EKS cannot assume yet. For example:
///
/// `Role with arn: arn:aws:iam::123456789012:role/x could not be assumed
/// because it does not exist or the trusted entity is not correct`
///
/// Only `InvalidParameterException`s about a role qualify; a missing subnet
/// ("Subnet ... does not exist") or a malformed ARN ("Invalid Role Arn") is
/// not retried. Pure.
pub fn is_iam_propagation_error(code: Option<&str>, message: &str) -> bool {
    if code != Some("InvalidParameterException") {
        return false;
    }
    let m = message.to_ascii_lowercase();
    m.contains("role")
        && (m.contains("could not be assumed")
            || m.contains("does not exist")
            || m.contains("trusted entity is not correct"))
}

/// Pauses of a retry or poll loop: `first`, doubling up to `max`, and no
/// further retry once `deadline` has passed since the start.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first pause.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
    /// No retry starts once this long has passed since the first attempt.
    pub deadline: Duration,
}

impl Backoff {
    /// The backoff used for IAM propagation errors, giving up after `deadline`.
    pub fn iam(deadline: Duration) -> Backoff {
        Backoff {
            first: IAM_RETRY_FIRST_DELAY,
            max: IAM_RETRY_MAX_DELAY,
            deadline,
        }
    }
}

/// Calls `call` (a CreateCluster or CreateNodegroup), retrying it while it
/// fails with an IAM propagation error (see [`is_iam_propagation_error`])
/// and `backoff.deadline` has not passed. Each retry is reported through
/// `progress`. Once the deadline has passed, the last AWS error is returned
/// with a note on how long meshform retried.
pub async fn retry_iam_propagation<T, F, Fut>(
    what: &str,
    progress: &Progress,
    backoff: Backoff,
    mut call: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let start = Instant::now();
    let mut delay = backoff.first;
    let mut attempt = 1u32;
    loop {
        let err = match call().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let ProviderError::Api {
            operation,
            code,
            message,
        } = err
        else {
            return Err(err);
        };
        if !is_iam_propagation_error(code.as_deref(), &message) {
            return Err(ProviderError::Api {
                operation,
                code,
                message,
            });
        }
        let elapsed = start.elapsed();
        if elapsed >= backoff.deadline {
            return Err(ProviderError::Api {
                operation,
                code,
                message: format!(
                    "{message} (still failing after {} attempts over {}; a new IAM role can take a \
                     while to become usable, but this one may be wrong: check that it exists and \
                     trusts the EKS service)",
                    attempt,
                    format_elapsed(elapsed)
                ),
            });
        }
        let pause = delay.min(backoff.deadline - elapsed);
        progress.report(&format!(
            "{what}: IAM role not usable yet (IAM changes take a while to propagate); retry {attempt} \
             in {} ({} elapsed): {message}",
            format_elapsed_fine(pause),
            format_elapsed(elapsed)
        ));
        tracing::info!(%what, attempt, %message, "retrying after an IAM propagation error");
        tokio::time::sleep(pause).await;
        delay = (delay * 2).min(backoff.max);
        attempt += 1;
    }
}

/// Like [`format_elapsed`], but shows sub-second pauses (as used in tests)
/// in milliseconds rather than as `0s`.
fn format_elapsed_fine(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format_elapsed(d)
    }
}

/// Polls until `poll` returns [`Step::Done`], reporting
/// `"<what>: status CREATING (2m10s elapsed)"` through `progress` after each
/// poll that is not done, sleeping between polls (2s, doubling up to 15s),
/// and failing with [`ProviderError::Timeout`] after `timeout`. The first
/// poll is immediate.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    progress: &Progress,
    timeout: Duration,
    poll: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Step<T>, ProviderError>>,
{
    Poll::new(what, timeout)
        .pauses(POLL_FIRST_DELAY, POLL_MAX_DELAY)
        .reporting(progress)
        .run(poll)
        .await
}

/// The errors an update reports, as one line.
fn update_errors(update: &Update) -> String {
    let errors: Vec<String> = update
        .errors()
        .iter()
        .map(|e| {
            let code = e.error_code().map(|c| c.as_str()).unwrap_or("error");
            let message = e.error_message().unwrap_or("no message");
            format!("{code}: {message}")
        })
        .collect();
    if errors.is_empty() {
        "no error details given".to_string()
    } else {
        errors.join("; ")
    }
}

/// Waits until the update `update` of a cluster (or of one of its node
/// groups, when `nodegroup` is given) is `Successful`, polling
/// DescribeUpdate. `Failed` or `Cancelled` is an error carrying the update's
/// error details. An update already `Successful` is not polled at all (moto
/// applies updates synchronously and does not implement DescribeUpdate).
pub async fn wait_update(
    eks: &Client,
    progress: &Progress,
    what: &str,
    cluster: &str,
    nodegroup: Option<&str>,
    update: &Update,
    timeout: Duration,
) -> Result<(), ProviderError> {
    let operation = "DescribeUpdate";
    let check = |u: &Update| -> Result<Step<()>, ProviderError> {
        match u.status() {
            Some(UpdateStatus::Successful) => Ok(Step::Done(())),
            Some(UpdateStatus::Failed | UpdateStatus::Cancelled) => Err(ProviderError::Api {
                operation: operation.to_string(),
                code: None,
                message: format!(
                    "{what}: update {} is {}: {}",
                    u.id().unwrap_or("?"),
                    u.status().map(|s| s.as_str()).unwrap_or("?"),
                    update_errors(u)
                ),
            }),
            other => Ok(Step::Waiting(format!(
                "update {} {}",
                u.id().unwrap_or("?"),
                other.map(|s| s.as_str()).unwrap_or("in progress")
            ))),
        }
    };
    if let Step::Done(()) = check(update)? {
        return Ok(());
    }
    let id = update
        .id()
        .ok_or_else(|| ProviderError::unexpected(operation, format!("{what}: an update without an id")))?;
    wait_for(what, progress, timeout, || async {
        let out = eks
            .describe_update()
            .name(cluster)
            .update_id(id)
            .set_nodegroup_name(nodegroup.map(str::to_string))
            .send()
            .await
            .map_err(|e| ProviderError::aws(operation, e))?;
        let u = out
            .update()
            .ok_or_else(|| ProviderError::unexpected(operation, "no update in the response"))?;
        check(u)
    })
    .await
}

/// Tags as EKS returns them, in a sorted map.
pub fn tag_map(tags: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    tags.map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// Makes the tags on the EKS resource `current` describes (by its `arn`)
/// equal to those in `desired` (`aws:` keys aside) with UntagResource and
/// TagResource.
pub async fn sync_tags(eks: &Client, current: &Attrs, desired: &Attrs) -> Result<(), ProviderError> {
    let arn = attr_str(current, "arn")?;
    let (prior, desired) = (&attr_tags(current), &attr_tags(desired));
    let as_map = |set: &BTreeMap<String, String>| {
        Ok::<_, ProviderError>(set.clone().into_iter().collect::<HashMap<_, _>>())
    };
    sync_with! {
        prior => desired;
        untag eks.untag_resource().resource_arn(arn), "UntagResource";
        tag eks.tag_resource().resource_arn(arn), "TagResource";
        as_map
    }
}

/// A list of strings meaning a set, in canonical form: sorted, without
/// duplicates. Other values are returned unchanged.
pub use super::toolkit::sorted_set;

/// A sorted, deduplicated list value from strings.
pub fn set_value<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    sorted_set(Value::Array(
        items.into_iter().cloned().map(Value::String).collect(),
    ))
}

/// The integer attribute `name`, or `default` when absent.
pub fn attr_int(attrs: &crate::Attrs, name: &str, default: i64) -> Result<i64, ProviderError> {
    match attrs.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ProviderError::invalid(name, "must be an integer")),
    }
}

/// The integer attribute `name` as an `i32` (the width EKS takes).
pub fn attr_i32(attrs: &crate::Attrs, name: &str, default: i64) -> Result<i32, ProviderError> {
    let v = attr_int(attrs, name, default)?;
    i32::try_from(v).map_err(|_| ProviderError::invalid(name, format!("{v} is out of range")))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    const ASSUME: &str = "Role with arn: arn:aws:iam::123456789012:role/x could not be assumed because \
                          it does not exist or the trusted entity is not correct";

    #[test]
    fn classifies_iam_propagation_errors() {
        let ipe = Some("InvalidParameterException");
        assert!(is_iam_propagation_error(ipe, ASSUME));
        assert!(is_iam_propagation_error(
            ipe,
            &format!("InvalidParameterException: {ASSUME}")
        ));
        assert!(is_iam_propagation_error(
            ipe,
            "The role with name eks-node does not exist."
        ));
        assert!(is_iam_propagation_error(
            ipe,
            "Role could not be assumed because the trusted entity is not correct"
        ));
        // Other parameter errors are the user's to fix, not to wait out.
        assert!(!is_iam_propagation_error(ipe, "Subnet subnet-123 does not exist"));
        assert!(!is_iam_propagation_error(ipe, "Invalid Role Arn: 'not-an-arn'"));
        assert!(!is_iam_propagation_error(
            ipe,
            "Unsupported Kubernetes minor version update from 1.27 to 1.29"
        ));
        // The right words with another code are not retried either.
        assert!(!is_iam_propagation_error(Some("AccessDeniedException"), ASSUME));
        assert!(!is_iam_propagation_error(None, ASSUME));
    }

    #[test]
    fn formats_elapsed_times() {
        assert_eq!(format_elapsed(Duration::from_secs(0)), "0s");
        assert_eq!(format_elapsed(Duration::from_secs(45)), "45s");
        assert_eq!(format_elapsed(Duration::from_secs(130)), "2m10s");
        assert_eq!(format_elapsed(Duration::from_secs(3723)), "1h02m03s");
        assert_eq!(format_elapsed_fine(Duration::from_millis(20)), "20ms");
    }

    #[test]
    fn sorts_sets() {
        assert_eq!(
            sorted_set(serde_json::json!(["subnet-b", "subnet-a", "subnet-b"])),
            serde_json::json!(["subnet-a", "subnet-b"])
        );
        assert_eq!(sorted_set(serde_json::json!("x")), serde_json::json!("x"));
    }

    fn api_error(code: &str, message: &str) -> ProviderError {
        ProviderError::Api {
            operation: "CreateCluster".into(),
            code: Some(code.into()),
            message: format!("{code}: {message}"),
        }
    }

    fn quick(deadline_ms: u64) -> Backoff {
        Backoff {
            first: Duration::from_millis(10),
            max: Duration::from_millis(40),
            deadline: Duration::from_millis(deadline_ms),
        }
    }

    fn capture() -> (Progress, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let progress = Progress::new(move |m| {
            if let Ok(mut v) = sink.lock() {
                v.push(m.to_string());
            }
        });
        (progress, seen)
    }

    #[tokio::test]
    async fn retries_iam_errors_until_success() {
        let calls = AtomicUsize::new(0);
        let (progress, seen) = capture();
        let out = retry_iam_propagation("create cluster c", &progress, quick(5_000), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(api_error("InvalidParameterException", ASSUME)),
                _ => Ok(42),
            }
        })
        .await;
        assert_eq!(out.ok(), Some(42));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen[0].contains("retry 1"), "{seen:?}");
        assert!(seen[0].contains("could not be assumed"), "{seen:?}");
    }

    #[tokio::test]
    async fn gives_up_after_the_deadline_with_the_aws_message() {
        let calls = AtomicUsize::new(0);
        let started = Instant::now();
        let out: Result<(), _> =
            retry_iam_propagation("create cluster c", &Progress::default(), quick(200), || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(api_error("InvalidParameterException", ASSUME)) }
            })
            .await;
        let err = out.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("could not be assumed"), "{err}");
        assert!(err.contains("still failing after"), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(calls.load(Ordering::SeqCst) >= 3);
    }

    #[tokio::test]
    async fn does_not_retry_other_errors() {
        let calls = AtomicUsize::new(0);
        let out: Result<(), _> =
            retry_iam_propagation("create cluster c", &Progress::default(), quick(5_000), || {
                calls.fetch_add(1, Ordering::SeqCst);
                async {
                    Err(api_error(
                        "InvalidParameterException",
                        "Subnet subnet-1 does not exist",
                    ))
                }
            })
            .await;
        assert_eq!(
            out.err().and_then(|e| e.code().map(str::to_string)).as_deref(),
            Some("InvalidParameterException")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn waits_report_status_and_time_out() {
        let (progress, seen) = capture();
        let polls = AtomicUsize::new(0);
        let out = wait_for("EKS cluster c", &progress, Duration::from_secs(30), || async {
            if polls.fetch_add(1, Ordering::SeqCst) == 0 {
                Ok(Step::Waiting("status CREATING".to_string()))
            } else {
                Ok(Step::Done("up"))
            }
        })
        .await;
        assert_eq!(out.ok(), Some("up"));
        let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(
            seen,
            vec!["EKS cluster c: status CREATING (0s elapsed)".to_string()]
        );

        let out: Result<(), _> = wait_for("EKS cluster c", &Progress::default(), Duration::ZERO, || async {
            Ok(Step::Waiting("status CREATING".to_string()))
        })
        .await;
        assert!(matches!(out, Err(ProviderError::Timeout { .. })), "{out:?}");
    }
}
