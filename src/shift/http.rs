//! A minimal HTTP/1.1 GET for the Prometheus gate, over the hyper already
//! in the dependency tree (through kube and the AWS SDK), so no HTTP client
//! crate is added. Plain `http://` only: Prometheus behind TLS is reached
//! through a local port-forward or proxy.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// Longest one request may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL cannot be used.
    #[error("`{url}` is not a usable URL: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting, sending or reading failed.
    #[error("GET {url}: {reason}")]
    Transport {
        /// The URL requested.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// An HTTP answer: status and body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The whole body.
    pub body: Bytes,
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved kept).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GETs `url` (`http://host:port/path?query`).
pub async fn get(url: &str) -> Result<Response, HttpError> {
    let bad = |reason: String| HttpError::Url {
        url: url.to_string(),
        reason,
    };
    let uri: http::Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only http:// URLs are supported".to_string()));
    }
    let host = uri.host().ok_or_else(|| bad("no host".to_string()))?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_else(|| host.clone());
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let transport = |reason: String| HttpError::Transport {
        url: url.to_string(),
        reason,
    };
    let exchange = async {
        // Hosts in brackets (IPv6 literals) connect without the brackets.
        let connect_host = host.trim_start_matches('[').trim_end_matches(']');
        let stream = tokio::net::TcpStream::connect((connect_host, port))
            .await
            .map_err(|e| transport(format!("cannot connect: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| transport(format!("handshake: {e}")))?;
        // The connection is driven until the response body is read, then dropped.
        let driver = tokio::spawn(conn);
        let request = http::Request::get(path)
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| transport(format!("cannot build the request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| transport(format!("{e}")))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(format!("reading the body: {e}")))?
            .to_bytes();
        driver.abort();
        Ok(Response { status, body })
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| transport(format!("no answer within {}s", TIMEOUT.as_secs())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(
            encode_component("sum(rate(x{a=\"b c\"}[1m]))"),
            "sum%28rate%28x%7Ba%3D%22b%20c%22%7D%5B1m%5D%29%29"
        );
        assert_eq!(encode_component("a-b_c.d~"), "a-b_c.d~");
    }

    #[tokio::test]
    async fn non_http_urls_are_refused() {
        assert!(matches!(get("https://x:9090/").await, Err(HttpError::Url { .. })));
        assert!(matches!(get("not a url").await, Err(HttpError::Url { .. })));
    }
}
