//! HTTP plumbing: a plain-HTTP/1.1 hyper server on 127.0.0.1, on a thread
//! of its own with its own single-threaded tokio runtime (so the fake works
//! the same from sync tests, from `#[tokio::test]`s, and for a `meshform`
//! child process given a kubeconfig), the shared state behind one lock,
//! change notification for watches, and the request log.

use super::LoggedRequest;
use super::api::{self, ApiRequest, ApiResponse};
use super::controllers;
use super::store::State;
use super::watch;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch as tokio_watch};

/// State shared by the server thread and the test's handle.
pub struct Shared {
    state: Mutex<State>,
    /// The latest resourceVersion, for watches to wake on.
    pub changed: tokio_watch::Sender<u64>,
    pub log: Mutex<Vec<LoggedRequest>>,
    pub addr: SocketAddr,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not take the server down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(addr: SocketAddr) -> Shared {
        Shared {
            state: Mutex::new(State::new()),
            changed: tokio_watch::channel(1).0,
            log: Mutex::new(vec![]),
            addr,
        }
    }

    /// Runs `f` under the lock, then wakes watches if anything changed.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (r, rv) = {
            let mut s = lock(&self.state);
            let r = f(&mut s);
            (r, s.rv)
        };
        self.changed.send_if_modified(|v| {
            let changed = *v != rv;
            *v = rv;
            changed
        });
        r
    }

    pub fn log(&self) -> MutexGuard<'_, Vec<LoggedRequest>> {
        lock(&self.log)
    }
}

/// A response body fed by a channel: a watch stream.
pub struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

type ResponseBody = Either<Full<Bytes>, ChannelBody>;

/// Starts the server thread on an already-bound listener; it stops when
/// `shutdown` turns true.
pub fn spawn(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    shutdown: tokio_watch::Receiver<bool>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("fake-kube".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("fake kube runtime");
            runtime.block_on(serve(shared, listener, shutdown));
            // Dropping the runtime drops every connection and watch task.
        })
        .expect("spawn fake kube thread")
}

async fn serve(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    mut shutdown: tokio_watch::Receiver<bool>,
) {
    listener.set_nonblocking(true).expect("nonblocking listener");
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    tokio::spawn(tick(shared.clone()));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

/// Runs the controllers' timed steps (CRD establishment).
async fn tick(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        shared.with_state(|s| {
            let now = Instant::now();
            if s.establish_due.values().any(|d| *d <= now) {
                controllers::reconcile(s);
            }
        });
    }
}

fn header(req: &Request<Incoming>, name: hyper::header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<ResponseBody>, Infallible> {
    let at = Instant::now();
    let content_type = header(&req, hyper::header::CONTENT_TYPE);
    let accept = header(&req, hyper::header::ACCEPT);
    let user_agent = header(&req, hyper::header::USER_AGENT);
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => vec![],
    };
    let api_req = ApiRequest {
        method,
        path,
        query,
        content_type,
        accept,
        user_agent,
        body,
    };
    let address = shared.addr.to_string();
    let response = shared.with_state(|s| api::handle(s, &api_req, &address));
    let status = match &response {
        ApiResponse::Json(code, _) | ApiResponse::Typed(code, _, _) => *code,
        ApiResponse::Watch(_) => 200,
    };
    shared.log().push(LoggedRequest {
        method: api_req.method.clone(),
        path: api_req.path.clone(),
        query: api_req.query.clone(),
        content_type: api_req.content_type.clone(),
        field_manager: api_req.field_manager(),
        dry_run: api_req.dry_run(),
        at,
        status,
        body: super::protobuf::logged_body(api_req.content_type.as_deref(), &api_req.body),
    });
    let builder = Response::builder().header(hyper::header::CONTENT_TYPE, "application/json");
    let response = match response {
        ApiResponse::Json(code, value) => builder
            .status(code)
            .body(Either::Left(Full::new(Bytes::from(value.to_string())))),
        ApiResponse::Typed(code, content_type, value) => Response::builder()
            .status(code)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Either::Left(Full::new(Bytes::from(value.to_string())))),
        ApiResponse::Watch(spec) => {
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(watch::run(shared.clone(), *spec, tx));
            builder.status(200).body(Either::Right(ChannelBody(rx)))
        }
    };
    Ok(response.expect("valid response"))
}
