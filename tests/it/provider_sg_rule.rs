//! `aws.ec2.security_group_rule` against moto: rules on groups made
//! outside meshform (as the EKS cluster security group is), each effect
//! read back with DescribeSecurityGroupRules through an independent client.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, SecurityGroupRule};
use meshform::provider::aws::security_group_rule::SecurityGroupRule as RuleKind;
use meshform::provider::{InPlace, ResourceKind};
use serde_json::json;

use crate::support::kind_ops::{cx, desired, network, request};
use crate::support::moto::Moto;

async fn group(ec2: &aws_sdk_ec2::Client, vpc: &str, name: &str) -> String {
    ec2.create_security_group()
        .group_name(name)
        .description(name)
        .vpc_id(vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string()
}

/// The rule as EC2 holds it, `None` when it does not exist.
async fn rule(ec2: &aws_sdk_ec2::Client, id: &str) -> Option<SecurityGroupRule> {
    let out = ec2
        .describe_security_group_rules()
        .filters(
            Filter::builder()
                .name("security-group-rule-id")
                .values(id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.security_group_rules().first().cloned()
}

fn tag_map(r: &SecurityGroupRule) -> BTreeMap<String, String> {
    r.tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_group_rules_create_read_update_find_and_delete() {
    let moto = Moto::start();
    let kind = RuleKind(moto.clients().await);
    let ec2 = moto.ec2().await;
    let net = network(&ec2).await;
    let cluster_sg = group(&ec2, &net.vpc, "cluster").await;
    let nodes_sg = group(&ec2, &net.vpc, "nodes").await;

    // The Dapr sidecars' rule: TCP 4000 on the cluster group from itself.
    let (cx_self, _) = cx("sidecars");
    let want_self = desired(
        json!({"security_group_id": cluster_sg, "direction": "ingress", "protocol": "tcp",
               "from_port": 4000, "to_port": 4000, "self": true, "description": "dapr sidecars",
               "tags": {"team": "platform"}}),
        &cx_self,
    );
    let self_rule = kind.create(&cx_self, &want_self).await.unwrap();
    assert!(self_rule.id.starts_with("sgr-"), "{self_rule:?}");
    let held = rule(&ec2, &self_rule.id).await.expect("rule exists");
    assert_eq!(held.group_id(), Some(cluster_sg.as_str()));
    assert_eq!(held.is_egress(), Some(false));
    assert_eq!(
        (held.ip_protocol(), held.from_port(), held.to_port()),
        (Some("tcp"), Some(4000), Some(4000))
    );
    assert_eq!(
        held.referenced_group_info().and_then(|g| g.group_id()),
        Some(cluster_sg.as_str())
    );
    assert_eq!(
        tag_map(&held),
        BTreeMap::from([
            ("meshform:address".to_string(), "sidecars".to_string()),
            ("meshform:stack".to_string(), "teststack".to_string()),
            ("team".to_string(), "platform".to_string()),
        ])
    );
    assert_eq!(self_rule.attrs["self"], json!(true));
    assert_eq!(self_rule.attrs["source_security_group_id"], json!(""));

    // From another group (the front cluster's nodes to colorapp on 8080).
    let (cx_group, _) = cx("colorapp");
    let want_group = desired(
        json!({"security_group_id": cluster_sg, "direction": "ingress", "protocol": "tcp",
               "from_port": 8080, "to_port": 8080, "source_security_group_id": nodes_sg}),
        &cx_group,
    );
    let group_rule = kind.create(&cx_group, &want_group).await.unwrap();
    let held = rule(&ec2, &group_rule.id).await.expect("rule exists");
    assert_eq!(
        held.referenced_group_info().and_then(|g| g.group_id()),
        Some(nodes_sg.as_str())
    );
    assert_eq!(group_rule.attrs["source_security_group_id"], json!(nodes_sg));
    assert_eq!(group_rule.attrs["self"], json!(false));

    // Egress to a CIDR block.
    let (cx_egress, _) = cx("egress");
    let want_egress = desired(
        json!({"security_group_id": nodes_sg, "direction": "egress", "protocol": "tcp",
               "from_port": 443, "to_port": 443, "cidr_ipv4": "10.0.0.0/8"}),
        &cx_egress,
    );
    let egress_rule = kind.create(&cx_egress, &want_egress).await.unwrap();
    let held = rule(&ec2, &egress_rule.id).await.expect("rule exists");
    assert_eq!(held.is_egress(), Some(true));
    assert_eq!(held.cidr_ipv4(), Some("10.0.0.0/8"));
    assert_eq!(egress_rule.attrs["direction"], json!("egress"));

    // One batched read gives back what the creates returned.
    let read = kind
        .read(&[request(&self_rule), request(&group_rule), request(&egress_rule)])
        .await
        .unwrap();
    assert_eq!(
        read,
        vec![
            Some(self_rule.clone()),
            Some(group_rule.clone()),
            Some(egress_rule.clone())
        ]
    );

    // A rule made but not recorded (a crash) is found by its tags; one
    // state already tracks is not; nothing is found for another address.
    let found = kind.find_existing(&cx_self, &want_self).await.unwrap();
    assert_eq!(found.as_ref().map(|l| l.id.as_str()), Some(self_rule.id.as_str()));
    let mut excluding = cx_self.clone();
    excluding.exclude = vec![self_rule.id.clone()];
    assert_eq!(kind.find_existing(&excluding, &want_self).await.unwrap(), None);
    let (cx_none, _) = cx("nothing");
    assert_eq!(kind.find_existing(&cx_none, &want_self).await.unwrap(), None);

    // Description and tags change in place.
    let mut want_self2 = want_self.clone();
    want_self2.insert("description".into(), json!("sidecar API"));
    let tags = want_self2.get_mut("tags").unwrap().as_object_mut().unwrap();
    tags.remove("team");
    tags.insert("owner".into(), json!("dapr"));
    let updated = kind
        .update(
            &cx_self,
            InPlace {
                prior: &self_rule,
                desired: &want_self2,
                changed: &["description".to_string(), "tags".to_string()],
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.id, self_rule.id);
    let held = rule(&ec2, &self_rule.id).await.expect("rule exists");
    assert_eq!(held.description(), Some("sidecar API"));
    let held_tags = tag_map(&held);
    assert_eq!(held_tags.get("owner").map(String::as_str), Some("dapr"));
    assert!(!held_tags.contains_key("team"), "{held_tags:?}");
    assert_eq!(updated.attrs["description"], json!("sidecar API"));

    // Two sources are refused before any call.
    let mut two = want_egress.clone();
    two.insert("self".into(), json!(true));
    let (cx_two, _) = cx("two");
    assert!(kind.create(&cx_two, &two).await.is_err());
    assert_eq!(kind.find_existing(&cx_two, &two).await.unwrap(), None);

    // Delete revokes exactly that rule; deleting again is fine.
    kind.delete(&cx_self, &updated).await.unwrap();
    assert!(rule(&ec2, &self_rule.id).await.is_none());
    assert!(rule(&ec2, &group_rule.id).await.is_some(), "the other rule stays");
    kind.delete(&cx_self, &updated).await.unwrap();
    assert_eq!(kind.read(&[request(&updated)]).await.unwrap(), vec![None]);
    kind.delete(&cx_egress, &egress_rule).await.unwrap();
    assert!(rule(&ec2, &egress_rule.id).await.is_none());
}
