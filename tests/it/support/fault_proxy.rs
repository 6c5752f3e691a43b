//! A tiny HTTP/1.1 proxy in front of a moto server that injects faults moto
//! alone cannot provoke, and records every request.
//!
//! A [`FaultPlan`] says which requests get which [`Fault`]: the first N
//! requests of one call type, of a method and path prefix, or of *every*
//! call type (the fault matrix: "the first occurrence of each call gets
//! fault F"). A call type is the API action: the query protocol's `Action`
//! (EC2, IAM, STS), the operation of the JSON protocol's `X-Amz-Target`
//! (ECR), or for REST APIs (EKS) the method and the path with every second
//! segment (the names) replaced by `*`, such as `POST /clusters/*/node-groups`.
//! Faults answer in the service's own error format (EC2's query XML,
//! IAM/STS `<ErrorResponse>` XML, awsJson1.1 `__type` for ECR, REST-JSON
//! with `x-amzn-ErrorType` for EKS), or break the connection: reset before
//! forwarding, or forward, let moto carry the call out, and drop its answer.
//! A plan can also delay every answer (to keep calls in flight).
//!
//! Blocking std sockets, one thread per connection (this needs none of
//! tokio's speed). Per request: read the head and the `Content-Length` body,
//! then either answer with the fault (keeping the connection open), break
//! the connection, or forward the request to moto with `Connection: close`,
//! read moto's answer to EOF and relay it with `Connection: close`, closing
//! the client connection after it. Chunked request bodies are not supported
//! (the AWS SDK sends `Content-Length`).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::moto::REGION;

/// Role ARN named in faults when the request body names none.
const FALLBACK_ROLE: &str = "arn:aws:iam::123456789012:role/fault-proxy";

/// What the proxy does to a request instead of relaying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// EKS's 400 `InvalidParameterException` saying the request's role
    /// could not be assumed (IAM propagation).
    IamPropagation,
    /// HTTP 500: `InternalError` (EC2) or `InternalFailure` (others).
    ServerError,
    /// HTTP 503 `ServiceUnavailable`.
    Unavailable,
    /// Throttling: `RequestLimitExceeded` (EC2, 503), `Throttling` (IAM and
    /// other query APIs, 400), `ThrottlingException` (ECR 400, EKS 429).
    Throttling,
    /// The connection is reset (RST) without an answer, before the request
    /// is forwarded: the call never reaches moto.
    Reset,
    /// The request is forwarded and moto carries it out; its answer is read
    /// and thrown away, and the connection is closed: the call succeeded
    /// but the caller never learns it.
    DropResponse,
    /// The service's "does not exist" error with this code (HTTP 404), as
    /// AWS answers once a deletion has finished and moto never does.
    NotFound(&'static str),
    /// A Query-protocol call answered as done (HTTP 200, an empty
    /// `<CallResponse>`) without reaching moto: for a delete moto does not
    /// implement (the test records that it was sent and says so).
    Done,
}

/// Which requests a rule applies to.
#[derive(Debug, Clone)]
enum Matcher {
    /// Every request.
    Any,
    /// Requests of this call type.
    Call(String),
    /// Requests with this method whose path starts with the prefix.
    Path { method: String, prefix: String },
    /// Requests of call type `call` once a request of call type `after`
    /// has been seen (resolved in `Shared::decide`, which holds the log).
    CallAfter { call: String, after: String },
}

impl Matcher {
    fn matches(&self, req: &Request, call: &str) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::Call(c) => c == call,
            Matcher::Path { method, prefix } => req.method == *method && req.path.starts_with(prefix),
            Matcher::CallAfter { call: c, .. } => c == call,
        }
    }
}

/// One rule of a plan: the first `first` matching requests get `fault`,
/// counted over all matching requests or separately per call type.
#[derive(Debug, Clone)]
struct Rule {
    matcher: Matcher,
    fault: Fault,
    first: usize,
    per_call_type: bool,
}

/// Which requests the proxy breaks, and how.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    rules: Vec<Rule>,
    delay: Option<Duration>,
}

impl FaultPlan {
    /// A plan that faults nothing (a recording pass-through proxy).
    pub fn new() -> FaultPlan {
        FaultPlan::default()
    }

    /// The first occurrence of every call type gets `fault`.
    pub fn first_of_each_call(fault: Fault) -> FaultPlan {
        FaultPlan::new().first_of_each_call_also(fault)
    }

    /// Adds: the first occurrence of every call type gets `fault`.
    pub fn first_of_each_call_also(mut self, fault: Fault) -> FaultPlan {
        self.rules.push(Rule {
            matcher: Matcher::Any,
            fault,
            first: 1,
            per_call_type: true,
        });
        self
    }

    /// The first `n` requests of call type `call` get `fault`.
    pub fn on_call(mut self, call: &str, fault: Fault, n: usize) -> FaultPlan {
        self.rules.push(Rule {
            matcher: Matcher::Call(call.to_string()),
            fault,
            first: n,
            per_call_type: false,
        });
        self
    }

    /// The first `n` requests with `method` whose path starts with `prefix`
    /// get `fault`.
    pub fn on_path(mut self, method: &str, prefix: &str, fault: Fault, n: usize) -> FaultPlan {
        self.rules.push(Rule {
            matcher: Matcher::Path {
                method: method.to_string(),
                prefix: prefix.to_string(),
            },
            fault,
            first: n,
            per_call_type: false,
        });
        self
    }

    /// Every request of call type `call` made after the first one of call
    /// type `after` gets `fault` (such as `NotFound` for the describe of a
    /// group once its delete was sent, which moto leaves `deleting`).
    pub fn on_call_after(mut self, call: &str, after: &str, fault: Fault) -> FaultPlan {
        self.rules.push(Rule {
            matcher: Matcher::CallAfter {
                call: call.to_string(),
                after: after.to_string(),
            },
            fault,
            first: usize::MAX,
            per_call_type: false,
        });
        self
    }

    /// Every answer moto gives is held back this long before it is relayed.
    pub fn delay_responses(mut self, delay: Duration) -> FaultPlan {
        self.delay = Some(delay);
        self
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The call type (see the module docs), such as `CreateVpc`,
    /// `CreateRepository` or `POST /clusters/*/node-groups`.
    pub call: String,
    /// The service named in the request's signature (`ec2`, `iam`, `eks`...).
    pub service: String,
    pub method: String,
    pub path: String,
    /// The request body, as text.
    pub body: String,
    /// The fault it got, if any.
    pub fault: Option<Fault>,
}

impl Recorded {
    /// A parameter of a query-protocol body (`ClientToken=...`), decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.body.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| url_decode(v))
        })
    }

    /// A top-level string field of a JSON body (`clientRequestToken`).
    pub fn json_field(&self, name: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        v.get(name)?.as_str().map(str::to_string)
    }
}

/// Decodes `%XX` and `+` of a form-encoded value.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the connection threads share.
struct Shared {
    plan: FaultPlan,
    /// Matches so far, by rule and (for per-call-type rules) call type.
    counts: Mutex<HashMap<(usize, String), usize>>,
    /// Requests matching any rule so far (faulted or forwarded).
    matched: AtomicUsize,
    /// Every request seen, in order.
    seen: Mutex<Vec<Recorded>>,
}

impl Shared {
    /// The fault `req` gets under the plan, counting the match.
    fn decide(&self, req: &Request, call: &str) -> Option<Fault> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut fault = None;
        let mut any = false;
        for (i, rule) in self.plan.rules.iter().enumerate() {
            if !rule.matcher.matches(req, call) {
                continue;
            }
            if let Matcher::CallAfter { after, .. } = &rule.matcher {
                let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if !seen.iter().any(|r| r.call == *after) {
                    continue;
                }
            }
            any = true;
            let key = (
                i,
                if rule.per_call_type {
                    call.to_string()
                } else {
                    String::new()
                },
            );
            let n = counts.entry(key).or_insert(0);
            *n += 1;
            if fault.is_none() && *n <= rule.first {
                fault = Some(rule.fault);
            }
        }
        if any {
            self.matched.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }
}

/// A running fault proxy; stops when dropped.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// One request as read from the client.
struct Request {
    method: String,
    path: String,
    /// Header lines, without the request line.
    headers: Vec<String>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The signing service of the request: `Credential=<key>/<date>/<region>/<service>/aws4_request`.
    fn service(&self) -> String {
        self.header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or("")
            .to_string()
    }

    fn query_action(&self) -> Option<String> {
        let body = String::from_utf8_lossy(&self.body);
        body.split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .map(str::to_string)
    }

    fn target(&self) -> Option<String> {
        self.header("x-amz-target").map(str::to_string)
    }

    /// The call type (see the module docs).
    fn call(&self) -> String {
        if let Some(action) = self.query_action() {
            return action;
        }
        if let Some(target) = self.target() {
            return target.rsplit('.').next().unwrap_or(&target).to_string();
        }
        let path = self.path.split('?').next().unwrap_or("");
        let segments: Vec<&str> = path
            .split('/')
            .skip(1)
            .enumerate()
            .map(|(i, s)| if i % 2 == 1 { "*" } else { s })
            .collect();
        format!("{} /{}", self.method, segments.join("/"))
    }
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to moto on
    /// `upstream_port`. The first `fail_first` requests whose method is
    /// `method` and whose path starts with `path_prefix` get a 400
    /// `InvalidParameterException` saying the role could not be assumed.
    pub fn start(upstream_port: u16, method: &str, path_prefix: &str, fail_first: usize) -> FaultProxy {
        FaultProxy::with_plan(
            upstream_port,
            FaultPlan::new().on_path(method, path_prefix, Fault::IamPropagation, fail_first),
        )
    }

    /// Starts a proxy on a free loopback port forwarding to moto on
    /// `upstream_port`, breaking requests as `plan` says.
    pub fn with_plan(upstream_port: u16, plan: FaultPlan) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            plan,
            counts: Mutex::new(HashMap::new()),
            matched: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        if let Err(e) = serve(conn, upstream_port, &shared) {
                            eprintln!("fault proxy: {e}");
                        }
                    });
                }
            })
        };
        FaultProxy {
            port,
            shared,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The API action of every request seen so far, in order: the query
    /// protocol's `Action` (EC2, IAM, STS), the JSON protocol's whole
    /// `X-Amz-Target`, or `METHOD /path` for REST APIs (EKS).
    pub fn actions(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| {
                if r.call.contains(' ') {
                    format!("{} {}", r.method, r.path.split('?').next().unwrap_or(""))
                } else {
                    r.call.clone()
                }
            })
            .collect()
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The requests of call type `call` seen so far.
    pub fn calls(&self, call: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.call == call).collect()
    }

    /// The call types that got a fault, each once, in the order first seen.
    pub fn faulted_calls(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.requests() {
            if r.fault.is_some() && !out.contains(&r.call) {
                out.push(r.call);
            }
        }
        out
    }

    /// How many requests matched a rule so far (faulted or forwarded).
    pub fn matched(&self) -> usize {
        self.shared.matched.load(Ordering::SeqCst)
    }

    /// Environment for a `meshform` child process to go through this proxy
    /// (the same keys as `Moto::env`).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
            ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
            ("no_proxy".into(), "127.0.0.1,localhost".into()),
        ]
    }

    /// An SDK configuration going through this proxy.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await
    }

    /// meshform's AWS clients going through this proxy.
    pub async fn clients(&self) -> Arc<meshform::provider::aws::AwsClients> {
        Arc::new(meshform::provider::aws::AwsClients::from_sdk_config(
            &self.sdk_config().await,
        ))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Serves one client connection until it closes, a request is relayed, or
/// a fault breaks it.
fn serve(mut client: TcpStream, upstream_port: u16, shared: &Shared) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut pending = Vec::new();
    while let Some(req) = read_request(&mut client, &mut pending)? {
        let call = req.call();
        let fault = shared.decide(&req, &call);
        if let Ok(mut seen) = shared.seen.lock() {
            seen.push(Recorded {
                call: call.clone(),
                service: req.service(),
                method: req.method.clone(),
                path: req.path.clone(),
                body: String::from_utf8_lossy(&req.body).into_owned(),
                fault,
            });
        }
        match fault {
            Some(Fault::Reset) => {
                reset(client);
                return Ok(());
            }
            Some(Fault::DropResponse) => {
                // moto carries the call out; its answer goes nowhere.
                let _answer = forward(&req, upstream_port)?;
                let _ = client.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(f) => {
                client.write_all(&fault_response(&req, f))?;
                client.flush()?;
                continue;
            }
            None => {
                let answer = forward(&req, upstream_port)?;
                if let Some(d) = shared.plan.delay {
                    std::thread::sleep(d);
                }
                relay(&answer, &mut client)?;
                break;
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

/// Closes the connection with a TCP reset (SO_LINGER 0) instead of an
/// orderly close.
fn reset(conn: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(conn);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request; `None` when the client closed the connection between
/// requests. `pending` carries bytes read past the previous request.
fn read_request(conn: &mut TcpStream, pending: &mut Vec<u8>) -> io::Result<Option<Request>> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(pending, b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        pending.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let headers: Vec<String> = lines.map(str::to_string).collect();
    let length = headers
        .iter()
        .find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let body_start = head_end + 4;
    while pending.len() < body_start + length {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "request body cut short",
            ));
        }
        pending.extend_from_slice(&chunk[..n]);
    }
    let body = pending[body_start..body_start + length].to_vec();
    pending.drain(..body_start + length);
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

/// The wire format of a service's errors.
enum Protocol {
    /// EC2's query protocol: `<Response><Errors><Error>...`.
    Ec2,
    /// The query protocol of IAM, STS, ELB: `<ErrorResponse><Error>...`.
    Query,
    /// awsJson1.x (ECR): `{"__type": ...}`.
    Json,
    /// REST-JSON (EKS): `x-amzn-ErrorType` header, `{"message": ...}`.
    RestJson,
}

fn protocol(req: &Request) -> Protocol {
    if req.target().is_some() {
        Protocol::Json
    } else if req.query_action().is_some() {
        if req.service() == "ec2" {
            Protocol::Ec2
        } else {
            Protocol::Query
        }
    } else {
        Protocol::RestJson
    }
}

/// The answer for a fault that answers: status, reason and error code in
/// the request's protocol, and the body.
fn fault_response(req: &Request, fault: Fault) -> Vec<u8> {
    if fault == Fault::IamPropagation {
        return iam_propagation_response(req);
    }
    if fault == Fault::Done {
        let call = req.call();
        let body = format!(
            "<{call}Response><ResponseMetadata><RequestId>fault-proxy</RequestId></ResponseMetadata></{call}Response>"
        );
        return format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nx-amzn-RequestId: fault-proxy\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
    }
    let protocol = protocol(req);
    let (status, reason, code, message) = match (fault, &protocol) {
        (Fault::ServerError, Protocol::Ec2) => (
            500,
            "Internal Server Error",
            "InternalError",
            "An internal error has occurred (fault proxy)",
        ),
        (Fault::ServerError, _) => (
            500,
            "Internal Server Error",
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure (fault proxy)",
        ),
        (Fault::Unavailable, _) => (
            503,
            "Service Unavailable",
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server (fault proxy)",
        ),
        (Fault::Throttling, Protocol::Ec2) => (
            503,
            "Service Unavailable",
            "RequestLimitExceeded",
            "Request limit exceeded (fault proxy)",
        ),
        (Fault::Throttling, Protocol::Query) => {
            (400, "Bad Request", "Throttling", "Rate exceeded (fault proxy)")
        }
        (Fault::Throttling, Protocol::Json) => (
            400,
            "Bad Request",
            "ThrottlingException",
            "Rate exceeded (fault proxy)",
        ),
        (Fault::Throttling, Protocol::RestJson) => (
            429,
            "Too Many Requests",
            "ThrottlingException",
            "Rate exceeded (fault proxy)",
        ),
        (Fault::NotFound(code), _) => (404, "Not Found", code, "Not found (fault proxy)"),
        (Fault::IamPropagation | Fault::Reset | Fault::DropResponse | Fault::Done, _) => {
            unreachable!("{fault:?} does not answer")
        }
    };
    let (content_type, extra, body) = match protocol {
        Protocol::Ec2 => (
            "text/xml;charset=UTF-8",
            String::new(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
                 <Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
            ),
        ),
        Protocol::Query => {
            let kind = if status >= 500 { "Receiver" } else { "Sender" };
            (
                "text/xml",
                String::new(),
                format!(
                    "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>{kind}</Type>\
                     <Code>{code}</Code><Message>{message}</Message></Error>\
                     <RequestId>fault-proxy</RequestId></ErrorResponse>"
                ),
            )
        }
        Protocol::Json => (
            "application/x-amz-json-1.1",
            String::new(),
            serde_json::json!({"__type": code, "message": message}).to_string(),
        ),
        Protocol::RestJson => (
            "application/json",
            format!("x-amzn-ErrorType: {code}\r\n"),
            serde_json::json!({"message": message}).to_string(),
        ),
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: {content_type}\r\n\
         {extra}\
         x-amzn-RequestId: fault-proxy\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The error EKS answers while a new role is not assumable yet.
fn iam_propagation_response(req: &Request) -> Vec<u8> {
    let role = serde_json::from_slice::<serde_json::Value>(&req.body)
        .ok()
        .and_then(|v| {
            ["roleArn", "nodeRole"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|r| r.as_str()).map(str::to_string))
        })
        .unwrap_or_else(|| FALLBACK_ROLE.to_string());
    let body = serde_json::json!({
        "message": format!(
            "Role with arn: {role} could not be assumed because it does not exist or the trusted entity is not correct"
        )
    })
    .to_string();
    format!(
        "HTTP/1.1 400 Bad Request\r\n\
         Content-Type: application/json\r\n\
         x-amzn-ErrorType: InvalidParameterException\r\n\
         x-amzn-RequestId: fault-proxy\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn is_hop_header(line: &str) -> bool {
    line.split_once(':').is_some_and(|(name, _)| {
        let name = name.trim();
        name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive")
    })
}

/// Forwards `req` to moto with `Connection: close` and returns its whole
/// answer.
fn forward(req: &Request, upstream_port: u16) -> io::Result<Vec<u8>> {
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    upstream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for h in req.headers.iter().filter(|h| !is_hop_header(h)) {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    upstream.write_all(out.as_bytes())?;
    upstream.write_all(&req.body)?;
    upstream.flush()?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    Ok(response)
}

/// Relays moto's answer with `Connection: close`.
fn relay(response: &[u8], client: &mut TcpStream) -> io::Result<()> {
    let head_end = find(response, b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "upstream answer without a head"))?;
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let mut relayed = String::new();
    for line in head.split("\r\n").filter(|l| !is_hop_header(l)) {
        relayed.push_str(line);
        relayed.push_str("\r\n");
    }
    relayed.push_str("Connection: close\r\n\r\n");
    client.write_all(relayed.as_bytes())?;
    client.write_all(&response[head_end + 4..])?;
    client.flush()
}
