//! `aws.iam.policy` and `aws.ecr.repository` against moto: each test starts
//! its own server, drives the kind, and reads the effects back with
//! independent SDK clients.

use meshform::Attrs;
use meshform::provider::aws::ecr_repository::EcrRepository;
use meshform::provider::aws::iam_policy::IamPolicy;
use meshform::provider::{InPlace, Live, OpContext, ReadRequest, ResourceKind, ownership_tags};
use serde_json::{Value, json};

use crate::support::moto::{Moto, REGION};

fn cx(address: &str) -> OpContext {
    OpContext {
        stack: "teststack".into(),
        address: address.into(),
        token: "tok".into(),
        ..Default::default()
    }
}

/// Desired attributes as the planner hands them over: defaults filled in,
/// `tags` holding the user's tags plus the ownership tags.
fn desired(attrs: Value, cx: &OpContext) -> Attrs {
    let mut attrs = match attrs {
        Value::Object(m) => m,
        _ => panic!("attrs must be an object"),
    };
    let mut tags: serde_json::Map<String, Value> = attrs
        .remove("tags")
        .and_then(|t| t.as_object().cloned())
        .unwrap_or_default();
    for (k, v) in ownership_tags(&cx.stack, &cx.address) {
        tags.insert(k, Value::String(v));
    }
    attrs.insert("tags".into(), Value::Object(tags));
    attrs
}

fn request(address: &str, live: &Live) -> ReadRequest {
    ReadRequest {
        address: address.into(),
        id: live.id.clone(),
        attrs: live.attrs.clone(),
    }
}

fn doc(action: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "Allow",
            "Effect": "Allow",
            "Action": [action],
            "Resource": "*",
        }],
    })
}

fn policy_desired(name: &str, document: Value, cx: &OpContext) -> Attrs {
    desired(
        json!({
            "name": name,
            "path": "/meshform/",
            "description": "test policy",
            "policy": document,
            "tags": {"team": "infra"},
        }),
        cx,
    )
}

/// The default version's document of a policy, read with a separate client.
async fn policy_document(iam: &aws_sdk_iam::Client, arn: &str) -> (String, Value) {
    let policy = iam.get_policy().policy_arn(arn).send().await.unwrap();
    let version = policy.policy().unwrap().default_version_id().unwrap().to_string();
    let out = iam
        .get_policy_version()
        .policy_arn(arn)
        .version_id(&version)
        .send()
        .await
        .unwrap();
    let text = out.policy_version().unwrap().document().unwrap().to_string();
    let value = serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(&decode(&text)))
        .unwrap_or_else(|e| panic!("document {text:?} is not JSON: {e}"));
    (version, value)
}

/// Minimal percent-decoding for documents real IAM returns URL-encoded.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        if b[i] == b'%'
            && let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

async fn policy_tags(iam: &aws_sdk_iam::Client, arn: &str) -> Vec<(String, String)> {
    let out = iam.list_policy_tags().policy_arn(arn).send().await.unwrap();
    let mut tags: Vec<_> = out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    tags.sort();
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_policy_create_read_update_delete() {
    let moto = Moto::start();
    let kind = IamPolicy(moto.clients().await);
    let iam = moto.iam().await;
    let cx = cx("iam.policy.app");

    let want = policy_desired("app-policy", doc("s3:GetObject"), &cx);
    let live = kind.create(&cx, &want).await.unwrap();
    assert!(live.id.starts_with("arn:aws:iam::"), "{}", live.id);
    assert!(live.id.ends_with(":policy/meshform/app-policy"), "{}", live.id);
    assert_eq!(live.attrs["arn"], json!(live.id));
    assert_eq!(live.attrs["default_version_id"], json!("v1"));
    assert!(live.attrs["policy_id"].as_str().is_some_and(|s| !s.is_empty()));

    // The document IAM holds is exactly the one asked for.
    let (version, document) = policy_document(&iam, &live.id).await;
    assert_eq!(version, "v1");
    assert_eq!(document, doc("s3:GetObject"));
    let got = iam.get_policy().policy_arn(&live.id).send().await.unwrap();
    assert_eq!(got.policy().unwrap().path(), Some("/meshform/"));
    assert_eq!(got.policy().unwrap().description(), Some("test policy"));
    assert_eq!(
        policy_tags(&iam, &live.id).await,
        vec![
            ("meshform:address".to_string(), "iam.policy.app".to_string()),
            ("meshform:stack".to_string(), "teststack".to_string()),
            ("team".to_string(), "infra".to_string()),
        ]
    );

    // Reading it back gives what create returned.
    let read = kind.read(&[request("iam.policy.app", &live)]).await.unwrap();
    assert_eq!(read, vec![Some(live.clone())]);

    // A new document becomes a new default version; tags sync.
    let mut want2 = policy_desired("app-policy", doc("s3:PutObject"), &cx);
    let tags = want2.get_mut("tags").unwrap().as_object_mut().unwrap();
    tags.remove("team");
    tags.insert("owner".into(), json!("me"));
    let updated = kind
        .update(
            &cx,
            InPlace {
                prior: &live,
                desired: &want2,
                changed: &["policy".to_string(), "tags".to_string()],
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.attrs["default_version_id"], json!("v2"));
    assert_eq!(updated.attrs["policy"], doc("s3:PutObject"));
    let (version, document) = policy_document(&iam, &live.id).await;
    assert_eq!(version, "v2");
    assert_eq!(document, doc("s3:PutObject"));
    assert_eq!(
        policy_tags(&iam, &live.id).await,
        vec![
            ("meshform:address".to_string(), "iam.policy.app".to_string()),
            ("meshform:stack".to_string(), "teststack".to_string()),
            ("owner".to_string(), "me".to_string()),
        ]
    );
    let read = kind.read(&[request("iam.policy.app", &updated)]).await.unwrap();
    assert_eq!(read, vec![Some(updated.clone())]);

    // Delete removes the policy and its old versions; deleting again is fine.
    kind.delete(&cx, &updated).await.unwrap();
    let err = iam.get_policy().policy_arn(&live.id).send().await.unwrap_err();
    assert_eq!(
        aws_sdk_iam::error::ProvideErrorMetadata::code(&err),
        Some("NoSuchEntity")
    );
    kind.delete(&cx, &updated).await.unwrap();
    assert_eq!(
        kind.read(&[request("iam.policy.app", &updated)]).await.unwrap(),
        vec![None]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_policy_update_keeps_at_most_five_versions() {
    let moto = Moto::start();
    let kind = IamPolicy(moto.clients().await);
    let iam = moto.iam().await;
    let cx = cx("iam.policy.busy");

    let mut live = kind
        .create(&cx, &policy_desired("busy", doc("s3:Action0"), &cx))
        .await
        .unwrap();
    for i in 1..=7 {
        let want = policy_desired("busy", doc(&format!("s3:Action{i}")), &cx);
        live = kind
            .update(
                &cx,
                InPlace {
                    prior: &live,
                    desired: &want,
                    changed: &["policy".to_string()],
                },
            )
            .await
            .unwrap();
    }
    assert_eq!(live.attrs["default_version_id"], json!("v8"));
    let versions = iam
        .list_policy_versions()
        .policy_arn(&live.id)
        .send()
        .await
        .unwrap();
    let mut ids: Vec<_> = versions
        .versions()
        .iter()
        .map(|v| v.version_id().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["v4", "v5", "v6", "v7", "v8"]);
    let (version, document) = policy_document(&iam, &live.id).await;
    assert_eq!((version.as_str(), document), ("v8", doc("s3:Action7")));

    // Delete has to remove the four non-default versions first.
    kind.delete(&cx, &live).await.unwrap();
    assert!(iam.get_policy().policy_arn(&live.id).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_policy_read_batch_reports_missing_ones() {
    let moto = Moto::start();
    let kind = IamPolicy(moto.clients().await);
    let iam = moto.iam().await;
    let (cx_a, cx_b) = (cx("iam.policy.a"), cx("iam.policy.b"));

    let a = kind
        .create(&cx_a, &policy_desired("pol-a", doc("s3:GetObject"), &cx_a))
        .await
        .unwrap();
    let b_desired = desired(json!({"name": "pol-b", "policy": doc("ec2:Describe*")}), &cx_b);
    let b = kind.create(&cx_b, &b_desired).await.unwrap();
    assert_eq!(b.attrs["path"], json!("/"));
    assert!(!b.attrs.contains_key("description"));

    iam.delete_policy().policy_arn(&a.id).send().await.unwrap();
    let ghost = ReadRequest {
        address: "iam.policy.ghost".into(),
        id: "arn:aws:iam::123456789012:policy/never-was".into(),
        attrs: Attrs::new(),
    };
    let read = kind
        .read(&[request("iam.policy.a", &a), request("iam.policy.b", &b), ghost])
        .await
        .unwrap();
    assert_eq!(read, vec![None, Some(b.clone()), None]);
    // Out-of-band document changes show up as a parsed JSON value.
    iam.create_policy_version()
        .policy_arn(&b.id)
        .policy_document(doc("ec2:RunInstances").to_string())
        .set_as_default(true)
        .send()
        .await
        .unwrap();
    let read = kind.read(&[request("iam.policy.b", &b)]).await.unwrap();
    let live = read[0].as_ref().unwrap();
    assert_eq!(live.attrs["policy"], doc("ec2:RunInstances"));
    assert_eq!(live.attrs["default_version_id"], json!("v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_policy_find_existing_matches_only_its_own_tags() {
    let moto = Moto::start();
    let kind = IamPolicy(moto.clients().await);
    let iam = moto.iam().await;
    let cx_own = cx("iam.policy.own");

    let want = policy_desired("found", doc("s3:GetObject"), &cx_own);
    assert_eq!(kind.find_existing(&cx_own, &want).await.unwrap(), None);
    let live = kind.create(&cx_own, &want).await.unwrap();

    let found = kind
        .find_existing(&cx_own, &want)
        .await
        .unwrap()
        .expect("found by its tags");
    assert_eq!(found, live);

    // Same name, other address or other stack: not ours.
    let other = cx("iam.policy.other");
    assert_eq!(kind.find_existing(&other, &want).await.unwrap(), None);
    let other_stack = OpContext {
        stack: "elsewhere".into(),
        ..cx_own.clone()
    };
    assert_eq!(kind.find_existing(&other_stack, &want).await.unwrap(), None);

    // Same name in another path is another policy.
    let mut elsewhere = want.clone();
    elsewhere.insert("path".into(), json!("/other/"));
    assert_eq!(kind.find_existing(&cx_own, &elsewhere).await.unwrap(), None);

    // A policy of that name created without meshform's tags is not claimed.
    iam.create_policy()
        .policy_name("untagged")
        .path("/meshform/")
        .policy_document(doc("s3:GetObject").to_string())
        .send()
        .await
        .unwrap();
    let untagged = policy_desired("untagged", doc("s3:GetObject"), &cx_own);
    assert_eq!(kind.find_existing(&cx_own, &untagged).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_policy_delete_refuses_while_attached() {
    let moto = Moto::start();
    let kind = IamPolicy(moto.clients().await);
    let iam = moto.iam().await;
    let cx = cx("iam.policy.attached");

    let live = kind
        .create(&cx, &policy_desired("attached", doc("s3:GetObject"), &cx))
        .await
        .unwrap();
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    });
    iam.create_role()
        .role_name("app-role")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap();
    iam.attach_role_policy()
        .role_name("app-role")
        .policy_arn(&live.id)
        .send()
        .await
        .unwrap();

    let err = kind.delete(&cx, &live).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("role app-role"), "{msg}");
    assert!(
        iam.get_policy().policy_arn(&live.id).send().await.is_ok(),
        "must not be deleted"
    );

    iam.detach_role_policy()
        .role_name("app-role")
        .policy_arn(&live.id)
        .send()
        .await
        .unwrap();
    kind.delete(&cx, &live).await.unwrap();
    assert!(iam.get_policy().policy_arn(&live.id).send().await.is_err());
}

fn repo_desired(name: &str, cx: &OpContext) -> Attrs {
    desired(
        json!({
            "name": name,
            "image_tag_mutability": "MUTABLE",
            "scan_on_push": false,
            "tags": {"team": "infra"},
        }),
        cx,
    )
}

async fn repo_tags(ecr: &aws_sdk_ecr::Client, arn: &str) -> Vec<(String, String)> {
    let out = ecr
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    let mut tags: Vec<_> = out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    tags.sort();
    tags
}

/// A docker v2 schema 2 manifest; `n` makes distinct images.
fn manifest(n: u32) -> String {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1000 + n,
            "digest": format!("sha256:{:064x}", n),
        },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 2000 + n,
            "digest": format!("sha256:{:064x}", 100 + n),
        }],
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_repository_create_read_update() {
    let moto = Moto::start();
    let kind = EcrRepository(moto.clients().await);
    let ecr = moto.ecr().await;
    let cx = cx("ecr.repository.app");

    let live = kind.create(&cx, &repo_desired("team/app", &cx)).await.unwrap();
    assert_eq!(live.id, "team/app");
    let registry = live.attrs["registry_id"].as_str().unwrap().to_string();
    assert!(
        registry.len() == 12 && registry.chars().all(|c| c.is_ascii_digit()),
        "{registry}"
    );
    assert_eq!(
        live.attrs["repository_uri"],
        json!(format!("{registry}.dkr.ecr.{REGION}.amazonaws.com/team/app"))
    );
    let arn = live.attrs["arn"].as_str().unwrap().to_string();
    assert!(arn.ends_with(":repository/team/app"), "{arn}");
    assert_eq!(
        repo_tags(&ecr, &arn).await,
        vec![
            ("meshform:address".to_string(), "ecr.repository.app".to_string()),
            ("meshform:stack".to_string(), "teststack".to_string()),
            ("team".to_string(), "infra".to_string()),
        ]
    );
    assert_eq!(
        kind.read(&[request("ecr.repository.app", &live)]).await.unwrap(),
        vec![Some(live.clone())]
    );

    // Mutability, scanning and tags change in place.
    let mut want = repo_desired("team/app", &cx);
    want.insert("image_tag_mutability".into(), json!("IMMUTABLE"));
    want.insert("scan_on_push".into(), json!(true));
    want.get_mut("tags")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert("team".into(), json!("platform"));
    let changed = ["image_tag_mutability", "scan_on_push", "tags"].map(String::from);
    let updated = kind
        .update(
            &cx,
            InPlace {
                prior: &live,
                desired: &want,
                changed: &changed,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.attrs["image_tag_mutability"], json!("IMMUTABLE"));
    assert_eq!(updated.attrs["scan_on_push"], json!(true));
    let described = ecr
        .describe_repositories()
        .repository_names("team/app")
        .send()
        .await
        .unwrap();
    let repo = &described.repositories()[0];
    assert_eq!(repo.image_tag_mutability().map(|m| m.as_str()), Some("IMMUTABLE"));
    assert!(repo.image_scanning_configuration().unwrap().scan_on_push());
    assert!(
        repo_tags(&ecr, &arn)
            .await
            .contains(&("team".to_string(), "platform".to_string()))
    );
    assert_eq!(
        kind.read(&[request("ecr.repository.app", &updated)])
            .await
            .unwrap(),
        vec![Some(updated)]
    );

    // An unsupported mutability is refused before any call.
    let mut bad = repo_desired("other", &cx);
    bad.insert("image_tag_mutability".into(), json!("SOMETIMES"));
    assert!(kind.create(&cx, &bad).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_repository_delete_removes_images_first() {
    let moto = Moto::start();
    let kind = EcrRepository(moto.clients().await);
    let ecr = moto.ecr().await;
    let cx = cx("ecr.repository.images");

    let live = kind.create(&cx, &repo_desired("images", &cx)).await.unwrap();
    // Out of band: one image with two tags, one untagged-by-second-push image.
    for (n, tag) in [(1, "v1"), (1, "latest"), (2, "v2")] {
        ecr.put_image()
            .repository_name("images")
            .image_manifest(manifest(n))
            .image_tag(tag)
            .send()
            .await
            .unwrap();
    }
    let listed = ecr.list_images().repository_name("images").send().await.unwrap();
    assert_eq!(listed.image_ids().len(), 3);

    kind.delete(&cx, &live).await.unwrap();
    let err = ecr
        .describe_repositories()
        .repository_names("images")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_ecr::error::ProvideErrorMetadata::code(&err),
        Some("RepositoryNotFoundException")
    );
    assert_eq!(
        kind.read(&[request("ecr.repository.images", &live)])
            .await
            .unwrap(),
        vec![None]
    );
    // Already gone: still fine.
    kind.delete(&cx, &live).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_repository_read_batch_with_a_missing_one() {
    let moto = Moto::start();
    let kind = EcrRepository(moto.clients().await);
    let ecr = moto.ecr().await;
    let (cx_a, cx_b) = (cx("ecr.repository.a"), cx("ecr.repository.b"));

    let a = kind.create(&cx_a, &repo_desired("repo-a", &cx_a)).await.unwrap();
    let b = kind.create(&cx_b, &repo_desired("repo-b", &cx_b)).await.unwrap();
    // Not managed by meshform: must not show up.
    ecr.create_repository()
        .repository_name("bystander")
        .send()
        .await
        .unwrap();

    let both = kind
        .read(&[request("ecr.repository.a", &a), request("ecr.repository.b", &b)])
        .await
        .unwrap();
    assert_eq!(both, vec![Some(a.clone()), Some(b.clone())]);

    // One deleted out of band: DescribeRepositories by names fails as a
    // whole, the fallback listing still answers for the other.
    ecr.delete_repository()
        .repository_name("repo-a")
        .send()
        .await
        .unwrap();
    let read = kind
        .read(&[request("ecr.repository.a", &a), request("ecr.repository.b", &b)])
        .await
        .unwrap();
    assert_eq!(read, vec![None, Some(b)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_repository_find_existing_checks_ownership() {
    let moto = Moto::start();
    let kind = EcrRepository(moto.clients().await);
    let ecr = moto.ecr().await;
    let cx_own = cx("ecr.repository.own");

    let want = repo_desired("owned", &cx_own);
    assert_eq!(kind.find_existing(&cx_own, &want).await.unwrap(), None);
    let live = kind.create(&cx_own, &want).await.unwrap();
    assert_eq!(kind.find_existing(&cx_own, &want).await.unwrap(), Some(live));

    // Someone else's repository of that name: a clear error, not a claim.
    let err = kind
        .find_existing(&cx("ecr.repository.other"), &want)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("owned") && msg.contains("not owned by stack teststack"),
        "{msg}"
    );

    ecr.create_repository()
        .repository_name("untagged")
        .send()
        .await
        .unwrap();
    let err = kind
        .find_existing(&cx_own, &repo_desired("untagged", &cx_own))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no meshform ownership tags"), "{err}");
}
