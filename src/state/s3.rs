//! Remote state on S3 (`s3://bucket/key`), locked with S3 conditional
//! writes and no other service.
//!
//! # Objects
//!
//! - `key`: the snapshot (the same JSON as a state file).
//! - `key.journal`: the operation journal. S3 cannot append, so every
//!   append rewrites the whole object; the store therefore compacts it at a
//!   small fixed size ([`JOURNAL_LIMIT`]). The object starts with a header
//!   line holding a fresh nonce per write (stripped on reading), so that no
//!   two writes of it have the same bytes, hence the same ETag: an emptied
//!   journal written by another run never matches the ETag this run last
//!   saw (an ABA that would let a stale append through).
//! - `key.backup`: the previous snapshot, written before each snapshot like
//!   the file backend's backup. With bucket versioning on, every previous
//!   version of every object also stays recoverable.
//! - `key.lock`: the lock, a JSON [`LockRecord`]: the holder (pid, host,
//!   user, command, start time), a unique lock id and an expiry.
//!
//! # Conditional writes
//!
//! Every write is conditional: `If-Match` on the ETag this run last read or
//! wrote of that object, or `If-None-Match: *` while it does not exist. A
//! refused write (412 Precondition Failed; 404 for an `If-Match` on an
//! object deleted meanwhile; 409 for a concurrent conditional write) means
//! another run changed the object: it is a [`StateError::Superseded`], and
//! the store stops (a failed write stops the run). When the SDK retried a
//! write whose first answer was lost, the retry is refused by the first
//! attempt's own effect: a refusal is therefore checked with a `HEAD`, and
//! taken as success when the object's ETag is the MD5 of this write's body
//! (true of single-part uploads without SSE-KMS; otherwise the run stops,
//! which is safe).
//!
//! # The lock
//!
//! Opening creates `key.lock` with `If-None-Match: *`. If it exists and has
//! not expired, opening fails at once with [`StateError::Locked`] naming its
//! holder; if it has expired, it is taken over with `If-Match` on the
//! expired record's ETag (of two runs taking over at once, one wins) and
//! the expired holder is reported as stale. The holder renews the lock
//! (rewrite with `If-Match`, new expiry) every third of its TTL
//! ([`DEFAULT_LOCK_TTL`], or `MESHFORM_S3_LOCK_TTL_SECS`). A refused
//! renewal means the lock was broken (force-unlocked, or taken over): this
//! is recorded, and every later state write fails even if its own
//! `If-Match` would pass. So does every write once the lock's expiry has
//! passed without a successful renewal (another run may take it over from
//! then on). Expiry is judged by each host's clock: hosts sharing a state
//! must keep their clocks within a small fraction of the TTL. Dropping the
//! store deletes the lock (`If-Match` on this run's ETag, so a lock another
//! run has taken is left alone).
//!
//! # Threads
//!
//! [`StateBackend`] is synchronous and is called from async code. The
//! backend owns an OS thread running its own current-thread tokio runtime,
//! which makes every S3 call and renews the lock; the synchronous methods
//! send it a request and wait for the answer. The caller's runtime is never
//! blocked on from inside (no `block_in_place`), so library users may run
//! any runtime flavour.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::lock::LockHolder;
use super::model::format_rfc3339;
use super::store::{PersistFailure, StateBackend, StateStore};
use super::{ForceUnlock, State, StateError};

/// The environment variable overriding the lock's TTL, in whole seconds.
pub const LOCK_TTL_ENV: &str = "MESHFORM_S3_LOCK_TTL_SECS";

/// How long a lock stays valid without renewal.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(300);

/// The journal size past which the store compacts an S3 journal, whatever
/// the snapshot's size: each append uploads the whole journal object, so it
/// is kept small.
pub const JOURNAL_LIMIT: u64 = 64 * 1024;

/// How many times opening retries when the lock object changes under it
/// (released or taken over between two requests).
const ACQUIRE_ATTEMPTS: usize = 8;

/// Per-attempt timeout of each S3 request, so a hung connection cannot
/// block a run (the SDK's retries apply on top).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The first bytes of a journal object's header line.
const JOURNAL_HEADER: &[u8] = b"#meshform-journal ";

/// A remote state's bucket and key, and the names of its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Objects {
    /// The bucket.
    pub bucket: String,
    /// The snapshot's key; the journal, backup and lock add suffixes.
    pub key: String,
}

impl S3Objects {
    fn journal(&self) -> String {
        format!("{}.journal", self.key)
    }
    fn backup(&self) -> String {
        format!("{}.backup", self.key)
    }
    fn lock(&self) -> String {
        format!("{}.lock", self.key)
    }
    /// `s3://bucket/<key>`, for messages.
    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

/// Parses `s3://bucket/key`.
pub fn parse_url(text: &str) -> Result<S3Objects, String> {
    let Some(rest) = text.strip_prefix("s3://") else {
        return Err(format!("`{text}` is not an s3://bucket/key URL"));
    };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("`{text}` names no bucket (expected s3://bucket/key)"));
    }
    if key.is_empty() || key.ends_with('/') {
        return Err(format!(
            "`{text}` names no object key (expected s3://bucket/key, such as s3://{bucket}/stacks/dev.json)"
        ));
    }
    Ok(S3Objects {
        bucket: bucket.to_string(),
        key: key.to_string(),
    })
}

/// How the backend reaches S3.
#[derive(Debug, Clone)]
pub enum S3Connect {
    /// The standard AWS configuration chain (environment, profile,
    /// `AWS_ENDPOINT_URL`, ...) in this region (the stack's).
    Region(String),
    /// An already loaded configuration (tests, library users picking
    /// endpoint and credentials themselves).
    Config(Box<aws_config::SdkConfig>),
}

impl S3Connect {
    /// An S3 client, path-style (what S3-compatible stores and the
    /// emulator on 127.0.0.1 need; S3 accepts it too), with a per-attempt
    /// timeout. Call it on the runtime that will drive the client.
    pub async fn client(self) -> Client {
        let config = match self {
            S3Connect::Region(region) => {
                aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new(region))
                    .load()
                    .await
            }
            S3Connect::Config(config) => *config,
        };
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        let conf = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .timeout_config(timeouts)
            .build();
        Client::from_conf(conf)
    }
}

/// Settings of an S3 state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3Options {
    /// How long the lock stays valid without renewal; it is renewed every
    /// third of it.
    pub lock_ttl: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            lock_ttl: DEFAULT_LOCK_TTL,
        }
    }
}

impl S3Options {
    /// The defaults, with the TTL from `MESHFORM_S3_LOCK_TTL_SECS` if set.
    pub fn from_env() -> Result<S3Options, String> {
        match std::env::var(LOCK_TTL_ENV) {
            Err(_) => Ok(S3Options::default()),
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(secs) if secs >= 1 => Ok(S3Options {
                    lock_ttl: Duration::from_secs(secs),
                }),
                _ => Err(format!(
                    "{LOCK_TTL_ENV}={text}: expected a whole number of seconds, at least 1"
                )),
            },
        }
    }
}

/// The lock object's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    /// Who holds the lock.
    pub holder: LockHolder,
    /// Unique per acquisition (a takeover makes a new one).
    pub lock_id: String,
    /// When the lock expires unless renewed (RFC 3339, UTC), for people.
    pub expires_at: String,
    /// The same as seconds since the Unix epoch, for programs.
    pub expires_unix: u64,
    /// The TTL the holder renews with, in seconds.
    pub ttl_secs: u64,
}

impl LockRecord {
    fn new(holder: LockHolder, lock_id: String, ttl: Duration) -> LockRecord {
        let expires = SystemTime::now() + ttl;
        // Rounded up: other runs never see it expire early.
        let expires_unix = unix_secs(expires)
            + u64::from(
                expires
                    .duration_since(UNIX_EPOCH)
                    .is_ok_and(|d| d.subsec_nanos() > 0),
            );
        LockRecord {
            holder,
            lock_id,
            expires_at: format_rfc3339(UNIX_EPOCH + Duration::from_secs(expires_unix)),
            expires_unix,
            ttl_secs: ttl.as_secs(),
        }
    }

    /// Whether the lock has expired by this host's clock.
    pub fn expired(&self) -> bool {
        unix_secs(SystemTime::now()) >= self.expires_unix
    }

    fn body(&self) -> Vec<u8> {
        let mut body = serde_json::to_vec_pretty(self).unwrap_or_default();
        body.push(b'\n');
        body
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

// --- S3 requests ------------------------------------------------------------

/// Why a conditional write did not happen.
#[derive(Debug)]
enum WriteError {
    /// The condition failed: another run changed (or removed) the object.
    Refused(String),
    /// Anything else (network, permissions, ...).
    Failed(String),
}

/// The status and code of a failed request, for classification.
fn status_and_code<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (Option<u16>, Option<String>) {
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.as_service_error().and_then(|e| e.code()).map(str::to_string);
    (status, code)
}

fn describe<E: std::error::Error + 'static>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String {
    DisplayErrorContext(err).to_string()
}

/// The ETag S3 gives a single-part upload of `body` without SSE-KMS.
fn md5_etag(body: &[u8]) -> String {
    let digest = Md5::digest(body);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

/// A thin S3 client for one bucket.
#[derive(Debug, Clone)]
struct Bucket {
    client: Client,
    objects: S3Objects,
}

impl Bucket {
    fn url(&self, key: &str) -> String {
        self.objects.url(key)
    }

    /// The object's bytes and ETag; `None` if it does not exist.
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StateError> {
        let sent = self
            .client
            .get_object()
            .bucket(&self.objects.bucket)
            .key(key)
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) if status_and_code(&e).0 == Some(404) => return Ok(None),
            Err(e) => return Err(self.remote(key, format!("GetObject failed: {}", describe(&e)))),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| self.remote(key, format!("reading the object failed: {e}")))?;
        Ok(Some((bytes.to_vec(), etag)))
    }

    /// The object's ETag; `None` if it does not exist.
    async fn head(&self, key: &str) -> Result<Option<String>, StateError> {
        match self
            .client
            .head_object()
            .bucket(&self.objects.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            Err(e) if status_and_code(&e).0 == Some(404) => Ok(None),
            Err(e) => Err(self.remote(key, format!("HeadObject failed: {}", describe(&e)))),
        }
    }

    /// Writes `body` to `key` if the object's ETag is still `expected`
    /// (`None`: if it does not exist). Returns the new ETag.
    async fn put(&self, key: &str, body: Vec<u8>, expected: Option<&str>) -> Result<String, WriteError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.objects.bucket)
            .key(key)
            .body(ByteStream::from(body.clone()));
        request = match expected {
            Some(etag) => request.if_match(etag),
            None => request.if_none_match("*"),
        };
        let err = match request.send().await {
            Ok(out) => return Ok(out.e_tag().map_or_else(|| md5_etag(&body), str::to_string)),
            Err(e) => e,
        };
        let (status, code) = status_and_code(&err);
        let refused = matches!(status, Some(412 | 409))
            || (expected.is_some() && status == Some(404))
            || matches!(
                code.as_deref(),
                Some("PreconditionFailed" | "ConditionalRequestConflict")
            );
        if !refused {
            return Err(WriteError::Failed(format!(
                "PutObject failed: {}",
                describe(&err)
            )));
        }
        // A retry refused because the lost first attempt took effect?
        let ours = md5_etag(&body);
        if let Ok(Some(now)) = self.head(key).await
            && same_etag(&now, &ours)
        {
            return Ok(now);
        }
        Err(WriteError::Refused(match expected {
            Some(etag) => format!(
                "the object is no longer the version this run last read or wrote (If-Match {etag} failed: {})",
                code.unwrap_or_else(|| format!("HTTP {}", status.unwrap_or_default()))
            ),
            None => "the object was created by another run (If-None-Match: * failed)".to_string(),
        }))
    }

    /// Deletes `key` if its ETag is still `expected` (`None`: whatever it
    /// is). `Ok(false)` when the condition failed.
    async fn delete(&self, key: &str, expected: Option<&str>) -> Result<bool, StateError> {
        let mut request = self.client.delete_object().bucket(&self.objects.bucket).key(key);
        if let Some(etag) = expected {
            request = request.if_match(etag);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => match status_and_code(&e) {
                (Some(412 | 409 | 404), _) => Ok(false),
                (_, Some(code)) if code == "PreconditionFailed" => Ok(false),
                _ => Err(self.remote(key, format!("DeleteObject failed: {}", describe(&e)))),
            },
        }
    }

    fn remote(&self, key: &str, message: String) -> StateError {
        StateError::Remote {
            location: self.url(key),
            message,
        }
    }

    fn write_error(&self, key: &str, e: WriteError) -> StateError {
        match e {
            WriteError::Refused(reason) => StateError::Superseded {
                location: self.url(key),
                reason,
            },
            WriteError::Failed(message) => self.remote(key, message),
        }
    }
}

/// A journal object's body: a header line with a fresh nonce, then the
/// records.
fn journal_body(records: &[u8]) -> Vec<u8> {
    let mut body = JOURNAL_HEADER.to_vec();
    body.extend_from_slice(uuid::Uuid::new_v4().simple().to_string().as_bytes());
    body.push(b'\n');
    body.extend_from_slice(records);
    body
}

/// The records of a journal object's body (without its header line).
fn journal_records(body: Vec<u8>) -> Vec<u8> {
    if body.starts_with(JOURNAL_HEADER) {
        match body.iter().position(|b| *b == b'\n') {
            Some(end) => body[end + 1..].to_vec(),
            // A header alone, without its newline: no records.
            None => Vec::new(),
        }
    } else {
        body
    }
}

// --- reading and unlocking without the lock ---------------------------------

/// Reads the state at `objects` without locking (see
/// [`StateStore::read_parts`]): the journal first, then the snapshot.
pub async fn read(connect: S3Connect, objects: &S3Objects, stack: &str) -> Result<Option<State>, StateError> {
    let bucket = Bucket {
        client: connect.client().await,
        objects: objects.clone(),
    };
    let journal = bucket
        .get(&objects.journal())
        .await?
        .map(|(bytes, _)| journal_records(bytes));
    let snapshot = bucket.get(&objects.key).await?.map(|(bytes, _)| bytes);
    StateStore::read_parts(Path::new(&objects.url(&objects.key)), stack, snapshot, journal)
}

/// Removes the lock of the state at `objects`, whoever holds it, and
/// reports the holder removed: [`ForceUnlock::Removed`] for a lock that had
/// not expired, [`ForceUnlock::WasStale`] for an expired one (or none).
/// There is no check that the holder is dead: a remote holder cannot be
/// checked from here. A holder still running finds out at its next renewal
/// or state write, which is refused.
pub async fn force_unlock(connect: S3Connect, objects: &S3Objects) -> Result<ForceUnlock, StateError> {
    let bucket = Bucket {
        client: connect.client().await,
        objects: objects.clone(),
    };
    let key = objects.lock();
    for _ in 0..ACQUIRE_ATTEMPTS {
        let Some((bytes, etag)) = bucket.get(&key).await? else {
            return Ok(ForceUnlock::WasStale(None));
        };
        let record: Option<LockRecord> = serde_json::from_slice(&bytes).ok();
        // If-Match: the holder reported is the one removed.
        if bucket.delete(&key, Some(&etag)).await? {
            return Ok(match record {
                Some(r) if r.expired() => ForceUnlock::WasStale(Some(r.holder)),
                Some(r) => ForceUnlock::Removed(Some(r.holder)),
                None => ForceUnlock::Removed(None),
            });
        }
    }
    Err(bucket.remote(
        &key,
        "the lock object keeps changing (renewed or retaken by other runs); try again".to_string(),
    ))
}

// --- the locked backend -----------------------------------------------------

/// What opening read, under the lock.
#[derive(Debug)]
pub struct Loaded {
    /// The snapshot's bytes, `None` for a new state.
    pub snapshot: Option<Vec<u8>>,
    /// The journal's records, `None` if there is no journal object.
    pub journal: Option<Vec<u8>>,
    /// The holder of an expired lock this run took over.
    pub stale: Option<LockHolder>,
}

/// A request to the backend's thread, with where to answer.
enum Request {
    Persist {
        previous: Option<Vec<u8>>,
        next: Vec<u8>,
        label: String,
        reply: std::sync::mpsc::SyncSender<Result<(), StateError>>,
    },
    Append {
        record: Vec<u8>,
        label: String,
        reply: std::sync::mpsc::SyncSender<Result<(), StateError>>,
    },
    ClearJournal {
        reply: std::sync::mpsc::SyncSender<Result<(), StateError>>,
    },
}

/// The S3 [`StateBackend`]: holds the lock until dropped.
pub struct S3Backend {
    requests: Option<mpsc::UnboundedSender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
    location: String,
    backup: String,
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Backend")
            .field("location", &self.location)
            .finish()
    }
}

impl S3Backend {
    /// Starts the backend's thread, which takes the lock of the state at
    /// `objects` for `holder` and loads the snapshot and journal. Fails with
    /// [`StateError::Locked`] at once when another run holds an unexpired
    /// lock.
    pub async fn open(
        connect: S3Connect,
        objects: S3Objects,
        holder: LockHolder,
        options: S3Options,
    ) -> Result<(S3Backend, Loaded), StateError> {
        let location = objects.url(&objects.key);
        let backup = objects.url(&objects.backup());
        let thread_failed = |message: &str| StateError::Remote {
            location: location.clone(),
            message: message.to_string(),
        };
        let (ready_tx, ready_rx) = oneshot::channel();
        let (requests, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("meshform-s3-state".to_string())
            .spawn(move || worker_thread(connect, objects, holder, options, ready_tx, rx))
            .map_err(|e| thread_failed(&format!("cannot start the S3 state thread: {e}")))?;
        let loaded = match ready_rx.await {
            Ok(loaded) => loaded?,
            Err(_) => return Err(thread_failed("the S3 state thread ended while opening")),
        };
        Ok((
            S3Backend {
                requests: Some(requests),
                thread: Some(thread),
                location,
                backup,
            },
            loaded,
        ))
    }

    /// Sends a request and waits for its answer.
    fn call(
        &self,
        make: impl FnOnce(std::sync::mpsc::SyncSender<Result<(), StateError>>) -> Request,
    ) -> Result<(), StateError> {
        let gone = || StateError::Remote {
            location: self.location.clone(),
            message: "the S3 state thread has ended".to_string(),
        };
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let requests = self.requests.as_ref().ok_or_else(gone)?;
        requests.send(make(reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl StateBackend for S3Backend {
    fn persist(&mut self, previous: Option<&[u8]>, next: &[u8], label: &str) -> Result<(), PersistFailure> {
        Ok(self.call(|reply| Request::Persist {
            previous: previous.map(<[u8]>::to_vec),
            next: next.to_vec(),
            label: label.to_string(),
            reply,
        })?)
    }

    fn append(&mut self, record: &[u8], label: &str) -> Result<(), PersistFailure> {
        Ok(self.call(|reply| Request::Append {
            record: record.to_vec(),
            label: label.to_string(),
            reply,
        })?)
    }

    fn clear_journal(&mut self) -> Result<(), StateError> {
        self.call(|reply| Request::ClearJournal { reply })
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn backup_location(&self) -> String {
        self.backup.clone()
    }

    fn journal_limit(&self, _snapshot_bytes: u64) -> u64 {
        JOURNAL_LIMIT
    }
}

impl Drop for S3Backend {
    /// Closes the request channel, so the thread releases the lock and
    /// ends, and waits for it. Never panics.
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The backend thread: its own runtime, the lock, the loads, then requests
/// and renewals until the channel closes.
fn worker_thread(
    connect: S3Connect,
    objects: S3Objects,
    holder: LockHolder,
    options: S3Options,
    ready: oneshot::Sender<Result<Loaded, StateError>>,
    requests: mpsc::UnboundedReceiver<Request>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(StateError::Remote {
                location: objects.url(&objects.key),
                message: format!("cannot start the S3 state runtime: {e}"),
            }));
            return;
        }
    };
    runtime.block_on(async move {
        let bucket = Bucket {
            client: connect.client().await,
            objects,
        };
        match Worker::open(bucket, holder, options.lock_ttl).await {
            Ok((worker, loaded)) => {
                if let Err(Ok(_)) = ready.send(Ok(loaded)) {
                    // The opener is gone (its future was dropped).
                    worker.release().await;
                    return;
                }
                worker.run(requests).await;
            }
            Err(e) => {
                let _ = ready.send(Err(e));
            }
        }
    });
}

/// The backend thread's state: the lock held and the ETags last seen.
struct Worker {
    bucket: Bucket,
    ttl: Duration,
    lock: LockRecord,
    lock_etag: String,
    /// When this run's lock stops being valid by its own monotonic clock:
    /// the TTL counted from when the last successful write of the lock was
    /// sent (earlier than the expiry others see, never later).
    valid_until: Instant,
    /// Why the lock is no longer held, once known.
    lost: Option<String>,
    snapshot_etag: Option<String>,
    journal_etag: Option<String>,
    backup_etag: Option<String>,
    /// The journal's records as last written.
    journal: Vec<u8>,
}

impl Worker {
    async fn open(bucket: Bucket, holder: LockHolder, ttl: Duration) -> Result<(Worker, Loaded), StateError> {
        let sent = Instant::now();
        let (lock, lock_etag, stale) = acquire(&bucket, &holder, ttl).await?;
        let mut worker = Worker {
            bucket,
            ttl,
            lock,
            lock_etag,
            valid_until: sent + ttl,
            lost: None,
            snapshot_etag: None,
            journal_etag: None,
            backup_etag: None,
            journal: Vec::new(),
        };
        match worker.load().await {
            Ok((snapshot, journal)) => Ok((
                worker,
                Loaded {
                    snapshot,
                    journal,
                    stale,
                },
            )),
            Err(e) => {
                worker.release().await;
                Err(e)
            }
        }
    }

    /// Reads the journal, the snapshot and the backup's ETag.
    async fn load(&mut self) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>), StateError> {
        let objects = self.bucket.objects.clone();
        let journal = match self.bucket.get(&objects.journal()).await? {
            Some((bytes, etag)) => {
                self.journal_etag = Some(etag);
                self.journal = journal_records(bytes);
                Some(self.journal.clone())
            }
            None => None,
        };
        let snapshot = match self.bucket.get(&objects.key).await? {
            Some((bytes, etag)) => {
                self.snapshot_etag = Some(etag);
                Some(bytes)
            }
            None => None,
        };
        self.backup_etag = self.bucket.head(&objects.backup()).await?;
        Ok((snapshot, journal))
    }

    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        let mut renew_at = Instant::now() + self.ttl / 3;
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => self.handle(request).await,
                    None => break,
                },
                () = tokio::time::sleep_until(renew_at) => {
                    renew_at = match self.renew().await {
                        Ok(()) => Instant::now() + self.ttl / 3,
                        // Not refused, only failed: try again soon.
                        Err(_) if self.lost.is_none() => Instant::now() + (self.ttl / 10).max(Duration::from_secs(1)),
                        // Lost for good: nothing more to renew.
                        Err(_) => Instant::now() + Duration::from_secs(3600),
                    };
                }
            }
        }
        self.release().await;
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Persist {
                previous,
                next,
                label,
                reply,
            } => {
                let _ = reply.send(self.persist(previous, next, &label).await);
            }
            Request::Append { record, label, reply } => {
                let _ = reply.send(self.append(record, &label).await);
            }
            Request::ClearJournal { reply } => {
                let _ = reply.send(self.clear_journal().await);
            }
        }
    }

    /// Fails when the lock is no longer held (or may not be: expired).
    fn check_held(&mut self) -> Result<(), StateError> {
        if self.lost.is_none() && Instant::now() >= self.valid_until {
            self.lost = Some(format!(
                "this run's lock expired at {} before it could be renewed, so another run may have taken it over",
                self.lock.expires_at
            ));
        }
        match &self.lost {
            None => Ok(()),
            Some(reason) => Err(StateError::Superseded {
                location: self.bucket.url(&self.bucket.objects.lock()),
                reason: reason.clone(),
            }),
        }
    }

    async fn failpoint(&self, label: &str) -> Result<(), StateError> {
        crate::failpoint::hit("state-write", label)
            .await
            .map_err(|spec| StateError::Remote {
                location: self.bucket.url(&self.bucket.objects.key),
                message: format!("failpoint {spec}"),
            })
    }

    /// The backup (the previous snapshot), then the snapshot.
    async fn persist(
        &mut self,
        previous: Option<Vec<u8>>,
        next: Vec<u8>,
        label: &str,
    ) -> Result<(), StateError> {
        self.check_held()?;
        let objects = self.bucket.objects.clone();
        if let Some(previous) = previous {
            let key = objects.backup();
            let etag = self
                .bucket
                .put(&key, previous, self.backup_etag.as_deref())
                .await
                .map_err(|e| self.bucket.write_error(&key, e))?;
            self.backup_etag = Some(etag);
        }
        self.failpoint(label).await?;
        self.check_held()?;
        let etag = self
            .bucket
            .put(&objects.key, next, self.snapshot_etag.as_deref())
            .await
            .map_err(|e| self.bucket.write_error(&objects.key, e))?;
        self.snapshot_etag = Some(etag);
        Ok(())
    }

    /// Rewrites the journal object with `record` added.
    async fn append(&mut self, record: Vec<u8>, label: &str) -> Result<(), StateError> {
        self.check_held()?;
        self.failpoint(label).await?;
        self.check_held()?;
        let key = self.bucket.objects.journal();
        let mut records = self.journal.clone();
        records.extend_from_slice(&record);
        let etag = self
            .bucket
            .put(&key, journal_body(&records), self.journal_etag.as_deref())
            .await
            .map_err(|e| self.bucket.write_error(&key, e))?;
        self.journal_etag = Some(etag);
        self.journal = records;
        Ok(())
    }

    /// Rewrites the journal object empty (rather than deleting it, so the
    /// chain of ETags goes on).
    async fn clear_journal(&mut self) -> Result<(), StateError> {
        if self.journal_etag.is_none() {
            return Ok(());
        }
        self.check_held()?;
        let key = self.bucket.objects.journal();
        let etag = self
            .bucket
            .put(&key, journal_body(&[]), self.journal_etag.as_deref())
            .await
            .map_err(|e| self.bucket.write_error(&key, e))?;
        self.journal_etag = Some(etag);
        self.journal.clear();
        Ok(())
    }

    /// Rewrites the lock with a new expiry. A refusal means the lock was
    /// broken: recorded, so every later write fails.
    async fn renew(&mut self) -> Result<(), StateError> {
        self.check_held()?;
        let key = self.bucket.objects.lock();
        let record = LockRecord::new(self.lock.holder.clone(), self.lock.lock_id.clone(), self.ttl);
        let sent = Instant::now();
        match self.bucket.put(&key, record.body(), Some(&self.lock_etag)).await {
            Ok(etag) => {
                self.lock = record;
                self.lock_etag = etag;
                self.valid_until = sent + self.ttl;
                Ok(())
            }
            Err(WriteError::Refused(why)) => {
                let reason = format!(
                    "this run's lock was removed or replaced by another run (force-unlock, or a takeover after it expired): renewing it was refused ({why})"
                );
                tracing::warn!("{}: {reason}", self.bucket.url(&key));
                self.lost = Some(reason.clone());
                Err(StateError::Superseded {
                    location: self.bucket.url(&key),
                    reason,
                })
            }
            Err(WriteError::Failed(message)) => {
                tracing::warn!(
                    "could not renew the state lock {}: {message}",
                    self.bucket.url(&key)
                );
                Err(self.bucket.remote(&key, message))
            }
        }
    }

    /// Deletes the lock if it is still this run's (best effort: an
    /// unreleased lock expires, and is reported as stale).
    async fn release(&self) {
        let key = self.bucket.objects.lock();
        if let Err(e) = self.bucket.delete(&key, Some(&self.lock_etag)).await {
            tracing::warn!(
                "could not release the state lock: {e}; it expires at {}",
                self.lock.expires_at
            );
        }
    }
}

/// Takes the lock: creates it, or takes over an expired one. Returns the
/// record written, its ETag, and the expired holder taken over.
async fn acquire(
    bucket: &Bucket,
    holder: &LockHolder,
    ttl: Duration,
) -> Result<(LockRecord, String, Option<LockHolder>), StateError> {
    let key = bucket.objects.lock();
    let lock_id = uuid::Uuid::new_v4().to_string();
    for _ in 0..ACQUIRE_ATTEMPTS {
        let record = LockRecord::new(holder.clone(), lock_id.clone(), ttl);
        match bucket.put(&key, record.body(), None).await {
            Ok(etag) => return Ok((record, etag, None)),
            Err(WriteError::Refused(_)) => {}
            Err(WriteError::Failed(message)) => return Err(bucket.remote(&key, message)),
        }
        let Some((bytes, etag)) = bucket.get(&key).await? else {
            // Released between the two requests: try again.
            continue;
        };
        let existing: LockRecord = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            // Not a lock this meshform understands: held by an unknown run.
            Err(_) => {
                return Err(StateError::Locked {
                    path: bucket.url(&key).into(),
                    holder: None,
                });
            }
        };
        if !existing.expired() {
            return Err(StateError::Locked {
                path: bucket.url(&key).into(),
                holder: Some(Box::new(existing.holder)),
            });
        }
        let record = LockRecord::new(holder.clone(), lock_id.clone(), ttl);
        match bucket.put(&key, record.body(), Some(&etag)).await {
            Ok(etag) => return Ok((record, etag, Some(existing.holder))),
            // Renewed, released or taken over meanwhile: look again.
            Err(WriteError::Refused(_)) => {}
            Err(WriteError::Failed(message)) => return Err(bucket.remote(&key, message)),
        }
    }
    Err(bucket.remote(
        &key,
        "the lock object keeps changing (other runs are taking and releasing it); try again".to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let o = parse_url("s3://bucket/stacks/dev.json").expect("valid");
        assert_eq!(o.bucket, "bucket");
        assert_eq!(o.key, "stacks/dev.json");
        assert_eq!(o.lock(), "stacks/dev.json.lock");
        assert_eq!(o.url(&o.journal()), "s3://bucket/stacks/dev.json.journal");
        for (bad, says) in [
            ("s3://", "no bucket"),
            ("s3:///key", "no bucket"),
            ("s3://bucket", "no object key"),
            ("s3://bucket/", "no object key"),
            ("s3://bucket/dir/", "no object key"),
            ("http://bucket/key", "not an s3://"),
        ] {
            let err = parse_url(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn journal_header_is_stripped_and_unique() {
        let a = journal_body(b"rec\n");
        let b = journal_body(b"rec\n");
        assert_ne!(a, b, "a nonce per write");
        assert_ne!(md5_etag(&journal_body(b"")), md5_etag(&journal_body(b"")));
        assert_eq!(journal_records(a), b"rec\n");
        assert_eq!(journal_records(journal_body(b"")), b"");
        assert_eq!(journal_records(b"plain\n".to_vec()), b"plain\n");
    }

    #[test]
    fn etags() {
        // MD5 of the empty string, as S3 reports it.
        assert_eq!(md5_etag(b""), "\"d41d8cd98f00b204e9800998ecf8427e\"");
        assert!(same_etag("\"abc\"", "abc"));
        assert!(!same_etag("\"abc\"", "abd"));
    }

    #[test]
    fn lock_records_expire() {
        let holder = LockHolder::current("meshform apply");
        let live = LockRecord::new(holder.clone(), "id".into(), Duration::from_secs(60));
        assert!(!live.expired());
        assert_eq!(live.ttl_secs, 60);
        let mut dead = live.clone();
        dead.expires_unix = unix_secs(SystemTime::now()) - 1;
        assert!(dead.expired());
        let parsed: LockRecord = serde_json::from_slice(&live.body()).expect("json");
        assert_eq!(parsed, live);
    }
}
