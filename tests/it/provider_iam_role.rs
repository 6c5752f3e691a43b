//! `aws.iam.role` against moto: each test starts its own server, drives the
//! kind, and reads the effects back with an independent SDK client.

use std::collections::BTreeSet;

use meshform::Attrs;
use meshform::plan::eval::normalize_attr;
use meshform::provider::aws::iam_role::{DEF, IamRole};
use meshform::provider::{InPlace, Live, OpContext, ReadRequest, ResourceKind, Schema, ownership_tags};
use serde_json::{Value, json};

use crate::support::moto::Moto;

const AWS_POLICY: &str = "arn:aws:iam::aws:policy/";

fn cx(address: &str) -> OpContext {
    OpContext {
        stack: "teststack".into(),
        address: address.into(),
        token: "tok".into(),
        ..Default::default()
    }
}

/// Desired attributes as the planner hands them over: defaults filled in,
/// `tags` holding the user's tags plus the ownership tags. Managed policies
/// are left as written (the kind must expand names itself).
fn desired(attrs: Value, cx: &OpContext) -> Attrs {
    let mut attrs = match attrs {
        Value::Object(m) => m,
        _ => panic!("attrs must be an object"),
    };
    attrs.entry("path").or_insert(json!("/"));
    attrs.entry("max_session_duration").or_insert(json!(3600));
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

fn trust(service: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
        }],
    })
}

fn policy_doc(action: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": [action], "Resource": "*"}],
    })
}

fn aws(name: &str) -> String {
    format!("{AWS_POLICY}{name}")
}

/// Creates a customer managed policy with the SDK; returns its ARN.
async fn customer_policy(iam: &aws_sdk_iam::Client, name: &str) -> String {
    let out = iam
        .create_policy()
        .policy_name(name)
        .policy_document(policy_doc("s3:GetObject").to_string())
        .send()
        .await
        .unwrap();
    out.policy().unwrap().arn().unwrap().to_string()
}

/// The ARNs attached to a role, read with the independent client.
async fn attached(iam: &aws_sdk_iam::Client, role: &str) -> BTreeSet<String> {
    let out = iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    assert!(!out.is_truncated());
    out.attached_policies()
        .iter()
        .map(|p| p.policy_arn().unwrap().to_string())
        .collect()
}

fn set(arns: &[&str]) -> BTreeSet<String> {
    arns.iter().map(|s| s.to_string()).collect()
}

async fn role_tags(iam: &aws_sdk_iam::Client, role: &str) -> Vec<(String, String)> {
    let out = iam.list_role_tags().role_name(role).send().await.unwrap();
    let mut tags: Vec<_> = out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    tags.sort();
    tags
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

/// GetRole with the independent client: (trust policy, description, max session).
async fn role_settings(iam: &aws_sdk_iam::Client, role: &str) -> (Value, Option<String>, Option<i32>) {
    let out = iam.get_role().role_name(role).send().await.unwrap();
    let role = out.role().unwrap();
    let text = role.assume_role_policy_document().unwrap();
    let doc = serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(&decode(text)))
        .unwrap_or_else(|e| panic!("trust policy {text:?} is not JSON: {e}"));
    (
        doc,
        role.description().map(str::to_string),
        role.max_session_duration(),
    )
}

async fn role_exists(iam: &aws_sdk_iam::Client, role: &str) -> bool {
    match iam.get_role().role_name(role).send().await {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(
                aws_sdk_iam::error::ProvideErrorMetadata::code(&e),
                Some("NoSuchEntity"),
                "{e:?}"
            );
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_role_create_read_update_delete() {
    let moto = Moto::start();
    let kind = IamRole(moto.clients().await);
    let iam = moto.iam().await;
    let cx = cx("iam.role.cluster");
    let mine = customer_policy(&iam, "cluster-extra").await;

    let want = desired(
        json!({
            "name": "eks-cluster",
            "path": "/meshform/",
            "description": "EKS control plane",
            "assume_role_policy": trust("eks.amazonaws.com"),
            "managed_policy_arns": ["AmazonEKSClusterPolicy", mine],
            "tags": {"team": "infra"},
        }),
        &cx,
    );
    let live = kind.create(&cx, &want).await.unwrap();
    assert_eq!(live.id, "eks-cluster");
    let arn = live.attrs["arn"].as_str().unwrap().to_string();
    assert!(arn.starts_with("arn:aws:iam::"), "{arn}");
    assert!(arn.ends_with(":role/meshform/eks-cluster"), "{arn}");
    assert!(live.attrs["unique_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(live.attrs["path"], json!("/meshform/"));
    assert_eq!(live.attrs["description"], json!("EKS control plane"));
    assert_eq!(live.attrs["max_session_duration"], json!(3600));
    assert_eq!(live.attrs["assume_role_policy"], trust("eks.amazonaws.com"));
    let mut expected = vec![aws("AmazonEKSClusterPolicy"), mine.clone()];
    expected.sort();
    assert_eq!(live.attrs["managed_policy_arns"], json!(expected));

    // What IAM holds, read independently.
    assert_eq!(
        attached(&iam, "eks-cluster").await,
        set(&[&aws("AmazonEKSClusterPolicy"), &mine])
    );
    let (doc, description, max) = role_settings(&iam, "eks-cluster").await;
    assert_eq!(doc, trust("eks.amazonaws.com"));
    assert_eq!(description.as_deref(), Some("EKS control plane"));
    assert_eq!(max, Some(3600));
    assert_eq!(
        role_tags(&iam, "eks-cluster").await,
        vec![
            ("meshform:address".to_string(), "iam.role.cluster".to_string()),
            ("meshform:stack".to_string(), "teststack".to_string()),
            ("team".to_string(), "infra".to_string()),
        ]
    );

    // Reading it back gives what create returned.
    let read = kind.read(&[request("iam.role.cluster", &live)]).await.unwrap();
    assert_eq!(read, vec![Some(live.clone())]);

    // Attachments change in place: one added (by name), one removed.
    let mut want2 = want.clone();
    want2.insert(
        "managed_policy_arns".into(),
        json!(["AmazonEKSClusterPolicy", "AmazonEKSServicePolicy"]),
    );
    let updated = kind
        .update(
            &cx,
            InPlace {
                prior: &live,
                desired: &want2,
                changed: &["managed_policy_arns".to_string()],
            },
        )
        .await
        .unwrap();
    let both = set(&[&aws("AmazonEKSClusterPolicy"), &aws("AmazonEKSServicePolicy")]);
    assert_eq!(attached(&iam, "eks-cluster").await, both);
    assert_eq!(
        updated.attrs["managed_policy_arns"],
        json!(both.iter().collect::<Vec<_>>())
    );
    assert_eq!(updated.attrs["arn"], live.attrs["arn"]);
    assert_eq!(updated.attrs["unique_id"], live.attrs["unique_id"]);

    // Description, max session, trust policy and tags change in place.
    let mut want3 = want2.clone();
    want3.insert("description".into(), json!("EKS control plane, v2"));
    want3.insert("max_session_duration".into(), json!(7200));
    want3.insert("assume_role_policy".into(), trust("ec2.amazonaws.com"));
    let tags = want3.get_mut("tags").unwrap().as_object_mut().unwrap();
    tags.remove("team");
    tags.insert("owner".into(), json!("me"));
    let changed = [
        "description",
        "max_session_duration",
        "assume_role_policy",
        "tags",
    ]
    .map(String::from);
    let updated = kind
        .update(
            &cx,
            InPlace {
                prior: &updated,
                desired: &want3,
                changed: &changed,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.attrs["description"], json!("EKS control plane, v2"));
    assert_eq!(updated.attrs["max_session_duration"], json!(7200));
    assert_eq!(updated.attrs["assume_role_policy"], trust("ec2.amazonaws.com"));
    let (doc, description, max) = role_settings(&iam, "eks-cluster").await;
    assert_eq!(doc, trust("ec2.amazonaws.com"));
    assert_eq!(description.as_deref(), Some("EKS control plane, v2"));
    assert_eq!(max, Some(7200));
    assert_eq!(
        role_tags(&iam, "eks-cluster").await,
        vec![
            ("meshform:address".to_string(), "iam.role.cluster".to_string()),
            ("meshform:stack".to_string(), "teststack".to_string()),
            ("owner".to_string(), "me".to_string()),
        ]
    );
    // The attachments were left alone by the settings change.
    assert_eq!(attached(&iam, "eks-cluster").await, both);
    let read = kind.read(&[request("iam.role.cluster", &updated)]).await.unwrap();
    assert_eq!(read, vec![Some(updated.clone())]);

    // Name and path cannot change in place: the schema says so, and the
    // engine replaces the role rather than asking `update` (the engine's own
    // test checks that it refuses such an update).
    for attr in ["name", "path"] {
        assert!(kind.def().attr(attr).is_some_and(|a| a.force_new), "{attr}");
    }

    // Delete detaches everything and removes the role; again is fine.
    kind.delete(&cx, &updated).await.unwrap();
    assert!(!role_exists(&iam, "eks-cluster").await);
    kind.delete(&cx, &updated).await.unwrap();
    assert_eq!(
        kind.read(&[request("iam.role.cluster", &updated)]).await.unwrap(),
        vec![None]
    );
    // The customer policy is no longer attached to anything (deletable).
    iam.delete_policy().policy_arn(&mine).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_role_read_batch_and_out_of_band_changes() {
    let moto = Moto::start();
    let kind = IamRole(moto.clients().await);
    let iam = moto.iam().await;
    let (cx_a, cx_b) = (cx("iam.role.a"), cx("iam.role.b"));

    let a = kind
        .create(
            &cx_a,
            &desired(
                json!({
                    "name": "role-a",
                    "path": "/svc/a/",
                    "assume_role_policy": trust("ec2.amazonaws.com"),
                    "managed_policy_arns": ["AmazonEKSWorkerNodePolicy"],
                }),
                &cx_a,
            ),
        )
        .await
        .unwrap();
    // No description, no attachments: read reports no description and an
    // empty attachment set.
    let b = kind
        .create(
            &cx_b,
            &desired(
                json!({"name": "role-b", "path": "/svc/b/", "assume_role_policy": trust("eks.amazonaws.com")}),
                &cx_b,
            ),
        )
        .await
        .unwrap();
    assert!(!b.attrs.contains_key("description"));
    assert_eq!(b.attrs["managed_policy_arns"], json!([]));
    // Not managed by meshform, outside the listed path: never reported.
    iam.create_role()
        .role_name("bystander")
        .assume_role_policy_document(trust("ec2.amazonaws.com").to_string())
        .send()
        .await
        .unwrap();
    let ghost = ReadRequest {
        address: "iam.role.ghost".into(),
        id: "never-was".into(),
        attrs: Attrs::new(),
    };
    let read = kind
        .read(&[request("iam.role.a", &a), request("iam.role.b", &b), ghost])
        .await
        .unwrap();
    assert_eq!(read, vec![Some(a.clone()), Some(b.clone()), None]);

    // Out of band: b's trust policy, attachments and description change.
    iam.update_assume_role_policy()
        .role_name("role-b")
        .policy_document(trust("lambda.amazonaws.com").to_string())
        .send()
        .await
        .unwrap();
    iam.attach_role_policy()
        .role_name("role-b")
        .policy_arn(aws("AmazonEKS_CNI_Policy"))
        .send()
        .await
        .unwrap();
    iam.update_role()
        .role_name("role-b")
        .description("edited by hand")
        .max_session_duration(3600)
        .send()
        .await
        .unwrap();
    // Out of band: a is deleted.
    iam.detach_role_policy()
        .role_name("role-a")
        .policy_arn(aws("AmazonEKSWorkerNodePolicy"))
        .send()
        .await
        .unwrap();
    iam.delete_role().role_name("role-a").send().await.unwrap();

    let read = kind
        .read(&[request("iam.role.a", &a), request("iam.role.b", &b)])
        .await
        .unwrap();
    assert_eq!(read[0], None);
    let live_b = read[1].as_ref().unwrap();
    assert_eq!(live_b.attrs["assume_role_policy"], trust("lambda.amazonaws.com"));
    assert_eq!(
        live_b.attrs["managed_policy_arns"],
        json!([aws("AmazonEKS_CNI_Policy")])
    );
    assert_eq!(live_b.attrs["description"], json!("edited by hand"));
}

#[test]
fn iam_role_normalize_treats_names_and_arns_alike() {
    let normalize = DEF.normalize.expect("aws.iam.role normalizes");
    let by_name = normalize(
        "managed_policy_arns",
        json!(["AmazonEKSClusterPolicy", "arn:aws:iam::123456789012:policy/mine"]),
    );
    let by_arn = normalize(
        "managed_policy_arns",
        json!([
            "arn:aws:iam::123456789012:policy/mine",
            "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            "AmazonEKSClusterPolicy",
        ]),
    );
    assert_eq!(by_name, by_arn);
    assert_eq!(
        by_name,
        json!([
            "arn:aws:iam::123456789012:policy/mine",
            "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
        ])
    );
    assert_eq!(
        normalize("managed_policy_arns", json!(["service-role/AmazonEC2RoleforSSM"])),
        json!(["arn:aws:iam::aws:policy/service-role/AmazonEC2RoleforSSM"])
    );
    // Only the attachment set is touched.
    assert_eq!(
        normalize("name", json!("AmazonEKSClusterPolicy")),
        json!("AmazonEKSClusterPolicy")
    );
    // Through the planner's entry point too.
    assert_eq!(
        normalize_attr(&DEF, "managed_policy_arns", json!(["B", "A"])),
        normalize_attr(&DEF, "managed_policy_arns", json!([aws("A"), aws("B")]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_role_create_on_existing_role() {
    let moto = Moto::start();
    let kind = IamRole(moto.clients().await);
    let iam = moto.iam().await;
    let cx = cx("iam.role.taken");
    let want = |name: &str| {
        desired(
            json!({
                "name": name,
                "description": "wanted",
                "assume_role_policy": trust("eks.amazonaws.com"),
                "managed_policy_arns": ["AmazonEKSClusterPolicy"],
            }),
            &cx,
        )
    };

    // Someone else's role, no meshform tags: refused, left untouched.
    iam.create_role()
        .role_name("foreign")
        .assume_role_policy_document(trust("ec2.amazonaws.com").to_string())
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("team")
                .value("other")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let err = kind.create(&cx, &want("foreign")).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("role foreign already exists and belongs to someone else"),
        "{msg}"
    );
    assert!(msg.contains("no meshform ownership tags"), "{msg}");
    assert!(msg.contains("team=other"), "{msg}");
    assert_eq!(err.code(), Some("EntityAlreadyExists"));
    assert!(attached(&iam, "foreign").await.is_empty());
    assert_eq!(role_settings(&iam, "foreign").await.0, trust("ec2.amazonaws.com"));

    // Another stack's role: refused, naming its owner.
    let other_tags = ownership_tags("elsewhere", "iam.role.taken");
    let mut create = iam
        .create_role()
        .role_name("other-stack")
        .assume_role_policy_document(trust("ec2.amazonaws.com").to_string());
    for (k, v) in &other_tags {
        create = create.tags(
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .unwrap(),
        );
    }
    create.send().await.unwrap();
    let err = kind.create(&cx, &want("other-stack")).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("belongs to stack elsewhere address iam.role.taken"),
        "{msg}"
    );
    assert!(msg.contains("meshform:stack=elsewhere"), "{msg}");
    assert!(attached(&iam, "other-stack").await.is_empty());

    // This stack and address's own role (a create that crashed before the
    // state write): adopted and brought to the desired attachments and
    // settings.
    let mut create = iam
        .create_role()
        .role_name("ours")
        .assume_role_policy_document(trust("ec2.amazonaws.com").to_string());
    for (k, v) in ownership_tags(&cx.stack, &cx.address) {
        create = create.tags(
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .unwrap(),
        );
    }
    create.send().await.unwrap();
    iam.attach_role_policy()
        .role_name("ours")
        .policy_arn(aws("AmazonEKS_CNI_Policy"))
        .send()
        .await
        .unwrap();
    let live = kind.create(&cx, &want("ours")).await.unwrap();
    assert_eq!(live.id, "ours");
    assert_eq!(
        attached(&iam, "ours").await,
        set(&[&aws("AmazonEKSClusterPolicy")])
    );
    let (doc, description, _) = role_settings(&iam, "ours").await;
    assert_eq!(doc, trust("eks.amazonaws.com"));
    assert_eq!(description.as_deref(), Some("wanted"));
    assert_eq!(
        live.attrs["managed_policy_arns"],
        json!([aws("AmazonEKSClusterPolicy")])
    );
    assert_eq!(
        kind.read(&[request("iam.role.taken", &live)]).await.unwrap(),
        vec![Some(live)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_role_find_existing_matches_only_its_own_tags() {
    let moto = Moto::start();
    let kind = IamRole(moto.clients().await);
    let iam = moto.iam().await;
    let cx_own = cx("iam.role.own");
    let want = desired(
        json!({"name": "found", "assume_role_policy": trust("ec2.amazonaws.com"), "managed_policy_arns": ["AmazonEKSWorkerNodePolicy"]}),
        &cx_own,
    );

    assert_eq!(kind.find_existing(&cx_own, &want).await.unwrap(), None);
    let live = kind.create(&cx_own, &want).await.unwrap();
    assert_eq!(kind.find_existing(&cx_own, &want).await.unwrap(), Some(live));

    assert_eq!(
        kind.find_existing(&cx("iam.role.other"), &want).await.unwrap(),
        None
    );
    let other_stack = OpContext {
        stack: "elsewhere".into(),
        ..cx_own.clone()
    };
    assert_eq!(kind.find_existing(&other_stack, &want).await.unwrap(), None);

    iam.create_role()
        .role_name("untagged")
        .assume_role_policy_document(trust("ec2.amazonaws.com").to_string())
        .send()
        .await
        .unwrap();
    let mut untagged = want.clone();
    untagged.insert("name".into(), json!("untagged"));
    assert_eq!(kind.find_existing(&cx_own, &untagged).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_role_delete_strips_policies_and_instance_profiles() {
    let moto = Moto::start();
    let kind = IamRole(moto.clients().await);
    let iam = moto.iam().await;
    let cx = cx("iam.role.nodes");
    let mine = customer_policy(&iam, "nodes-extra").await;
    let live = kind
        .create(
            &cx,
            &desired(
                json!({
                    "name": "nodes",
                    "assume_role_policy": trust("ec2.amazonaws.com"),
                    "managed_policy_arns": ["AmazonEKSWorkerNodePolicy", mine],
                }),
                &cx,
            ),
        )
        .await
        .unwrap();
    // Out of band: an inline policy and an instance profile holding the role.
    iam.put_role_policy()
        .role_name("nodes")
        .policy_name("inline")
        .policy_document(policy_doc("s3:ListBucket").to_string())
        .send()
        .await
        .unwrap();
    iam.create_instance_profile()
        .instance_profile_name("nodes-profile")
        .send()
        .await
        .unwrap();
    iam.add_role_to_instance_profile()
        .instance_profile_name("nodes-profile")
        .role_name("nodes")
        .send()
        .await
        .unwrap();

    kind.delete(&cx, &live).await.unwrap();
    assert!(!role_exists(&iam, "nodes").await);
    let profile = iam
        .get_instance_profile()
        .instance_profile_name("nodes-profile")
        .send()
        .await
        .unwrap();
    assert!(profile.instance_profile().unwrap().roles().is_empty());
    // The customer policy is detached: deletable now.
    iam.delete_policy().policy_arn(&mine).send().await.unwrap();
    kind.delete(&cx, &live).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_role_refuses_bad_input() {
    let moto = Moto::start();
    let kind = IamRole(moto.clients().await);
    let iam = moto.iam().await;
    let cx = cx("iam.role.bad");

    // Out of IAM's range: refused before any call.
    let mut want = desired(
        json!({"name": "bad", "assume_role_policy": trust("ec2.amazonaws.com"), "max_session_duration": 60}),
        &cx,
    );
    let err = kind.create(&cx, &want).await.unwrap_err();
    assert!(err.to_string().contains("max_session_duration"), "{err}");
    assert!(!role_exists(&iam, "bad").await);

    // A managed policy that does not exist: the attach fails and says so.
    want.insert("max_session_duration".into(), json!(3600));
    want.insert("managed_policy_arns".into(), json!(["NoSuchPolicyAnywhere"]));
    let err = kind.create(&cx, &want).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("AttachRolePolicy") && msg.contains("NoSuchPolicyAnywhere"),
        "{msg}"
    );
}

/// The EKS walkthrough's cluster and node roles need these AWS managed
/// policies; moto must know every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_role_attaches_every_policy_the_walkthrough_needs() {
    let moto = Moto::start();
    let kind = IamRole(moto.clients().await);
    let iam = moto.iam().await;
    let cx = cx("iam.role.walkthrough");
    let names = [
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "ElasticLoadBalancingFullAccess",
        "AWSAppMeshFullAccess",
        "AWSXRayDaemonWriteAccess",
        "CloudWatchAgentServerPolicy",
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonEKSClusterPolicy",
    ];
    let mut missing = Vec::new();
    for name in names {
        if iam.get_policy().policy_arn(aws(name)).send().await.is_err() {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "moto lacks AWS managed policies {missing:?}");

    let live = kind
        .create(
            &cx,
            &desired(
                json!({"name": "walkthrough-nodes", "assume_role_policy": trust("ec2.amazonaws.com"), "managed_policy_arns": names}),
                &cx,
            ),
        )
        .await
        .unwrap();
    let want: BTreeSet<String> = names.iter().map(|n| aws(n)).collect();
    assert_eq!(attached(&iam, "walkthrough-nodes").await, want);
    assert_eq!(
        kind.read(&[request("iam.role.walkthrough", &live)])
            .await
            .unwrap(),
        vec![Some(live.clone())]
    );
    kind.delete(&cx, &live).await.unwrap();
    assert!(!role_exists(&iam, "walkthrough-nodes").await);
}
