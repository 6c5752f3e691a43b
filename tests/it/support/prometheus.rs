//! A real Prometheus server (Debian's package, installed by
//! scripts/prometheus.sh) scraping a metrics endpoint the test serves and
//! changes: one gauge, `shift_test_success_ratio`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::cli::Workdir;

/// The gauge the endpoint serves.
pub const GAUGE: &str = "shift_test_success_ratio";

/// A metrics endpoint on 127.0.0.1 serving [`GAUGE`] with a value the test
/// sets.
pub struct Metrics {
    pub addr: String,
    value: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Metrics {
    pub fn serve(initial: f64) -> Metrics {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let value = Arc::new(AtomicU64::new(initial.to_bits()));
        let stop = Arc::new(AtomicBool::new(false));
        let (v, s) = (value.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                // Read the request head (a scrape is a bodiless GET).
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!(
                    "# TYPE {GAUGE} gauge\n{GAUGE} {}\n",
                    f64::from_bits(v.load(Ordering::SeqCst))
                );
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Metrics { addr, value, stop }
    }

    pub fn set(&self, v: f64) {
        self.value.store(v.to_bits(), Ordering::SeqCst);
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(&self.addr);
    }
}

/// A Prometheus server in a temporary directory, scraping `metrics` every
/// second; killed when dropped.
pub struct Prometheus {
    pub url: String,
    child: Child,
    log: PathBuf,
    _dir: Workdir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary() -> String {
    std::env::var("MESHFORM_PROMETHEUS")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "prometheus".to_string())
}

impl Prometheus {
    pub fn start(metrics: &Metrics) -> Prometheus {
        let dir = Workdir::new("prometheus");
        let config = dir.write(
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: shift\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['{}']\n",
                metrics.addr
            ),
        );
        let log = dir.path.join("prometheus.log");
        let port = free_port();
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.tsdb.path={}", dir.path.join("data").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus (run scripts/prometheus.sh install): {e}"));
        let mut p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            log,
            _dir: dir,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = self.url.trim_start_matches("http://").to_string();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                let _ = write!(
                    s,
                    "GET /-/ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                );
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready after 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
