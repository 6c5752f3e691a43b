//! `aws.elasticache.subnet_group` and `aws.elasticache.replication_group`
//! against moto, read back through an independent ElastiCache client.
//!
//! moto 5.2.5 does not implement ModifyCacheSubnetGroup,
//! DeleteCacheSubnetGroup, IncreaseReplicaCount or DecreaseReplicaCount
//! (it answers HTTP 500), ignores the engine version in
//! ModifyReplicationGroup, makes no member cache clusters (so the engine
//! version, subnet group and security groups of a group cannot be read
//! back from it), and leaves a deleted replication group `deleting`
//! forever. Where it cannot show an effect, the tests check the request
//! meshform sent, through a recording proxy, and say so.

use std::time::Duration;

use meshform::provider::aws::elasticache_replication_group::ElastiCacheReplicationGroup;
use meshform::provider::aws::elasticache_subnet_group::ElastiCacheSubnetGroup;
use meshform::provider::{InPlace, ResourceKind};
use serde_json::json;

use crate::support::kind_ops::{cx, desired, network, recorded_clients, request};
use crate::support::moto::Moto;

async fn tags(client: &aws_sdk_elasticache::Client, arn: &str) -> Vec<(String, String)> {
    let out = client
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .unwrap();
    let mut tags: Vec<(String, String)> = out
        .tag_list()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    tags.sort();
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_subnet_group_create_read_find_and_update_in_place() {
    let moto = Moto::start();
    let (clients, proxy) = recorded_clients(&moto).await;
    let kind = ElastiCacheSubnetGroup(clients);
    let ec = moto.elasticache().await;
    let net = network(&moto.ec2().await).await;

    let (cx1, _) = cx("cache_subnets");
    let want = desired(
        json!({"name": "dapr-cache", "description": "Dapr state store", "subnet_ids": [net.subnets[0]],
               "tags": {"team": "platform"}}),
        &cx1,
    );
    let live = kind.create(&cx1, &want).await.unwrap();
    assert_eq!(live.id, "dapr-cache");
    let held = ec
        .describe_cache_subnet_groups()
        .cache_subnet_group_name("dapr-cache")
        .send()
        .await
        .unwrap();
    let g = &held.cache_subnet_groups()[0];
    assert_eq!(g.cache_subnet_group_description(), Some("Dapr state store"));
    assert_eq!(g.vpc_id(), Some(net.vpc.as_str()));
    let subnets: Vec<&str> = g.subnets().iter().filter_map(|s| s.subnet_identifier()).collect();
    assert_eq!(subnets, vec![net.subnets[0].as_str()]);
    assert_eq!(
        tags(&ec, g.arn().unwrap()).await,
        vec![
            ("meshform:address".to_string(), "cache_subnets".to_string()),
            ("meshform:stack".to_string(), "teststack".to_string()),
            ("team".to_string(), "platform".to_string()),
        ]
    );
    assert_eq!(live.attrs["vpc_id"], json!(net.vpc));

    assert_eq!(
        kind.read(&[request(&live)]).await.unwrap(),
        vec![Some(live.clone())]
    );
    let found = kind.find_existing(&cx1, &want).await.unwrap();
    assert_eq!(found, Some(live.clone()));
    // The name taken by another address is not adopted: the error names the owner.
    let (other, _) = cx("other");
    let err = kind
        .find_existing(
            &other,
            &desired(json!({"name": "dapr-cache", "subnet_ids": []}), &other),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cache_subnets"), "{err}");

    // The subnets change in place: one ModifyCacheSubnetGroup with the
    // whole new list. moto does not implement the call (HTTP 500), so the
    // request is what can be checked.
    let mut want2 = want.clone();
    want2.insert("subnet_ids".into(), json!(net.subnets));
    let result = kind
        .update(
            &cx1,
            InPlace {
                prior: &live,
                desired: &want2,
                changed: &["subnet_ids".to_string()],
            },
        )
        .await;
    let sent = proxy.calls("ModifyCacheSubnetGroup");
    assert!(!sent.is_empty(), "{:?}", proxy.actions());
    assert_eq!(
        sent[0].query_param("CacheSubnetGroupName").as_deref(),
        Some("dapr-cache")
    );
    for s in &net.subnets {
        assert!(sent[0].body.contains(s.as_str()), "{}", sent[0].body);
    }
    assert!(
        result.is_err(),
        "moto now implements ModifyCacheSubnetGroup: read the effect back"
    );

    // Delete: DeleteCacheSubnetGroup by name (moto: HTTP 500 again, so the
    // group stays and the failure is reported, not taken for success).
    let err = kind.delete(&cx1, &live).await.unwrap_err();
    assert!(err.to_string().contains("DeleteCacheSubnetGroup"), "{err}");
    let sent = proxy.calls("DeleteCacheSubnetGroup");
    assert_eq!(
        sent.first()
            .and_then(|r| r.query_param("CacheSubnetGroupName"))
            .as_deref(),
        Some("dapr-cache")
    );
    assert!(proxy.calls("CreateCacheSubnetGroup").len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_group_create_read_update_find_and_delete() {
    let moto = Moto::start();
    let (clients, proxy) = recorded_clients(&moto).await;
    let kind = ElastiCacheReplicationGroup(clients);
    let subnet_kind = ElastiCacheSubnetGroup(moto.clients().await);
    let ec = moto.elasticache().await;
    let ec2 = moto.ec2().await;
    let net = network(&ec2).await;
    let sg = ec2
        .create_security_group()
        .group_name("cache")
        .description("cache")
        .vpc_id(&net.vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let (cx_sub, _) = cx("cache_subnets");
    subnet_kind
        .create(
            &cx_sub,
            &desired(
                json!({"name": "cache-subnets", "subnet_ids": net.subnets}),
                &cx_sub,
            ),
        )
        .await
        .unwrap();

    let (cx1, seen) = cx("cache");
    let token = "a-sentinel-token-0123456789";
    let want = desired(
        json!({"replication_group_id": "dapr-state", "description": "state store", "engine": "valkey",
               "engine_version": "8.0", "node_type": "cache.t3.micro", "num_cache_clusters": 1,
               "transit_encryption_enabled": true, "auth_token": token,
               "security_group_ids": [sg], "subnet_group_name": "cache-subnets"}),
        &cx1,
    );
    let live = kind.create(&cx1, &want).await.unwrap();
    assert_eq!(live.id, "dapr-state");
    let held = ec
        .describe_replication_groups()
        .replication_group_id("dapr-state")
        .send()
        .await
        .unwrap();
    let g = &held.replication_groups()[0];
    assert_eq!(g.engine(), Some("valkey"));
    assert_eq!(g.cache_node_type(), Some("cache.t3.micro"));
    assert_eq!(g.transit_encryption_enabled(), Some(true));
    assert_eq!(g.auth_token_enabled(), Some(true));
    assert_eq!(g.member_clusters().len(), 1);
    assert_eq!(g.status(), Some("available"));
    let endpoint = g.node_groups()[0].primary_endpoint().unwrap();
    assert_eq!(
        live.attrs["primary_endpoint_address"],
        json!(endpoint.address().unwrap())
    );
    assert_eq!(live.attrs["port"], json!(6379));
    assert_eq!(tags(&ec, g.arn().unwrap()).await.len(), 2);
    // The token is never returned; the live view echoes the recorded one.
    assert_eq!(live.attrs["auth_token"], json!(token));
    // moto has it available at once: nothing to report while waiting.
    assert!(seen.lock().unwrap().is_empty(), "{seen:?}");

    assert_eq!(
        kind.read(&[request(&live)]).await.unwrap(),
        vec![Some(live.clone())]
    );
    // Recorded without a token (or with another), the read shows that, not
    // a value from the cloud.
    let mut other = request(&live);
    other
        .attrs
        .insert("auth_token".into(), json!("recorded-other-value"));
    let read = kind.read(&[other]).await.unwrap();
    assert_eq!(
        read[0].as_ref().unwrap().attrs["auth_token"],
        json!("recorded-other-value")
    );

    let found = kind.find_existing(&cx1, &want).await.unwrap();
    assert_eq!(found.as_ref().map(|l| l.id.as_str()), Some("dapr-state"));
    let (cx_other, _) = cx("other");
    assert!(kind.find_existing(&cx_other, &want).await.is_err());
    let (cx_none, _) = cx("none");
    let mut absent = want.clone();
    absent.insert("replication_group_id".into(), json!("absent"));
    assert_eq!(kind.find_existing(&cx_none, &absent).await.unwrap(), None);

    // One more cache cluster is one more replica: IncreaseReplicaCount to
    // 1, applied immediately. moto does not implement it (HTTP 500): the
    // request is what can be checked, and the failure is reported.
    let mut more = want.clone();
    more.insert("num_cache_clusters".into(), json!(2));
    let result = kind
        .update(
            &cx1,
            InPlace {
                prior: &live,
                desired: &more,
                changed: &["num_cache_clusters".to_string()],
            },
        )
        .await;
    assert!(
        result.is_err(),
        "moto now implements IncreaseReplicaCount: read the effect back"
    );
    let sent = proxy.calls("IncreaseReplicaCount");
    assert!(!sent.is_empty(), "{:?}", proxy.actions());
    assert_eq!(
        sent[0].query_param("ReplicationGroupId").as_deref(),
        Some("dapr-state")
    );
    assert_eq!(sent[0].query_param("NewReplicaCount").as_deref(), Some("1"));
    assert_eq!(sent[0].query_param("ApplyImmediately").as_deref(), Some("true"));
    assert!(proxy.calls("DecreaseReplicaCount").is_empty());

    // The node type changes in place, the group kept.
    let mut want2 = want.clone();
    want2.insert("node_type".into(), json!("cache.t3.small"));
    want2
        .get_mut("tags")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert("size".into(), json!("small"));
    let updated = kind
        .update(
            &cx1,
            InPlace {
                prior: &live,
                desired: &want2,
                changed: &["node_type".to_string(), "tags".to_string()],
            },
        )
        .await
        .unwrap();
    let held = ec
        .describe_replication_groups()
        .replication_group_id("dapr-state")
        .send()
        .await
        .unwrap();
    let g = &held.replication_groups()[0];
    assert_eq!(g.cache_node_type(), Some("cache.t3.small"));
    assert_eq!(
        g.replication_group_create_time(),
        ec.describe_replication_groups()
            .replication_group_id("dapr-state")
            .send()
            .await
            .unwrap()
            .replication_groups()[0]
            .replication_group_create_time()
    );
    assert!(
        tags(&ec, g.arn().unwrap())
            .await
            .contains(&("size".to_string(), "small".to_string()))
    );
    assert_eq!(updated.attrs["node_type"], json!("cache.t3.small"));
    assert_eq!(updated.attrs["auth_token"], json!(token));

    // Delete sends DeleteReplicationGroup and waits until the group is gone,
    // reporting its status. moto leaves it `deleting` forever, so the wait
    // is cut short here.
    let waited = tokio::time::timeout(Duration::from_secs(6), kind.delete(&cx1, &updated)).await;
    assert!(
        waited.is_err(),
        "delete returned while the group was still listed"
    );
    let held = ec
        .describe_replication_groups()
        .replication_group_id("dapr-state")
        .send()
        .await
        .unwrap();
    assert_eq!(held.replication_groups()[0].status(), Some("deleting"));
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("to be deleted: status deleting")),
        "{seen:?}"
    );
}

/// The stack of the cache test: `node_type` and the subnet group's
/// subnets vary.
fn cache_stack(node_type: &str, subnets: &str) -> String {
    format!(
        r#"[stack]
name = "cache"
region = "us-west-2"

[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "10.50.0.0/16"

[resource.subnet_a]
type = "aws.ec2.subnet"
vpc_id = "${{vpc.id}}"
cidr_block = "10.50.1.0/24"
availability_zone = "${{az[0]}}"

[resource.subnet_b]
type = "aws.ec2.subnet"
vpc_id = "${{vpc.id}}"
cidr_block = "10.50.2.0/24"
availability_zone = "${{az[1]}}"

[resource.cache_sg]
type = "aws.ec2.security_group"
name = "cache"
vpc_id = "${{vpc.id}}"

[resource.cache_from_itself]
type = "aws.ec2.security_group_rule"
security_group_id = "${{cache_sg.id}}"
direction = "ingress"
protocol = "tcp"
from_port = 6379
to_port = 6379
self = true

[resource.cache_subnets]
type = "aws.elasticache.subnet_group"
name = "cache-subnets"
subnet_ids = {subnets}

[resource.cache]
type = "aws.elasticache.replication_group"
replication_group_id = "state"
engine = "valkey"
node_type = "{node_type}"
transit_encryption_enabled = true
auth_token = "a-token-of-sixteen-or-more"
security_group_ids = ["${{cache_sg.id}}"]
subnet_group_name = "${{cache_subnets.name}}"

[output.redis_host]
value = "${{cache.primary_endpoint_address}}:${{cache.port}}"
"#
    )
}

/// The plan's changed resources as (address, action, changed attributes).
fn changes(plan_json: &str) -> Vec<(String, String, Vec<String>)> {
    let plan: serde_json::Value = serde_json::from_str(plan_json).unwrap();
    plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] != "no_op")
        .map(|r| {
            let names = r["changes"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .map(|c| c["name"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            (
                r["address"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
                names,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_stack_applies_then_node_type_and_subnets_change_in_place() {
    use crate::support::cli::{Workdir, expect_code, meshform, stdout};
    let moto = Moto::start();
    let dir = Workdir::new("cache");
    let ec = moto.elasticache().await;
    let stack = dir.path.join("cache.toml");
    let stack = stack.to_str().unwrap();
    // Runs meshform with `args` (the stack after the command) and expects `code`.
    let run = |args: &[&str], code: i32| {
        let mut all = vec![args[0], stack];
        all.extend(&args[1..]);
        stdout(&expect_code(meshform(&dir.path, Some(&moto), &all), code))
    };
    // What a plan of the stack with `node_type` and `subnets` would change.
    let planned = |node_type: &str, subnets: &str| {
        dir.write("cache.toml", &cache_stack(node_type, subnets));
        changes(&run(&["plan", "--json", "--detailed-exitcode"], 2))
    };
    let one_subnet = r#"["${subnet_a.id}"]"#;

    dir.write("cache.toml", &cache_stack("cache.t3.micro", one_subnet));
    run(&["apply", "--auto-approve"], 0);
    // Everything reads back as applied: the token echoed, the sets sorted.
    run(&["plan", "--detailed-exitcode"], 0);
    let host = run(&["output", "redis_host"], 0);
    assert!(host.contains(".cache.amazonaws.com:6379"), "{host}");

    // A new node type is an in-place update of the cache alone, and applies.
    assert_eq!(
        planned("cache.t3.small", one_subnet),
        vec![(
            "cache".to_string(),
            "update".to_string(),
            vec!["node_type".to_string()]
        )]
    );
    run(&["apply", "--auto-approve"], 0);
    let held = ec
        .describe_replication_groups()
        .replication_group_id("state")
        .send()
        .await
        .unwrap();
    assert_eq!(
        held.replication_groups()[0].cache_node_type(),
        Some("cache.t3.small")
    );
    run(&["plan", "--detailed-exitcode"], 0);

    // More subnets change the subnet group in place (ModifyCacheSubnetGroup,
    // which moto does not implement: applying it is shown by the kind test's
    // request, not here).
    assert_eq!(
        planned("cache.t3.small", r#"["${subnet_a.id}", "${subnet_b.id}"]"#),
        vec![(
            "cache_subnets".to_string(),
            "update".to_string(),
            vec!["subnet_ids".to_string()]
        )]
    );
}

/// The answers of the first subnet group and replication group creates are
/// lost after moto carried them out: each is found by its name and
/// ownership tags and adopted, made once, and a plan is empty after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_create_answers_of_the_cache_make_nothing_twice() {
    use crate::support::cli::Workdir;
    use crate::support::kind_ops::{apply_losing_answers, assert_no_changes};
    let moto = Moto::start();
    let dir = Workdir::new("cache-lost");
    let ec = moto.elasticache().await;
    let stack = dir.write(
        "cache.toml",
        &cache_stack("cache.t3.micro", r#"["${subnet_a.id}"]"#),
    );
    let stack = stack.to_str().unwrap();
    apply_losing_answers(
        &moto,
        &dir.path,
        stack,
        &["CreateCacheSubnetGroup", "CreateReplicationGroup"],
    );
    let groups = ec.describe_cache_subnet_groups().send().await.unwrap();
    assert_eq!(groups.cache_subnet_groups().len(), 1);
    let caches = ec.describe_replication_groups().send().await.unwrap();
    assert_eq!(caches.replication_groups().len(), 1);
    assert_no_changes(&moto, &dir.path, stack);
}
