//! A Helm chart repository on 127.0.0.1 for tests, so that `--repo URL`
//! and `--version` run for real without the network: the chart fixtures
//! (tests/data/charts) are packaged and indexed with the real helm
//! (`helm package`, `helm repo index`) and served as static files over
//! plain HTTP by a thread (one request per connection, GET only). The
//! server stops when the value drops.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::cli::Workdir;
use super::kube_tools::{self, Tool};
use super::moto::project_root;

/// The chart fixtures.
pub fn charts_dir() -> PathBuf {
    project_root().join("tests/data/charts")
}

/// A served chart repository.
pub struct ChartRepo {
    /// `http://127.0.0.1:PORT`, what `--repo` and `helm repo add` take.
    pub url: String,
    stop: Arc<AtomicBool>,
    port: u16,
    thread: Option<JoinHandle<()>>,
    _dir: Workdir,
}

impl ChartRepo {
    /// Packages the fixtures named in `charts` and serves them.
    pub fn serve(charts: &[&str]) -> ChartRepo {
        let dir = Workdir::new("chart-repo");
        let files = dir.path.join("files");
        std::fs::create_dir_all(&files).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let helm = |args: &[&str]| {
            let out = kube_tools::run(Tool::Helm4, Path::new("/dev/null"), &dir.path, args);
            assert!(
                out.status.success(),
                "helm {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for chart in charts {
            let src = charts_dir().join(chart);
            helm(&["package", src.to_str().unwrap(), "-d", files.to_str().unwrap()]);
        }
        helm(&["repo", "index", files.to_str().unwrap(), "--url", &url]);

        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = answer(stream, &files);
                    }
                }
            })
        };
        ChartRepo {
            url,
            stop,
            port,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

/// Answers one request: the file named by a GET's path, else 404.
fn answer(stream: TcpStream, files: &Path) -> std::io::Result<()> {
    // A client that connects and says nothing must not stall the server
    // (and with it the drop that joins it).
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let name = path.split('?').next().unwrap_or("").trim_start_matches('/');
    let file = (method == "GET" && !name.is_empty() && !name.contains(['/', '\\']) && name != "..")
        .then(|| std::fs::read(files.join(name)).ok())
        .flatten();
    let mut out = stream;
    match file {
        Some(body) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(&body)?;
        }
        None => write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?,
    }
    out.flush()
}

impl Drop for ChartRepo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
