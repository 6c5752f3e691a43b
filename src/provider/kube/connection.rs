//! How in-cluster resources reach a Kubernetes API server.
//!
//! An in-cluster resource's `cluster` attribute is a table naming the
//! cluster: usually `"${cluster.connection}"`, which an `aws.eks.cluster`
//! computes (`eks_cluster`, `endpoint`, `certificate_authority_data`,
//! `region`); or `{ kubeconfig_context = "name" }` (optionally with
//! `kubeconfig = "path"`) for a cluster the stack does not manage.
//!
//! For EKS, the client verifies TLS against the cluster's CA and
//! authenticates with the native EKS token ([`crate::eks_auth`]); a client
//! is rebuilt with a fresh token before the token's 15 minutes run out.
//!
//! Setting `MESHFORM_KUBE_SERVER=<url>` sends every in-cluster call to that
//! API server instead, without authentication; `MESHFORM_KUBE_SERVER=
//! <name>=<url>,<name>=<url>` does so per cluster, by EKS cluster name or
//! kubeconfig context (a stack with two clusters, two API servers). The
//! tests use it to point the in-cluster layer at their fake API servers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::sync::Mutex;

use crate::Value;
use crate::provider::ProviderError;

/// The environment variable that points every in-cluster call at one API
/// server URL (plain, unauthenticated): for tests and local experiments.
pub const SERVER_OVERRIDE_ENV: &str = "MESHFORM_KUBE_SERVER";

/// A client older than this is rebuilt with a fresh token (EKS tokens are
/// valid for 15 minutes).
const CLIENT_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// Where a cluster is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Connection {
    /// An EKS cluster: endpoint and CA from its resource, token from AWS credentials.
    Eks {
        /// The EKS cluster name (signed into the token).
        name: String,
        /// The API server URL.
        endpoint: String,
        /// The cluster CA: base64 of a PEM certificate, as EKS returns it.
        certificate_authority_data: String,
        /// The cluster's region (for the token's STS endpoint).
        region: String,
    },
    /// A context of a kubeconfig file.
    Context {
        /// The context name.
        context: String,
        /// The kubeconfig file; the usual lookup (`$KUBECONFIG`, `~/.kube/config`) when absent.
        kubeconfig: Option<PathBuf>,
    },
}

impl Connection {
    /// Reads the `cluster` attribute of an in-cluster resource.
    pub fn parse(value: &Value) -> Result<Connection, ProviderError> {
        let invalid = |m: &str| ProviderError::invalid("cluster", m.to_string());
        let map = value.as_object().ok_or_else(|| {
            invalid("must be a table: \"${cluster.connection}\" or { kubeconfig_context = \"name\" }")
        })?;
        let get = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_string);
        if let Some(context) = get("kubeconfig_context") {
            return Ok(Connection::Context {
                context,
                kubeconfig: get("kubeconfig").map(PathBuf::from),
            });
        }
        match (
            get("eks_cluster"),
            get("endpoint"),
            get("certificate_authority_data"),
            get("region"),
        ) {
            (Some(name), Some(endpoint), Some(ca), Some(region)) => Ok(Connection::Eks {
                name,
                endpoint,
                certificate_authority_data: ca,
                region,
            }),
            _ => Err(invalid(
                "needs `eks_cluster`, `endpoint`, `certificate_authority_data` and `region` (use \"${cluster.connection}\") or `kubeconfig_context`",
            )),
        }
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Connection::Eks { name, .. } => format!("EKS cluster {name}"),
            Connection::Context { context, .. } => format!("kubeconfig context {context}"),
        }
    }
}

/// The URL `MESHFORM_KUBE_SERVER` sends `conn`'s calls to, if it is set;
/// an error when it lists clusters by name and not this one (its calls
/// must not go to the real endpoint while the others go to a test server).
pub fn server_override(conn: &Connection) -> Result<Option<String>, ProviderError> {
    let Some(value) = std::env::var(SERVER_OVERRIDE_ENV).ok().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    override_for(&value, conn).map(Some)
}

/// The URL for `conn` in an override `value`: the value itself when it is
/// one URL, else the URL of `conn`'s name in `name=url,name=url`. Pure.
fn override_for(value: &str, conn: &Connection) -> Result<String, ProviderError> {
    if value.starts_with("http://") || value.starts_with("https://") {
        return Ok(value.to_string());
    }
    let name = match conn {
        Connection::Eks { name, .. } => name,
        Connection::Context { context, .. } => context,
    };
    let mut names = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((key, url)) = entry.split_once('=') else {
            return Err(ProviderError::Config(format!(
                "{SERVER_OVERRIDE_ENV}: `{entry}` is neither a URL nor name=URL"
            )));
        };
        if key.trim() == name {
            return Ok(url.trim().to_string());
        }
        names.push(key.trim());
    }
    Err(ProviderError::Config(format!(
        "{SERVER_OVERRIDE_ENV} names the clusters {} but not {name}",
        names.join(", ")
    )))
}

/// Kubernetes clients by connection, rebuilt before their token expires.
#[derive(Default)]
pub struct Clients {
    cache: Mutex<BTreeMap<Connection, (kube::Client, Instant)>>,
}

impl Clients {
    /// A client for `conn`.
    pub async fn client(&self, conn: &Connection) -> Result<kube::Client, ProviderError> {
        let mut cache = self.cache.lock().await;
        if let Some((client, made)) = cache.get(conn)
            && made.elapsed() < CLIENT_MAX_AGE
        {
            return Ok(client.clone());
        }
        let config = config_for(conn).await?;
        let client = kube::Client::try_from(config)
            .map_err(|e| unreachable(conn, format!("cannot build a Kubernetes client: {e}")))?;
        cache.insert(conn.clone(), (client.clone(), Instant::now()));
        Ok(client)
    }
}

/// The kube-rs configuration for `conn`.
pub async fn config_for(conn: &Connection) -> Result<kube::Config, ProviderError> {
    if let Some(url) = server_override(conn)? {
        let uri = url
            .parse()
            .map_err(|e| ProviderError::Config(format!("{SERVER_OVERRIDE_ENV}={url} is not a URL: {e}")))?;
        return Ok(kube::Config::new(uri));
    }
    match conn {
        Connection::Context { context, kubeconfig } => {
            let options = kube::config::KubeConfigOptions {
                context: Some(context.clone()),
                ..Default::default()
            };
            let result = match kubeconfig {
                Some(path) => match kube::config::Kubeconfig::read_from(path) {
                    Ok(kc) => kube::Config::from_custom_kubeconfig(kc, &options).await,
                    Err(e) => Err(e),
                },
                None => kube::Config::from_kubeconfig(&options).await,
            };
            result.map_err(|e| unreachable(conn, e.to_string()))
        }
        Connection::Eks {
            name,
            endpoint,
            certificate_authority_data,
            region,
        } => {
            let uri = endpoint
                .parse()
                .map_err(|e| unreachable(conn, format!("endpoint `{endpoint}` is not a URL: {e}")))?;
            let mut config = kube::Config::new(uri);
            config.root_cert = Some(
                ca_der(certificate_authority_data)
                    .map_err(|m| unreachable(conn, format!("certificate authority data: {m}")))?,
            );
            let token = crate::eks_auth::fresh_token(name, region)
                .await
                .map_err(|e| unreachable(conn, format!("cannot make an EKS token: {e}")))?;
            config.auth_info.token = Some(secrecy::SecretString::from(token.token));
            Ok(config)
        }
    }
}

/// The cluster of `conn` cannot be reached (no client can be built for it).
fn unreachable(conn: &Connection, message: String) -> ProviderError {
    ProviderError::Unreachable {
        target: conn.describe(),
        message,
    }
}

/// DER certificates from EKS's certificate authority data (base64 of PEM).
pub fn ca_der(data: &str) -> Result<Vec<Vec<u8>>, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let pem = b64.decode(data.trim()).map_err(|e| format!("not base64: {e}"))?;
    let pem = String::from_utf8(pem).map_err(|_| "not a PEM text".to_string())?;
    let mut certs = Vec::new();
    let mut body = None::<String>;
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN CERTIFICATE") {
            body = Some(String::new());
        } else if line.starts_with("-----END CERTIFICATE") {
            let text = body.take().ok_or("END without BEGIN")?;
            certs.push(
                b64.decode(text)
                    .map_err(|e| format!("bad certificate body: {e}"))?,
            );
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    if certs.is_empty() {
        return Err("no certificate in it".to_string());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_and_explains_the_rest() {
        let eks = serde_json::json!({"eks_cluster": "c", "endpoint": "https://x", "certificate_authority_data": "Zm9v", "region": "us-west-2"});
        assert!(matches!(Connection::parse(&eks), Ok(Connection::Eks { .. })));
        let ctx = serde_json::json!({"kubeconfig_context": "kind"});
        assert_eq!(
            Connection::parse(&ctx).unwrap(),
            Connection::Context {
                context: "kind".into(),
                kubeconfig: None
            }
        );
        let err = Connection::parse(&serde_json::json!({"endpoint": "x"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster.connection"), "{err}");
    }

    #[test]
    fn a_server_override_is_one_url_or_one_per_cluster_and_never_skips_a_cluster() {
        let eks = |name: &str| Connection::Eks {
            name: name.into(),
            endpoint: "https://real".into(),
            certificate_authority_data: String::new(),
            region: "us-west-2".into(),
        };
        let ctx = Connection::Context {
            context: "kind".into(),
            kubeconfig: None,
        };
        assert_eq!(
            override_for("http://127.0.0.1:1", &eks("a")).unwrap(),
            "http://127.0.0.1:1"
        );
        let two = "front=http://127.0.0.1:1, color=http://127.0.0.1:2,kind=http://127.0.0.1:3";
        assert_eq!(override_for(two, &eks("front")).unwrap(), "http://127.0.0.1:1");
        assert_eq!(override_for(two, &eks("color")).unwrap(), "http://127.0.0.1:2");
        assert_eq!(override_for(two, &ctx).unwrap(), "http://127.0.0.1:3");
        let err = override_for(two, &eks("other")).unwrap_err().to_string();
        assert!(
            err.contains("names the clusters front, color, kind but not other"),
            "{err}"
        );
        let err = override_for("front", &eks("front")).unwrap_err().to_string();
        assert!(err.contains("neither a URL nor name=URL"), "{err}");
    }

    #[test]
    fn decodes_pem_certificates() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            b64.encode(b"der!")
        );
        assert_eq!(ca_der(&b64.encode(pem)).unwrap(), vec![b"der!".to_vec()]);
        assert!(ca_der("%%%").is_err());
        assert!(ca_der(&b64.encode("no cert")).is_err());
    }
}
