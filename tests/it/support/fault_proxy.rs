//! A tiny HTTP/1.1 proxy in front of a moto server that fails the first N
//! requests matching a method and path prefix with EKS's IAM propagation
//! error, to test retries that moto alone cannot provoke.
//!
//! Blocking std sockets, one thread per connection (the test crate's tokio
//! has no `net` feature, and this needs none of its speed). Per request:
//! read the head and the `Content-Length` body, then either answer with the
//! fault (keeping the connection open) or forward the request to moto with
//! `Connection: close`, read moto's answer to EOF and relay it with
//! `Connection: close`, closing the client connection after it. Chunked
//! request bodies are not supported (the AWS SDK sends `Content-Length`).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::moto::REGION;

/// Role ARN named in faults when the request body names none.
const FALLBACK_ROLE: &str = "arn:aws:iam::123456789012:role/fault-proxy";

/// Which requests fail, and how many matched so far.
struct Rule {
    method: String,
    path_prefix: String,
    fail_first: usize,
    matched: AtomicUsize,
    /// Every request seen, as its API action (see `action_of`).
    seen: std::sync::Mutex<Vec<String>>,
}

/// A running fault proxy; stops when dropped.
pub struct FaultProxy {
    port: u16,
    rule: Arc<Rule>,
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

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to moto on
    /// `upstream_port`. The first `fail_first` requests whose method is
    /// `method` and whose path starts with `path_prefix` get a 400
    /// `InvalidParameterException` saying the role could not be assumed.
    pub fn start(upstream_port: u16, method: &str, path_prefix: &str, fail_first: usize) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let rule = Arc::new(Rule {
            method: method.to_string(),
            path_prefix: path_prefix.to_string(),
            fail_first,
            matched: AtomicUsize::new(0),
            seen: std::sync::Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (rule, stop) = (rule.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let rule = rule.clone();
                    std::thread::spawn(move || {
                        if let Err(e) = serve(conn, upstream_port, &rule) {
                            eprintln!("fault proxy: {e}");
                        }
                    });
                }
            })
        };
        FaultProxy {
            port,
            rule,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The API action of every request seen so far, in order: the query
    /// protocol's `Action` (EC2, IAM, STS), the JSON protocol's
    /// `X-Amz-Target`, or `METHOD /path` for REST APIs (EKS).
    pub fn actions(&self) -> Vec<String> {
        self.rule.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// How many requests matched the rule so far (failed or forwarded).
    pub fn matched(&self) -> usize {
        self.rule.matched.load(Ordering::SeqCst)
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

/// Serves one client connection until it closes or a request is relayed.
fn serve(mut client: TcpStream, upstream_port: u16, rule: &Rule) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut pending = Vec::new();
    while let Some(req) = read_request(&mut client, &mut pending)? {
        if let Ok(mut seen) = rule.seen.lock() {
            seen.push(action_of(&req));
        }
        let fail = req.method == rule.method
            && req.path.starts_with(&rule.path_prefix)
            && rule.matched.fetch_add(1, Ordering::SeqCst) < rule.fail_first;
        if fail {
            client.write_all(&fault_response(&req))?;
            client.flush()?;
            continue;
        }
        relay(&req, upstream_port, &mut client)?;
        break;
    }
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

/// The API action a request calls.
fn action_of(req: &Request) -> String {
    let body = String::from_utf8_lossy(&req.body);
    if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return action.to_string();
    }
    if let Some(target) = req.headers.iter().find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.eq_ignore_ascii_case("x-amz-target")
            .then(|| v.trim().to_string())
    }) {
        return target;
    }
    format!("{} {}", req.method, req.path.split('?').next().unwrap_or(""))
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

/// The error EKS answers while a new role is not assumable yet.
fn fault_response(req: &Request) -> Vec<u8> {
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

/// Forwards `req` to moto with `Connection: close` and relays the whole
/// answer, also with `Connection: close`.
fn relay(req: &Request, upstream_port: u16, client: &mut TcpStream) -> io::Result<()> {
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
    let head_end = find(&response, b"\r\n\r\n")
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
