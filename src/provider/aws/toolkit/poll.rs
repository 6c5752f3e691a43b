//! One poll loop for every wait of the AWS kinds: a state to reach, an
//! effect to become visible, an error that goes away by itself (a
//! dependency still being deleted). Pauses grow from `first` to `max`; the
//! loop gives up after `timeout`; each status seen while waiting is
//! reported through [`Progress`] (silent by default).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::provider::{Progress, ProviderError};

/// One poll's answer.
#[derive(Debug)]
pub enum Step<T> {
    /// The wait is over.
    Done(T),
    /// Not there yet; the text is the current status as the user should
    /// see it (empty when there is nothing to say).
    Waiting(String),
    /// The call failed in a way that may go away by itself: poll again,
    /// and return this error if the time is up.
    Failing(ProviderError),
}

/// How a wait polls: what it waits for, how long, with which pauses, and
/// where it reports.
#[derive(Debug, Clone)]
pub struct Poll {
    /// What is awaited, worded to follow "waiting for" (timeouts say it).
    pub what: String,
    /// How long to keep polling; the first poll is immediate.
    pub timeout: Duration,
    /// The first pause.
    pub first: Duration,
    /// The longest pause (pauses double up to it).
    pub max: Duration,
    /// Where each status is reported, as `"<what>: <status> (2m10s elapsed)"`.
    pub progress: Progress,
}

impl Poll {
    /// A silent wait for `what`, pausing 1 s doubling up to 15 s.
    pub fn new(what: impl Into<String>, timeout: Duration) -> Poll {
        Poll {
            what: what.into(),
            timeout,
            first: Duration::from_secs(1),
            max: Duration::from_secs(15),
            progress: Progress::default(),
        }
    }

    /// The same wait with other pauses.
    pub fn pauses(mut self, first: Duration, max: Duration) -> Poll {
        self.first = first;
        self.max = max;
        self
    }

    /// The same wait reporting each status through `progress`.
    pub fn reporting(mut self, progress: &Progress) -> Poll {
        self.progress = progress.clone();
        self
    }

    /// Polls until `poll` is [`Step::Done`]. Once `timeout` has passed, a
    /// [`Step::Waiting`] ends in [`ProviderError::Timeout`] (naming the last
    /// status) and a [`Step::Failing`] in its error.
    pub async fn run<T, F, Fut>(&self, mut poll: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Step<T>, ProviderError>>,
    {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut delay = self.first;
        loop {
            let step = poll().await?;
            let now = Instant::now();
            match step {
                Step::Done(v) => return Ok(v),
                Step::Failing(e) if now >= deadline => return Err(e),
                Step::Failing(e) => tracing::debug!(what = %self.what, "{e}; trying again"),
                Step::Waiting(status) => {
                    if !status.is_empty() {
                        self.progress.report(&format!(
                            "{}: {status} ({} elapsed)",
                            self.what,
                            format_elapsed(now - start)
                        ));
                    }
                    if now >= deadline {
                        let what = if status.is_empty() {
                            self.what.clone()
                        } else {
                            format!("{} (last seen: {status})", self.what)
                        };
                        return Err(ProviderError::Timeout {
                            what,
                            seconds: self.timeout.as_secs(),
                        });
                    }
                }
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(self.max);
        }
    }

    /// Polls until `poll` returns `Some` (a silent [`Step::Waiting`] for
    /// `None`).
    pub async fn until<T, F, Fut>(&self, mut poll: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, ProviderError>>,
    {
        self.run(|| {
            let fut = poll();
            async move {
                Ok(match fut.await? {
                    Some(v) => Step::Done(v),
                    None => Step::Waiting(String::new()),
                })
            }
        })
        .await
    }

    /// Runs `op` again while it fails with an error `retry` accepts (one
    /// that goes away by itself), until the timeout; then its last error.
    pub async fn retry_while<T, F, Fut>(
        &self,
        retry: impl Fn(&ProviderError) -> bool,
        mut op: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        self.run(|| {
            let fut = op();
            let retry = &retry;
            async move {
                match fut.await {
                    Ok(v) => Ok(Step::Done(v)),
                    Err(e) if retry(&e) => Ok(Step::Failing(e)),
                    Err(e) => Err(e),
                }
            }
        })
        .await
    }
}

/// Formats an elapsed time as `45s`, `2m10s` or `1h02m03s`.
pub fn format_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m{sec:02}s"),
        (h, min, sec) => format!("{h}h{min:02}m{sec:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    fn api(code: &str) -> ProviderError {
        ProviderError::Api {
            operation: "Op".into(),
            code: Some(code.into()),
            message: code.into(),
        }
    }

    fn fast(what: &str, timeout: Duration) -> Poll {
        Poll::new(what, timeout).pauses(Duration::from_millis(1), Duration::from_millis(2))
    }

    #[tokio::test]
    async fn reports_each_status_until_done() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let progress = Progress::new(move |m| sink.lock().unwrap().push(m.to_string()));
        let polls = AtomicUsize::new(0);
        let out = fast("cluster c", Duration::from_secs(30))
            .reporting(&progress)
            .run(|| async {
                Ok(match polls.fetch_add(1, Ordering::SeqCst) {
                    0 => Step::Waiting("status CREATING".into()),
                    1 => Step::Waiting(String::new()),
                    _ => Step::Done("up"),
                })
            })
            .await;
        assert_eq!(out.ok(), Some("up"));
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["cluster c: status CREATING (0s elapsed)".to_string()]
        );
    }

    #[tokio::test]
    async fn times_out_naming_the_last_status() {
        let out: Result<(), _> = fast("cluster c", Duration::ZERO)
            .run(|| async { Ok(Step::Waiting("status CREATING".into())) })
            .await;
        match out {
            Err(ProviderError::Timeout { what, .. }) => {
                assert_eq!(what, "cluster c (last seen: status CREATING)")
            }
            other => panic!("{other:?}"),
        }
        let out: Result<(), _> = fast("VPC v to be available", Duration::ZERO)
            .until(|| async { Ok(None) })
            .await;
        match out {
            Err(ProviderError::Timeout { what, .. }) => assert_eq!(what, "VPC v to be available"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn retries_only_accepted_errors_and_returns_the_last_one_at_the_deadline() {
        let calls = AtomicUsize::new(0);
        let out = fast("delete", Duration::from_secs(30))
            .retry_while(
                |e| e.code() == Some("DependencyViolation"),
                || async {
                    if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err(api("DependencyViolation"))
                    } else {
                        Ok(7)
                    }
                },
            )
            .await;
        assert_eq!(out.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let out: Result<(), _> = fast("delete", Duration::ZERO)
            .retry_while(
                |e| e.code() == Some("DependencyViolation"),
                || async { Err(api("DependencyViolation")) },
            )
            .await;
        assert_eq!(
            out.err().and_then(|e| e.code().map(str::to_string)).as_deref(),
            Some("DependencyViolation")
        );

        let calls = AtomicUsize::new(0);
        let out: Result<(), _> = fast("delete", Duration::from_secs(30))
            .retry_while(
                |e| e.code() == Some("DependencyViolation"),
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(api("AccessDenied"))
                },
            )
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
