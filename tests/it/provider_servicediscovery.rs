//! `aws.servicediscovery.private_dns_namespace` and
//! `aws.servicediscovery.service` against moto, read back through an
//! independent Cloud Map client; requests are recorded by a proxy to show
//! the asynchronous operations were polled. moto finishes every operation
//! at once (`SUCCESS` on the first GetOperation) and, unlike Cloud Map,
//! deletes a namespace that still has services: the refusal to do so is
//! meshform's own check.

use aws_sdk_servicediscovery::error::ProvideErrorMetadata;
use aws_sdk_servicediscovery::types::{DnsConfig, DnsRecord, RecordType, Tag};
use meshform::provider::aws::servicediscovery_namespace::PrivateDnsNamespace;
use meshform::provider::aws::servicediscovery_service::CloudMapService;
use meshform::provider::{InPlace, ResourceKind};
use serde_json::json;

use crate::support::kind_ops::{cx, desired, network, recorded_clients, request};
use crate::support::moto::Moto;

async fn tag_pairs(sd: &aws_sdk_servicediscovery::Client, arn: &str) -> Vec<(String, String)> {
    let out = sd
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    let mut tags: Vec<(String, String)> = out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    tags.sort();
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_and_service_create_read_update_find_and_delete() {
    let moto = Moto::start();
    let (clients, proxy) = recorded_clients(&moto).await;
    let namespaces = PrivateDnsNamespace(clients.clone());
    let services = CloudMapService(clients);
    let sd = moto.servicediscovery().await;
    let net = network(&moto.ec2().await).await;

    // The namespace: CreatePrivateDnsNamespace, then GetOperation until SUCCESS.
    let (cx_ns, ns_seen) = cx("namespace");
    let want_ns = desired(
        json!({"name": "demo.pvt.aws.local", "vpc_id": net.vpc, "description": "cross-cluster",
               "tags": {"team": "mesh"}}),
        &cx_ns,
    );
    let ns = namespaces.create(&cx_ns, &want_ns).await.unwrap();
    assert!(ns.id.starts_with("ns-"), "{ns:?}");
    let actions = proxy.actions();
    let create_at = actions
        .iter()
        .position(|a| a.ends_with("CreatePrivateDnsNamespace"));
    let poll_at = actions.iter().position(|a| a.ends_with("GetOperation"));
    assert!(create_at.is_some() && poll_at > create_at, "{actions:?}");
    let created = proxy
        .requests()
        .into_iter()
        .find(|r| r.call.ends_with("CreatePrivateDnsNamespace"))
        .unwrap();
    assert_eq!(
        created.json_field("CreatorRequestId").as_deref(),
        Some("tok-namespace")
    );
    let held = sd.get_namespace().id(&ns.id).send().await.unwrap();
    let held = held.namespace().unwrap();
    assert_eq!(held.name(), Some("demo.pvt.aws.local"));
    assert_eq!(held.description(), Some("cross-cluster"));
    assert_eq!(held.r#type().map(|t| t.as_str()), Some("DNS_PRIVATE"));
    assert_eq!(
        tag_pairs(&sd, held.arn().unwrap()).await,
        vec![
            ("meshform:address".to_string(), "namespace".to_string()),
            ("meshform:stack".to_string(), "teststack".to_string()),
            ("team".to_string(), "mesh".to_string()),
        ]
    );
    assert_eq!(ns.attrs["vpc_id"], json!(net.vpc));
    assert!(
        ns.attrs["hosted_zone_id"].as_str().is_some_and(|z| !z.is_empty()),
        "{ns:?}"
    );
    // moto's operation succeeds at once: nothing was reported as waiting.
    assert!(ns_seen.lock().unwrap().is_empty(), "{ns_seen:?}");
    assert_eq!(
        namespaces.read(&[request(&ns)]).await.unwrap(),
        vec![Some(ns.clone())]
    );
    assert_eq!(
        namespaces.find_existing(&cx_ns, &want_ns).await.unwrap(),
        Some(ns.clone())
    );
    let mut excluding = cx_ns.clone();
    excluding.exclude = vec![ns.id.clone()];
    assert_eq!(
        namespaces.find_existing(&excluding, &want_ns).await.unwrap(),
        None
    );
    // Another address's namespace of that name is not adopted.
    let (cx_other, _) = cx("other_namespace");
    assert_eq!(namespaces.find_existing(&cx_other, &want_ns).await.unwrap(), None);

    // A service the stack owns.
    let (cx_svc, _) = cx("colorapp");
    let want_svc = desired(
        json!({"name": "colorapp", "namespace_id": ns.id, "dns_record_types": ["A"], "dns_ttl": 300,
               "health_check_custom": true, "tags": {"app": "color"}}),
        &cx_svc,
    );
    let svc = services.create(&cx_svc, &want_svc).await.unwrap();
    assert!(svc.id.starts_with("srv-"), "{svc:?}");
    let held = sd.get_service().id(&svc.id).send().await.unwrap();
    let held = held.service().unwrap();
    assert_eq!(held.name(), Some("colorapp"));
    assert_eq!(held.namespace_id(), Some(ns.id.as_str()));
    let records = held.dns_config().unwrap().dns_records();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].r#type().as_str(), records[0].ttl()), ("A", 300));
    assert!(held.health_check_custom_config().is_some());
    assert_eq!(tag_pairs(&sd, held.arn().unwrap()).await.len(), 3);
    assert_eq!(
        services.read(&[request(&svc)]).await.unwrap(),
        vec![Some(svc.clone())]
    );
    assert_eq!(
        services.find_existing(&cx_svc, &want_svc).await.unwrap(),
        Some(svc.clone())
    );
    let (cx_nobody, _) = cx("nobody");
    assert_eq!(services.find_existing(&cx_nobody, &want_svc).await.unwrap(), None);

    // The TTL changes in place (UpdateService, an operation), tags sync.
    let mut want_svc2 = want_svc.clone();
    want_svc2.insert("dns_ttl".into(), json!(60));
    want_svc2
        .get_mut("tags")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove("app");
    let updated = services
        .update(
            &cx_svc,
            InPlace {
                prior: &svc,
                desired: &want_svc2,
                changed: &["dns_ttl".to_string(), "tags".to_string()],
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.id, svc.id);
    let held = sd.get_service().id(&svc.id).send().await.unwrap();
    assert_eq!(
        held.service().unwrap().dns_config().unwrap().dns_records()[0].ttl(),
        60
    );
    assert_eq!(updated.attrs["dns_ttl"], json!(60));
    assert_eq!(
        tag_pairs(&sd, held.service().unwrap().arn().unwrap()).await.len(),
        2
    );

    // A service a controller made, with an instance, which the stack does not own.
    let front = sd
        .create_service()
        .name("front")
        .namespace_id(&ns.id)
        .dns_config(
            DnsConfig::builder()
                .dns_records(
                    DnsRecord::builder()
                        .r#type(RecordType::A)
                        .ttl(300)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .tags(
            Tag::builder()
                .key("creator")
                .value("appmesh-controller")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let front = front.service().unwrap().id().unwrap().to_string();
    sd.register_instance()
        .service_id(&front)
        .instance_id("10.40.0.10")
        .attributes("AWS_INSTANCE_IPV4", "10.40.0.10")
        .send()
        .await
        .unwrap();

    // The stack's service goes first (dependents first).
    services.delete(&cx_svc, &updated).await.unwrap();
    let gone = sd.get_service().id(&svc.id).send().await.unwrap_err();
    assert_eq!(gone.code(), Some("ServiceNotFound"));
    services.delete(&cx_svc, &updated).await.unwrap();
    assert_eq!(services.read(&[request(&updated)]).await.unwrap(), vec![None]);

    // The namespace still has the controller's service: the delete fails
    // naming it, and nothing is deleted.
    let err = namespaces.delete(&cx_ns, &ns).await.unwrap_err();
    assert!(err.to_string().contains("front"), "{err}");
    assert!(err.to_string().contains("force_destroy"), "{err}");
    assert!(sd.get_namespace().id(&ns.id).send().await.is_ok());
    assert!(sd.get_service().id(&front).send().await.is_ok());
    assert!(proxy.calls("DeleteNamespace").is_empty());

    // With force_destroy (changed in place) the service's instance is
    // deregistered, the service deleted, then the namespace, each operation
    // polled.
    let mut want_ns2 = want_ns.clone();
    want_ns2.insert("force_destroy".into(), json!(true));
    let forced = namespaces
        .update(
            &cx_ns,
            InPlace {
                prior: &ns,
                desired: &want_ns2,
                changed: &["force_destroy".to_string()],
            },
        )
        .await
        .unwrap();
    assert_eq!(forced.attrs["force_destroy"], json!(true));
    let before = proxy.actions().len();
    namespaces.delete(&cx_ns, &forced).await.unwrap();
    let actions = proxy.actions();
    let order: Vec<&String> = actions[before..]
        .iter()
        .filter(|a| {
            ["DeregisterInstance", "DeleteService", "DeleteNamespace"]
                .iter()
                .any(|op| a.ends_with(op))
        })
        .collect();
    assert_eq!(order.len(), 3, "{actions:?}");
    assert!(order[0].ends_with("DeregisterInstance"), "{order:?}");
    assert!(order[1].ends_with("DeleteService"), "{order:?}");
    assert!(order[2].ends_with("DeleteNamespace"), "{order:?}");
    assert!(
        actions.last().is_some_and(|a| a.ends_with("GetOperation")),
        "{actions:?}"
    );
    let gone = sd.get_namespace().id(&ns.id).send().await.unwrap_err();
    assert_eq!(gone.code(), Some("NamespaceNotFound"));
    let gone = sd.get_service().id(&front).send().await.unwrap_err();
    assert_eq!(gone.code(), Some("ServiceNotFound"));
    namespaces.delete(&cx_ns, &forced).await.unwrap();
    assert_eq!(namespaces.read(&[request(&forced)]).await.unwrap(), vec![None]);
}

const DISCOVERY_STACK: &str = r#"[stack]
name = "discovery"
region = "us-west-2"

[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "10.60.0.0/16"

[resource.nodes]
type = "aws.ec2.security_group"
name = "nodes"
vpc_id = "${vpc.id}"

[resource.colorapp_from_front]
type = "aws.ec2.security_group_rule"
security_group_id = "${nodes.id}"
direction = "ingress"
protocol = "tcp"
from_port = 8080
to_port = 8080
source_security_group_id = "${nodes.id}"

[resource.namespace]
type = "aws.servicediscovery.private_dns_namespace"
name = "demo.pvt.aws.local"
vpc_id = "${vpc.id}"

[resource.colorapp]
type = "aws.servicediscovery.service"
name = "colorapp"
namespace_id = "${namespace.id}"
health_check_custom = true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_stack_applies_plans_nothing_more_and_destroys() {
    use crate::support::cli::{Workdir, expect_code, meshform};
    let moto = Moto::start();
    let dir = Workdir::new("discovery");
    let sd = moto.servicediscovery().await;
    let ec2 = moto.ec2().await;
    let stack = dir.write("discovery.toml", DISCOVERY_STACK);
    let stack = stack.to_str().unwrap();
    expect_code(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        0,
    );
    expect_code(
        meshform(&dir.path, Some(&moto), &["plan", stack, "--detailed-exitcode"]),
        0,
    );
    let namespaces = sd.list_namespaces().send().await.unwrap();
    assert_eq!(namespaces.namespaces().len(), 1);
    let services = sd.list_services().send().await.unwrap();
    assert_eq!(services.services().len(), 1);
    let rules = ec2.describe_security_group_rules().send().await.unwrap();
    let on_8080 = |rules: &[aws_sdk_ec2::types::SecurityGroupRule]| {
        rules.iter().filter(|r| r.from_port() == Some(8080)).count()
    };
    assert_eq!(on_8080(rules.security_group_rules()), 1);

    // Destroy: the service before its namespace, the rule before its group.
    expect_code(
        meshform(&dir.path, Some(&moto), &["destroy", stack, "--auto-approve"]),
        0,
    );
    assert!(sd.list_namespaces().send().await.unwrap().namespaces().is_empty());
    assert!(sd.list_services().send().await.unwrap().services().is_empty());
    let rules = ec2.describe_security_group_rules().send().await.unwrap();
    assert_eq!(on_8080(rules.security_group_rules()), 0);
}

/// The answers of the first rule, namespace and service creates are lost
/// after moto carried them out: the engine finds each by its ownership
/// tags and adopts it, so each exists exactly once and a plan is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_create_answers_of_the_new_kinds_make_nothing_twice() {
    use crate::support::cli::Workdir;
    use crate::support::kind_ops::{apply_losing_answers, assert_no_changes};
    let moto = Moto::start();
    let dir = Workdir::new("discovery-lost");
    let sd = moto.servicediscovery().await;
    let ec2 = moto.ec2().await;
    let stack = dir.write("discovery.toml", DISCOVERY_STACK);
    let stack = stack.to_str().unwrap();
    apply_losing_answers(
        &moto,
        &dir.path,
        stack,
        &[
            "AuthorizeSecurityGroupIngress",
            "CreatePrivateDnsNamespace",
            "CreateService",
        ],
    );
    assert_eq!(sd.list_namespaces().send().await.unwrap().namespaces().len(), 1);
    assert_eq!(sd.list_services().send().await.unwrap().services().len(), 1);
    let rules = ec2.describe_security_group_rules().send().await.unwrap();
    let on_8080 = rules
        .security_group_rules()
        .iter()
        .filter(|r| r.from_port() == Some(8080))
        .count();
    assert_eq!(on_8080, 1);
    assert_no_changes(&moto, &dir.path, stack);
}
