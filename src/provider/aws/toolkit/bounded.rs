//! Calls that can only be made one resource at a time (a policy's tags, a
//! repository's tags), made concurrently under a bound, backing off
//! together when the service throttles.
//!
//! The bound ([`READ_CONCURRENCY`]) keeps a large refresh well inside the
//! request rates AWS allows (EC2 describes refill at 20 per second; IAM and
//! ECR throttle per account at similar rates): at most that many calls are
//! in flight. When one answers with a throttling code, every call of the
//! batch waits before its next attempt (starting at
//! [`FIRST_THROTTLE_PAUSE`], doubling up to [`LONGEST_THROTTLE_PAUSE`]), and
//! the throttled call is sent again, up to [`THROTTLE_ATTEMPTS`] times in all
//! (on top of the SDK's own retries of each attempt).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::provider::ProviderError;

/// Most per-resource calls of one batch in flight at once.
pub const READ_CONCURRENCY: usize = 12;
/// First pause of a batch after a call was throttled.
pub const FIRST_THROTTLE_PAUSE: Duration = Duration::from_millis(500);
/// Longest pause after repeated throttling.
pub const LONGEST_THROTTLE_PAUSE: Duration = Duration::from_secs(20);
/// Attempts of one call while it is throttled.
pub const THROTTLE_ATTEMPTS: u32 = 6;

/// When the calls of a batch may go again, and how long the next pause is.
struct Backoff {
    resume_at: Option<Instant>,
    pause: Duration,
}

/// Runs `call` for every item, at most [`READ_CONCURRENCY`] at once, and
/// returns the answers in the items' order. Throttled calls are sent again
/// after a shared pause (see the module docs); the first other failure
/// fails the batch (the calls still running are dropped).
pub async fn map_bounded<T, R, F, Fut>(items: Vec<T>, call: F) -> Result<Vec<R>, ProviderError>
where
    T: Clone + Send + Sync + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ProviderError>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(READ_CONCURRENCY));
    let backoff = Arc::new(Mutex::new(Backoff {
        resume_at: None,
        pause: FIRST_THROTTLE_PAUSE,
    }));
    let mut tasks = tokio::task::JoinSet::new();
    let n = items.len();
    for (i, item) in items.into_iter().enumerate() {
        let permits = permits.clone();
        let backoff = backoff.clone();
        let call = call.clone();
        tasks.spawn(async move {
            // The semaphore is never closed; a failed acquire only means no
            // bound, which is still correct.
            let _permit = permits.acquire_owned().await.ok();
            let mut attempt = 1;
            loop {
                let resume_at = backoff.lock().unwrap_or_else(|p| p.into_inner()).resume_at;
                if let Some(at) = resume_at {
                    tokio::time::sleep_until(at).await;
                }
                match call(item.clone()).await {
                    Err(e) if e.is_throttling() && attempt < THROTTLE_ATTEMPTS => {
                        let mut b = backoff.lock().unwrap_or_else(|p| p.into_inner());
                        let at = Instant::now() + b.pause;
                        if b.resume_at.is_none_or(|r| r < at) {
                            b.resume_at = Some(at);
                            b.pause = (b.pause * 2).min(LONGEST_THROTTLE_PAUSE);
                        }
                        drop(b);
                        tracing::debug!(error = %e, attempt, "throttled; pausing the batch");
                        attempt += 1;
                    }
                    other => return (i, other),
                }
            }
        });
    }
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, answer) = match joined {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        out[i] = Some(answer?);
    }
    out.into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| ProviderError::unexpected("read", format!("no answer for item {i}"))))
        .collect()
}

/// The tags of each resource in `arns`, read one call per resource (for
/// services with no batch tag read) through [`map_bounded`]; `fetch` makes
/// the service's call with (a clone of) `client`. Resources whose call says
/// they are gone (by `service`'s codes: deleted between a list and now)
/// are left out.
pub async fn tags_by_arn<C, F, Fut>(
    service: super::errors::Service,
    client: &C,
    arns: Vec<String>,
    fetch: F,
) -> Result<std::collections::HashMap<String, std::collections::BTreeMap<String, String>>, ProviderError>
where
    C: Clone + Send + Sync + 'static,
    F: Fn(C, String) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<std::collections::BTreeMap<String, String>, ProviderError>> + Send + 'static,
{
    let client = client.clone();
    let tagged = map_bounded(arns, move |arn: String| {
        let client = client.clone();
        async move {
            match fetch(client, arn.clone()).await {
                Ok(tags) => Ok(Some((arn, tags))),
                Err(e) if service.is_not_found(&e) => Ok(None),
                Err(e) => Err(e),
            }
        }
    })
    .await?;
    Ok(tagged.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn throttled() -> ProviderError {
        ProviderError::Api {
            operation: "ListPolicyTags".into(),
            code: Some("Throttling".into()),
            message: "Throttling: Rate exceeded".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn answers_in_order_and_never_above_the_bound() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (r, m) = (running.clone(), most.clone());
        let out = map_bounded((0..50).collect(), move |i: usize| {
            let (r, m) = (r.clone(), m.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis((50 - i as u64) % 7)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(i * 2)
            }
        })
        .await
        .unwrap();
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        assert!(most.load(Ordering::SeqCst) <= READ_CONCURRENCY);
        assert!(most.load(Ordering::SeqCst) > 1, "calls ran one at a time");
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_calls_are_sent_again() {
        let sent = Arc::new(AtomicUsize::new(0));
        let s = sent.clone();
        let out = map_bounded(vec![1, 2, 3], move |i: usize| {
            let s = s.clone();
            async move {
                // The first two calls made are throttled.
                if s.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(throttled())
                } else {
                    Ok(i)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(out, vec![1, 2, 3]);
        assert_eq!(sent.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn other_failures_fail_the_batch_and_throttling_gives_up() {
        let err = map_bounded(vec![1, 2], |i: usize| async move {
            if i == 2 {
                Err(ProviderError::unexpected("X", "boom"))
            } else {
                Ok(i)
            }
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");

        let sent = Arc::new(AtomicUsize::new(0));
        let s = sent.clone();
        let err = map_bounded(vec![1], move |_: usize| {
            let s = s.clone();
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                Err::<usize, _>(throttled())
            }
        })
        .await
        .unwrap_err();
        assert!(err.is_throttling());
        assert_eq!(sent.load(Ordering::SeqCst), THROTTLE_ATTEMPTS as usize);
    }
}
