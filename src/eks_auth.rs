//! Amazon EKS authentication tokens, generated natively.
//!
//! An EKS API server accepts a bearer token that is a presigned STS
//! `GetCallerIdentity` request: the server (aws-iam-authenticator inside
//! EKS) calls the URL and learns the caller's IAM identity from STS. The
//! token is what `aws eks get-token` prints:
//!
//! 1. a SigV4 **query-string** presigned `GET` of
//!    `https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15`
//!    for service `sts`, with the header `x-k8s-aws-id: <cluster name>`
//!    among the signed headers (`X-Amz-SignedHeaders=host;x-k8s-aws-id`, so a
//!    token for one cluster is refused by another), `X-Amz-Expires=60`, and
//!    `X-Amz-Security-Token` when the credentials carry a session token;
//! 2. the URL, base64url-encoded without padding, prefixed with
//!    [`TOKEN_PREFIX`] (`k8s-aws-v1.`).
//!
//! EKS accepts a token for 15 minutes after its `X-Amz-Date`; the
//! [`ExecCredential`] that kubectl caches says it expires after
//! [`TOKEN_LIFETIME`] (14 minutes), so kubectl asks for a new one in time.
//!
//! Signing goes through the AWS SDK's own signer (`aws-sigv4`) in one place,
//! [`presign`], which both the token and the published SigV4 test vectors
//! (see `tests/it/eks_auth.rs`) go through. Nothing here talks to the
//! network: credentials come from aws-config's default chain
//! ([`default_credentials`]), and the token is only a signature.
//!
//! The library API does not need the CLI: [`token`] makes a token from
//! credentials and a time, [`exec_credential`] does the whole
//! `meshform eks-token` command.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Prefix of every EKS token, before the base64url-encoded presigned URL.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";

/// The signed header naming the cluster the token is for.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";

/// `X-Amz-Expires` of the presigned URL, as aws-iam-authenticator sets it.
/// EKS itself judges a token by its `X-Amz-Date` (15 minutes).
pub const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);

/// How long after signing the [`ExecCredential`] says the token expires:
/// one minute inside the 15 minutes for which EKS accepts it.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);

/// The `apiVersion` of the [`ExecCredential`] printed for kubectl, and of
/// the `exec` entry written to kubeconfig.
pub const EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1beta1";

/// What can go wrong making a token.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AuthError {
    /// The cluster name is not an EKS cluster name.
    #[error(
        "`{name}` is not an EKS cluster name (1 to 100 letters, digits, `-` and `_`, starting with a letter or digit)"
    )]
    InvalidCluster {
        /// The name given.
        name: String,
    },
    /// The region is not an AWS region name.
    #[error("`{region}` is not an AWS region name (such as us-west-2)")]
    InvalidRegion {
        /// The region given.
        region: String,
    },
    /// The URL to presign is not an absolute http(s) URL.
    #[error("cannot presign `{url}`: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The AWS configuration has no credentials provider at all.
    #[error("no AWS credentials are configured")]
    #[diagnostic(help(
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance or container role is available"
    ))]
    NoCredentials,
    /// The default credentials chain found no credentials or failed.
    #[error("cannot load AWS credentials: {source}")]
    #[diagnostic(help(
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance or container role is available"
    ))]
    Credentials {
        /// The provider's error.
        #[source]
        source: CredentialsError,
    },
    /// The SigV4 signer refused the request.
    #[error("cannot sign the request: {message}")]
    Signing {
        /// The signer's message.
        message: String,
    },
}

/// One request to presign with SigV4 in the query string.
#[derive(Debug, Clone)]
pub struct Presign<'a> {
    /// HTTP method, for example `GET`.
    pub method: &'a str,
    /// Absolute `https://` (or `http://`) URL, already percent-encoded,
    /// possibly with a query string.
    pub url: &'a str,
    /// Headers to sign besides `host` (which is taken from the URL unless
    /// given here). Every header given is signed.
    pub headers: &'a [(&'a str, &'a str)],
    /// Signing region, for example `us-west-2`.
    pub region: &'a str,
    /// Signing service name, for example `sts`.
    pub service: &'a str,
    /// Signing time (`X-Amz-Date`, whole seconds).
    pub time: SystemTime,
    /// `X-Amz-Expires`.
    pub expires_in: Duration,
}

/// Presigns `request` with SigV4 (query-string signature, empty payload)
/// and returns its URL with the `X-Amz-*` parameters appended.
///
/// This is the single signing path of the module: [`presigned_url`] (the
/// EKS token) goes through it, and so do the AWS SigV4 test vectors in the
/// tests. The signature itself is computed by the AWS SDK's `aws-sigv4`; a
/// session token in `creds` is added as `X-Amz-Security-Token` and signed.
pub fn presign(creds: &Credentials, request: &Presign<'_>) -> Result<String, AuthError> {
    check_url(request.url)?;
    let identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(request.expires_in);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(request.region)
        .name(request.service)
        .time(request.time)
        .settings(settings)
        .build()
        .map_err(|e| AuthError::Signing {
            message: e.to_string(),
        })?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| AuthError::Signing {
        message: e.to_string(),
    })?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| AuthError::Signing {
            message: e.to_string(),
        })?
        .into_parts();
    let mut url = request.url.to_string();
    let mut separator = if url.contains('?') {
        if url.ends_with('?') || url.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    for (name, value) in instructions.params() {
        url.push_str(separator);
        url.push_str(&percent_encode(name));
        url.push('=');
        url.push_str(&percent_encode(value));
        separator = "&";
    }
    Ok(url)
}

/// The regional STS endpoint URL that a token presigns:
/// `https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15`
/// (`amazonaws.com.cn` for the China regions).
pub fn sts_url(region: &str) -> Result<String, AuthError> {
    check_region(region)?;
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Ok(format!(
        "https://sts.{region}.{domain}/?Action=GetCallerIdentity&Version=2011-06-15"
    ))
}

/// The presigned STS `GetCallerIdentity` URL for `cluster` in `region`,
/// signed with `creds` at `time` (see the module documentation).
pub fn presigned_url(
    creds: &Credentials,
    region: &str,
    cluster: &str,
    time: SystemTime,
) -> Result<String, AuthError> {
    check_cluster(cluster)?;
    let url = sts_url(region)?;
    presign(
        creds,
        &Presign {
            method: "GET",
            url: &url,
            headers: &[(CLUSTER_ID_HEADER, cluster)],
            region,
            service: "sts",
            time,
            expires_in: PRESIGN_EXPIRES,
        },
    )
}

/// The bearer token for a presigned URL: [`TOKEN_PREFIX`] followed by the
/// URL in base64url without padding.
pub fn token_from_url(url: &str) -> String {
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
    )
}

/// A bearer token for an EKS cluster's API server and when to stop using it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksToken {
    /// `k8s-aws-v1.…`: send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Signing time plus [`TOKEN_LIFETIME`].
    pub expires_at: SystemTime,
}

/// A token for `cluster` in `region`, signed with `creds` at `time`.
pub fn token(
    creds: &Credentials,
    region: &str,
    cluster: &str,
    time: SystemTime,
) -> Result<EksToken, AuthError> {
    let url = presigned_url(creds, region, cluster, time)?;
    Ok(EksToken {
        token: token_from_url(&url),
        expires_at: time + TOKEN_LIFETIME,
    })
}

/// Credentials from an already loaded AWS configuration.
pub async fn credentials_from(config: &aws_config::SdkConfig) -> Result<Credentials, AuthError> {
    let provider = config.credentials_provider().ok_or(AuthError::NoCredentials)?;
    provider
        .provide_credentials()
        .await
        .map_err(|source| AuthError::Credentials { source })
}

/// Credentials from aws-config's default chain (environment, profile, web
/// identity, container and instance roles) for `region`.
pub async fn default_credentials(region: &str) -> Result<Credentials, AuthError> {
    check_region(region)?;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .load()
        .await;
    credentials_from(&config).await
}

/// A fresh token for `cluster` in `region` with the default credentials,
/// signed now.
pub async fn fresh_token(cluster: &str, region: &str) -> Result<EksToken, AuthError> {
    check_cluster(cluster)?;
    let creds = default_credentials(region).await?;
    token(&creds, region, cluster, SystemTime::now())
}

/// What `meshform eks-token` prints: a fresh token for `cluster` in
/// `region` as a Kubernetes client-go exec credential.
pub async fn exec_credential(cluster: &str, region: &str) -> Result<ExecCredential, AuthError> {
    fresh_token(cluster, region).await.map(ExecCredential::new)
}

/// A Kubernetes `ExecCredential` (`client.authentication.k8s.io/v1beta1`),
/// what a kubeconfig `exec` plugin prints for kubectl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredential {
    /// Always `ExecCredential`.
    pub kind: String,
    /// [`EXEC_API_VERSION`].
    pub api_version: String,
    /// Empty: meshform does not read the request kubectl passes.
    pub spec: serde_json::Map<String, serde_json::Value>,
    /// The token and its expiry.
    pub status: ExecCredentialStatus,
}

/// The `status` of an [`ExecCredential`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredentialStatus {
    /// RFC 3339 UTC time after which kubectl asks for a new token.
    pub expiration_timestamp: String,
    /// The bearer token.
    pub token: String,
}

impl ExecCredential {
    /// The exec credential carrying `token`.
    pub fn new(token: EksToken) -> ExecCredential {
        ExecCredential {
            kind: "ExecCredential".to_string(),
            api_version: EXEC_API_VERSION.to_string(),
            spec: serde_json::Map::new(),
            status: ExecCredentialStatus {
                expiration_timestamp: crate::state::format_rfc3339(token.expires_at),
                token: token.token,
            },
        }
    }
}

/// EKS cluster names: 1 to 100 characters, letters, digits, `-` and `_`,
/// starting with a letter or digit.
fn check_cluster(name: &str) -> Result<(), AuthError> {
    let ok = (1..=100).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(AuthError::InvalidCluster {
            name: name.to_string(),
        })
    }
}

/// Region names are lowercase letters, digits and `-` (they become part of a
/// host name).
fn check_region(region: &str) -> Result<(), AuthError> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && !region.starts_with('-')
        && !region.ends_with('-')
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(AuthError::InvalidRegion {
            region: region.to_string(),
        })
    }
}

/// The signer needs an absolute URL with a host (it panics without one).
fn check_url(url: &str) -> Result<(), AuthError> {
    let invalid = |reason: &str| AuthError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("not an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(invalid("no host"));
    }
    if url.contains('#') {
        return Err(invalid("has a fragment"));
    }
    Ok(())
}

/// Percent-encodes everything but the RFC 3986 unreserved characters, as
/// SigV4's canonical query string does.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_string),
            None,
            "test",
        )
    }

    /// 2015-08-30T12:36:00Z, the SigV4 test suite's time.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn query(url: &str) -> Vec<(String, String)> {
        let (_, q) = url.split_once('?').expect("has a query");
        q.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
        q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn presigned_url_has_the_eks_shape() {
        let url = presigned_url(&creds(None), "us-west-2", "demo", suite_time()).expect("signs");
        assert!(
            url.starts_with(
                "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
            ),
            "{url}"
        );
        let q = query(&url);
        assert_eq!(param(&q, "X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
        assert_eq!(
            param(&q, "X-Amz-Credential"),
            Some("AKIDEXAMPLE%2F20150830%2Fus-west-2%2Fsts%2Faws4_request")
        );
        assert_eq!(param(&q, "X-Amz-Date"), Some("20150830T123600Z"));
        assert_eq!(param(&q, "X-Amz-Expires"), Some("60"));
        assert_eq!(param(&q, "X-Amz-SignedHeaders"), Some("host%3Bx-k8s-aws-id"));
        assert_eq!(param(&q, "X-Amz-Security-Token"), None);
        let sig = param(&q, "X-Amz-Signature").expect("signed");
        assert_eq!(sig.len(), 64);
        assert!(sig.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn session_token_is_in_the_url_encoded() {
        let url = presigned_url(&creds(Some("tok/en+=")), "eu-west-1", "a_b-1", suite_time()).expect("signs");
        assert_eq!(
            param(&query(&url), "X-Amz-Security-Token"),
            Some("tok%2Fen%2B%3D")
        );
    }

    #[test]
    fn signature_depends_on_the_cluster() {
        let t = suite_time();
        let a = presigned_url(&creds(None), "us-west-2", "one", t).expect("signs");
        let b = presigned_url(&creds(None), "us-west-2", "two", t).expect("signs");
        assert_ne!(
            param(&query(&a), "X-Amz-Signature"),
            param(&query(&b), "X-Amz-Signature")
        );
        // Same inputs, same URL: signing is deterministic.
        assert_eq!(
            a,
            presigned_url(&creds(None), "us-west-2", "one", t).expect("signs")
        );
    }

    #[test]
    fn token_is_prefixed_base64url_without_padding() {
        let url = "https://sts.us-west-2.amazonaws.com/?a=b~c";
        let token = token_from_url(url);
        let body = token.strip_prefix(TOKEN_PREFIX).expect("prefixed");
        assert!(!body.contains(['=', '+', '/']), "{body}");
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .expect("base64url");
        assert_eq!(decoded, url.as_bytes());
    }

    #[test]
    fn exec_credential_expires_fourteen_minutes_after_signing() {
        let t = token(&creds(None), "us-west-2", "demo", suite_time()).expect("token");
        let cred = ExecCredential::new(t.clone());
        assert_eq!(cred.status.expiration_timestamp, "2015-08-30T12:50:00Z");
        let json = serde_json::to_value(&cred).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "ExecCredential",
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "spec": {},
                "status": {"expirationTimestamp": "2015-08-30T12:50:00Z", "token": t.token},
            })
        );
    }

    #[test]
    fn china_regions_use_their_domain() {
        assert_eq!(
            sts_url("cn-north-1").expect("valid"),
            "https://sts.cn-north-1.amazonaws.com.cn/?Action=GetCallerIdentity&Version=2011-06-15"
        );
    }

    #[test]
    fn bad_names_are_refused_before_signing() {
        let t = suite_time();
        for cluster in ["", "-x", "a b", "a/b", "a\nb", &"x".repeat(101)] {
            assert!(
                matches!(
                    presigned_url(&creds(None), "us-west-2", cluster, t),
                    Err(AuthError::InvalidCluster { .. })
                ),
                "{cluster:?}"
            );
        }
        for region in ["", "US-WEST-2", "us-west-2.evil.com", "a/b", "-us"] {
            assert!(
                matches!(
                    presigned_url(&creds(None), region, "demo", t),
                    Err(AuthError::InvalidRegion { .. })
                ),
                "{region:?}"
            );
        }
    }

    #[test]
    fn urls_without_a_host_are_refused_not_panicked_on() {
        for url in [
            "/relative",
            "https://",
            "https:///path",
            "ftp://x/",
            "https://h/#f",
        ] {
            let r = presign(
                &creds(None),
                &Presign {
                    method: "GET",
                    url,
                    headers: &[],
                    region: "us-east-1",
                    service: "service",
                    time: suite_time(),
                    expires_in: Duration::from_secs(60),
                },
            );
            assert!(matches!(r, Err(AuthError::InvalidUrl { .. })), "{url}: {r:?}");
        }
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        assert_eq!(percent_encode("aZ09-_.~"), "aZ09-_.~");
        assert_eq!(percent_encode("a/b;c d+é"), "a%2Fb%3Bc%20d%2B%C3%A9");
    }
}
