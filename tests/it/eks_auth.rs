//! EKS tokens: the `eks-token` command's output, its signature against an
//! independent SigV4 computation written here step by step, and AWS's
//! published SigV4 test vectors (tests/data/sigv4) signed through the same
//! path the token uses. No AWS endpoint is involved: moto cannot judge a
//! presigned STS URL, so the vectors are the judge.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use base64::Engine;
use hmac::{Hmac, Mac};
use meshform::eks_auth::{self, ExecCredential, Presign};
use sha2::{Digest, Sha256};

use crate::support::cli::{Workdir, expect_code, meshform, stderr, stdout};
use crate::support::moto::project_root;

// ------------------------------------------------------------ independent SigV4

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// SigV4's URI encoding: everything but A-Z a-z 0-9 - _ . ~ as %XX.
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let h = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(h, 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8")
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// A URL split into host, path and its query pairs (still encoded).
struct Url {
    scheme: String,
    host: String,
    path: String,
    query: Vec<(String, String)>,
}

fn parse_url(url: &str) -> Url {
    let (scheme, rest) = url.split_once("://").expect("absolute URL");
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i..]),
        None => (before_query, "/"),
    };
    Url {
        scheme: scheme.to_string(),
        host: host.to_string(),
        path: path.to_string(),
        query: parse_query(query),
    }
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> &'a str {
    let mut found = q.iter().filter(|(k, _)| k == name);
    let (_, v) = found.next().unwrap_or_else(|| panic!("no {name} in {q:?}"));
    assert!(found.next().is_none(), "{name} twice in {q:?}");
    v
}

/// Recomputes, from scratch, the signature a presigned EKS-token URL must
/// carry: canonical request (canonical query of every parameter but the
/// signature, decoded and re-encoded, sorted; headers host and
/// x-k8s-aws-id), string to sign, signing key chain, HMAC.
fn independent_token_signature(url: &str, secret: &str, cluster: &str) -> String {
    let u = parse_url(url);
    let amz_date = percent_decode(param(&u.query, "X-Amz-Date"));
    let credential = percent_decode(param(&u.query, "X-Amz-Credential"));
    // access-key/date/region/service/aws4_request
    let parts: Vec<&str> = credential.split('/').collect();
    assert_eq!(parts.len(), 5, "{credential}");
    let (date, region, service) = (parts[1], parts[2], parts[3]);
    assert_eq!(&amz_date[..8], date);
    let mut canonical_query: Vec<(String, String)> = u
        .query
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (uri_encode(&percent_decode(k)), uri_encode(&percent_decode(v))))
        .collect();
    canonical_query.sort();
    let canonical_query = canonical_query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_request = format!(
        "GET\n{}\n{canonical_query}\nhost:{}\nx-k8s-aws-id:{cluster}\n\nhost;x-k8s-aws-id\n{}",
        u.path,
        u.host,
        sha256_hex(b"")
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let sts = string_to_sign(&amz_date, &scope, &canonical_request);
    hex(&hmac_sha256(
        &signing_key(secret, date, region, service),
        sts.as_bytes(),
    ))
}

// ------------------------------------------------------------------ helpers

/// Seconds since the epoch of a UTC civil time (Howard Hinnant's
/// days_from_civil).
fn epoch(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

fn num(s: &str) -> i64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s}"))
}

/// `20150830T123600Z` → seconds since the epoch.
fn amz_date_secs(s: &str) -> i64 {
    assert_eq!(s.len(), 16, "{s}");
    assert_eq!((&s[8..9], &s[15..]), ("T", "Z"), "{s}");
    epoch(
        num(&s[0..4]),
        num(&s[4..6]),
        num(&s[6..8]),
        num(&s[9..11]),
        num(&s[11..13]),
        num(&s[13..15]),
    )
}

/// `2015-08-30T12:36:00Z` → seconds since the epoch.
fn rfc3339_secs(s: &str) -> i64 {
    assert_eq!(s.len(), 20, "{s}");
    let compact: String = s.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    amz_date_secs(&compact)
}

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs(),
    )
    .expect("fits")
}

fn at(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).expect("after 1970"))
}

/// The URL inside a token.
fn token_url(token: &str) -> String {
    let body = token
        .strip_prefix("k8s-aws-v1.")
        .unwrap_or_else(|| panic!("no k8s-aws-v1. prefix: {token}"));
    assert!(!body.contains('='), "padded: {body}");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .expect("base64url without padding");
    String::from_utf8(bytes).expect("utf-8 URL")
}

/// Runs `meshform eks-token` with the given secret and session token and
/// returns the parsed exec credential.
fn eks_token(cluster: &str, region: &str, session_token: &str) -> ExecCredential {
    let dir = Workdir::new("eks-token");
    let mut cmd = meshform(
        &dir.path,
        None,
        &["eks-token", "--cluster", cluster, "--region", region],
    );
    cmd.env("AWS_ACCESS_KEY_ID", "AKIDCLITEST")
        .env("AWS_SECRET_ACCESS_KEY", "cli/secret+key")
        .env("AWS_SESSION_TOKEN", session_token);
    let out = expect_code(cmd, 0);
    let text = stdout(&out);
    let raw: serde_json::Value = serde_json::from_str(&text).expect("stdout is JSON");
    assert_eq!(raw["kind"], "ExecCredential");
    assert_eq!(raw["apiVersion"], "client.authentication.k8s.io/v1beta1");
    assert_eq!(raw["spec"], serde_json::json!({}));
    serde_json::from_str(&text).expect("stdout is an ExecCredential")
}

// -------------------------------------------------------------------- tests

#[test]
fn eks_token_prints_an_exec_credential_with_a_valid_presigned_sts_url() {
    let before = now_secs();
    let cred = eks_token("demo-cluster", "eu-central-1", "FwoGZXIvY/+XdGVzdA==");
    let after = now_secs();

    let url = token_url(&cred.status.token);
    let u = parse_url(&url);
    assert_eq!(u.scheme, "https");
    assert_eq!(u.host, "sts.eu-central-1.amazonaws.com");
    assert_eq!(u.path, "/");
    assert_eq!(param(&u.query, "Action"), "GetCallerIdentity");
    assert_eq!(param(&u.query, "Version"), "2011-06-15");
    assert_eq!(param(&u.query, "X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
    let signed: Vec<String> = percent_decode(param(&u.query, "X-Amz-SignedHeaders"))
        .split(';')
        .map(str::to_string)
        .collect();
    assert!(signed.iter().any(|h| h == "x-k8s-aws-id"), "{signed:?}");
    assert!(signed.iter().any(|h| h == "host"), "{signed:?}");
    let expires = num(param(&u.query, "X-Amz-Expires"));
    assert!((1..=900).contains(&expires), "X-Amz-Expires={expires}");
    assert_eq!(
        percent_decode(param(&u.query, "X-Amz-Credential")),
        format!(
            "AKIDCLITEST/{}/eu-central-1/sts/aws4_request",
            &param(&u.query, "X-Amz-Date")[..8]
        )
    );
    assert_eq!(
        percent_decode(param(&u.query, "X-Amz-Security-Token")),
        "FwoGZXIvY/+XdGVzdA=="
    );

    let signed_at = amz_date_secs(param(&u.query, "X-Amz-Date"));
    assert!(
        signed_at >= before - 60 && signed_at <= after + 60,
        "X-Amz-Date {signed_at} not within a minute of now ({before}..{after})"
    );
    let expiry = rfc3339_secs(&cred.status.expiration_timestamp);
    assert!(
        expiry > signed_at && expiry - signed_at <= 15 * 60,
        "expirationTimestamp {} is not within EKS's 15 minutes after X-Amz-Date",
        cred.status.expiration_timestamp
    );

    // And the signature is right, recomputed independently.
    assert_eq!(
        param(&u.query, "X-Amz-Signature"),
        independent_token_signature(&url, "cli/secret+key", "demo-cluster")
    );
}

#[test]
fn eks_token_refuses_a_bad_cluster_name() {
    let dir = Workdir::new("eks-token-bad");
    let out = expect_code(
        meshform(
            &dir.path,
            None,
            &["eks-token", "--cluster", "no spaces", "--region", "us-west-2"],
        ),
        1,
    );
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("not an EKS cluster name"),
        "{}",
        stderr(&out)
    );
}

/// (b) A URL presigned by the library with fixed credentials and time,
/// checked against the signature computed here from scratch, and against
/// the signature botocore 1.44.5 (the signer behind `aws eks get-token`)
/// gave for the same inputs: an STS client presigning GetCallerIdentity
/// with `x-k8s-aws-id` injected before signing, ExpiresIn=60, its clock
/// pinned to 2026-11-22T10:00:00Z.
#[test]
fn presigned_url_matches_an_independent_sigv4_computation() {
    let time = at(epoch(2026, 11, 22, 10, 0, 0));
    for (secret, session_token, botocore_signature) in [
        (
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            "36efa203c81562d384364b7eacbe87c525d5f820cfa5eab285f9369e92bc715e",
        ),
        (
            "s3cr3t+/=",
            Some("IQoJb3JpZ2luX2VjEHcaCXVzLXdlc3QtMiJH/+token=="),
            "f05439f365d94eefc9159df56e0ac0debc858c14d034bed1a3be94f8e4f21635",
        ),
    ] {
        let creds = Credentials::new(
            "AKIAFIXEDEXAMPLE",
            secret,
            session_token.map(str::to_string),
            None,
            "fixed",
        );
        let url = eks_auth::presigned_url(&creds, "us-west-2", "mesh_demo-1", time).expect("presigns");
        let u = parse_url(&url);
        assert_eq!(param(&u.query, "X-Amz-Date"), "20261122T100000Z");
        assert_eq!(param(&u.query, "X-Amz-Expires"), "60");
        assert_eq!(param(&u.query, "X-Amz-SignedHeaders"), "host%3Bx-k8s-aws-id");
        assert_eq!(
            param(&u.query, "X-Amz-Credential"),
            "AKIAFIXEDEXAMPLE%2F20261122%2Fus-west-2%2Fsts%2Faws4_request"
        );
        assert_eq!(
            param(&u.query, "X-Amz-Signature"),
            independent_token_signature(&url, secret, "mesh_demo-1"),
            "{url}"
        );
        assert_eq!(param(&u.query, "X-Amz-Signature"), botocore_signature);
        // The token is exactly this URL.
        let token = eks_auth::token(&creds, "us-west-2", "mesh_demo-1", time).expect("token");
        assert_eq!(token_url(&token.token), url);
        assert_eq!(
            token.expires_at.duration_since(time).expect("later"),
            Duration::from_secs(14 * 60)
        );
    }
}

// ------------------------------------------------------------- test vectors

const VECTORS: &[&str] = &[
    "get-vanilla",
    "get-vanilla-query-order-key-case",
    "get-header-value-trim",
    "get-vanilla-with-session-token",
];

fn vector_dir(case: &str) -> PathBuf {
    project_root().join("tests/data/sigv4").join(case)
}

fn vector_file(case: &str, name: &str) -> String {
    let path = vector_dir(case).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `request.txt`: request line `METHOD TARGET HTTP/1.1`, then `Name:value`
/// header lines. Returns method, target and headers (value after the colon;
/// leading whitespace is not part of an HTTP field value).
fn parse_request(text: &str) -> (String, String, Vec<(String, String)>) {
    let mut lines = text.lines();
    let request_line = lines.next().expect("request line");
    let mut words = request_line.split(' ');
    let method = words.next().expect("method").to_string();
    let target = words.next().expect("target").to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let (name, value) = l.split_once(':').expect("Name:value");
            (name.to_string(), value.trim_start().to_string())
        })
        .collect();
    (method, target, headers)
}

fn sorted(mut q: Vec<(String, String)>) -> Vec<(String, String)> {
    q.sort();
    q
}

/// (c) AWS's published SigV4 vectors, signed through
/// `eks_auth::presign` (the token's signing path): exactly the expected
/// signature and signed-request parameters.
#[test]
fn sigv4_test_vectors_sign_through_the_token_path() {
    for case in VECTORS {
        let context: serde_json::Value =
            serde_json::from_str(&vector_file(case, "context.json")).expect("context.json");
        let c = &context["credentials"];
        let creds = Credentials::new(
            c["access_key_id"].as_str().expect("key id"),
            c["secret_access_key"].as_str().expect("secret"),
            c["token"].as_str().map(str::to_string),
            None,
            "vectors",
        );
        let time = at(rfc3339_secs(context["timestamp"].as_str().expect("timestamp")));
        let expires = context["expiration_in_seconds"].as_u64().expect("expiry");
        let (method, target, headers) = parse_request(&vector_file(case, "request.txt"));
        let host = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.clone())
            .expect("Host header");
        let url = format!("https://{host}{target}");
        let header_refs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let signed = eks_auth::presign(
            &creds,
            &Presign {
                method: &method,
                url: &url,
                headers: &header_refs,
                region: context["region"].as_str().expect("region"),
                service: context["service"].as_str().expect("service"),
                time,
                expires_in: Duration::from_secs(expires),
            },
        )
        .unwrap_or_else(|e| panic!("{case}: {e}"));

        let ours = parse_url(&signed);
        let expected_signature = vector_file(case, "query-signature.txt");
        assert_eq!(
            param(&ours.query, "X-Amz-Signature"),
            expected_signature.trim(),
            "{case}: signature"
        );
        let (_, expected_target, _) = parse_request(&vector_file(case, "query-signed-request.txt"));
        let (expected_path, expected_query) = expected_target
            .split_once('?')
            .expect("signed request has a query");
        assert_eq!(ours.path, expected_path, "{case}: path");
        assert_eq!(
            sorted(ours.query),
            sorted(parse_query(expected_query)),
            "{case}: signed URL parameters"
        );
    }
}

/// The vectors also anchor this file's independent SigV4: the hash of each
/// expected canonical request is in the expected string to sign, and the
/// key chain and HMAC written here turn that into the expected signature.
#[test]
fn independent_sigv4_reproduces_the_vectors() {
    for case in VECTORS {
        let context: serde_json::Value =
            serde_json::from_str(&vector_file(case, "context.json")).expect("context.json");
        let creq = vector_file(case, "query-canonical-request.txt");
        let sts = vector_file(case, "query-string-to-sign.txt");
        let lines: Vec<&str> = sts.lines().collect();
        assert_eq!(lines.len(), 4, "{case}: {sts}");
        assert_eq!(
            string_to_sign(lines[1], lines[2], &creq),
            sts,
            "{case}: string to sign"
        );
        let scope: Vec<&str> = lines[2].split('/').collect();
        let key = signing_key(
            context["credentials"]["secret_access_key"]
                .as_str()
                .expect("secret"),
            scope[0],
            scope[1],
            scope[2],
        );
        assert_eq!(
            hex(&hmac_sha256(&key, sts.as_bytes())),
            vector_file(case, "query-signature.txt").trim(),
            "{case}: signature"
        );
    }
}
