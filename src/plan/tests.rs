//! The planner without a cloud: stacks from text, prior state by hand (live
//! attributes in the shapes the kinds' `read` returns).

use std::path::Path;

use serde_json::json;

use super::eval::EvalError;
use super::*;
use crate::config::{LoadOptions, Stack, load_str};
use crate::graph::ResourceGraph;
use crate::provider::RegionFacts;
use crate::{Attrs, Value};

const STACK: &str = "plantest";

/// A VPC, a subnet in the second AZ, a route table and the subnet's
/// association with it, and outputs.
const BASE: &str = r#"
[stack]
name = "plantest"
region = "us-west-2"

[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "10.192.0.0/16"
enable_dns_hostnames = true
tags = { Name = "Demo" }

[resource.subnet]
type = "aws.ec2.subnet"
vpc_id = "${vpc.id}"
cidr_block = "10.192.10.0/24"
availability_zone = "${az[1]}"
tags = { Name = "Demo ${az[1]}" }

[resource.rt]
type = "aws.ec2.route_table"
vpc_id = "${vpc.id}"

[resource.rta]
type = "aws.ec2.route_table_association"
route_table_id = "${rt.id}"
subnet_id = "${subnet.id}"

[output.vpc_id]
value = "${vpc.id}"

[output.subnet_az]
value = "${subnet.availability_zone}"
"#;

fn stack(text: &str) -> Stack {
    load_str(Path::new("t.toml"), text.to_string(), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("invalid test stack:\n{}", e.messages()))
}

fn facts() -> RegionFacts {
    RegionFacts {
        region: "us-west-2".into(),
        azs: vec!["us-west-2a".into(), "us-west-2b".into()],
    }
}

fn run(stack: &Stack, prior: &Prior) -> Result<Plan, PlanError> {
    let graph = ResourceGraph::build(stack).expect("no cycle");
    plan(stack, &graph, prior, &facts())
}

fn run_ok(text: &str, prior: &Prior) -> Plan {
    run(&stack(text), prior).unwrap_or_else(|e| panic!("plan failed: {e}"))
}

fn attrs(v: Value) -> Attrs {
    v.as_object().expect("an object").clone()
}

/// `tags` as a kind reads them: user tags plus meshform's ownership tags.
fn tags(address: &str, user: &[(&str, &str)]) -> Value {
    let mut t = json!({ "meshform:stack": STACK, "meshform:address": address });
    for (k, v) in user {
        t[*k] = json!(v);
    }
    t
}

fn vpc_live() -> Attrs {
    attrs(json!({
        "cidr_block": "10.192.0.0/16",
        "enable_dns_support": true,
        "enable_dns_hostnames": true,
        "owner_id": "123456789012",
        "main_route_table_id": "rtb-main",
        "default_security_group_id": "sg-default",
        "tags": tags("vpc", &[("Name", "Demo")]),
    }))
}

fn subnet_live() -> Attrs {
    attrs(json!({
        "vpc_id": "vpc-1",
        "cidr_block": "10.192.10.0/24",
        "availability_zone": "us-west-2b",
        "map_public_ip_on_launch": false,
        "arn": "arn:aws:ec2:us-west-2:123456789012:subnet/subnet-1",
        "availability_zone_id": "usw2-az2",
        "tags": tags("subnet", &[("Name", "Demo us-west-2b")]),
    }))
}

fn rt_live() -> Attrs {
    attrs(json!({ "vpc_id": "vpc-1", "owner_id": "123456789012", "tags": tags("rt", &[]) }))
}

fn rta_live() -> Attrs {
    attrs(json!({ "route_table_id": "rtb-1", "subnet_id": "subnet-1" }))
}

fn prior_resource(kind: &str, id: &str, live: Option<Attrs>, deps: &[&str]) -> PriorResource {
    PriorResource {
        kind: kind.to_string(),
        id: id.to_string(),
        live,
        dependencies: deps.iter().map(|d| d.to_string()).collect(),
        not_refreshed: None,
    }
}

/// The prior state after `BASE` was applied and nothing drifted.
fn applied() -> Prior {
    let mut prior = Prior::default();
    let r = &mut prior.resources;
    r.insert(
        "vpc".into(),
        prior_resource("aws.ec2.vpc", "vpc-1", Some(vpc_live()), &[]),
    );
    r.insert(
        "subnet".into(),
        prior_resource("aws.ec2.subnet", "subnet-1", Some(subnet_live()), &["vpc"]),
    );
    r.insert(
        "rt".into(),
        prior_resource("aws.ec2.route_table", "rtb-1", Some(rt_live()), &["vpc"]),
    );
    r.insert(
        "rta".into(),
        prior_resource(
            "aws.ec2.route_table_association",
            "rtbassoc-1",
            Some(rta_live()),
            &["rt", "subnet"],
        ),
    );
    prior.outputs.insert("vpc_id".into(), json!("vpc-1"));
    prior.outputs.insert("subnet_az".into(), json!("us-west-2b"));
    prior
}

fn actions(plan: &Plan) -> Vec<(&str, Action)> {
    plan.resources
        .iter()
        .map(|r| (r.address.as_str(), r.action))
        .collect()
}

fn change<'a>(plan: &'a Plan, address: &str) -> &'a ResourceChange {
    plan.change(address)
        .unwrap_or_else(|| panic!("no change for {address} in {plan:#?}"))
}

fn attr<'a>(rc: &'a ResourceChange, name: &str) -> &'a AttrChange {
    rc.changes
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no change of {name} in {rc:#?}"))
}

fn output<'a>(plan: &'a Plan, name: &str) -> &'a OutputChange {
    plan.outputs
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no output {name}"))
}

/// Asserts every delete comes before the deletes of its dependencies.
fn assert_dependents_first(plan: &Plan) {
    let deletes: Vec<&ResourceChange> = plan
        .resources
        .iter()
        .filter(|r| r.action == Action::Delete)
        .collect();
    for (i, r) in deletes.iter().enumerate() {
        for dep in &r.dependencies {
            let j = deletes.iter().position(|d| &d.address == dep);
            assert!(
                j.is_none_or(|j| j > i),
                "{} is deleted before its dependent {}",
                dep,
                r.address
            );
        }
    }
}

#[test]
fn empty_prior_creates_everything_in_dependency_order() {
    let plan = run_ok(BASE, &Prior::default());
    assert_eq!(
        actions(&plan),
        [
            ("vpc", Action::Create),
            ("rt", Action::Create),
            ("subnet", Action::Create),
            ("rta", Action::Create)
        ]
    );
    assert_eq!(
        plan.summary,
        Summary {
            create: 4,
            update: 0,
            replace: 0,
            delete: 0,
            unchanged: 0,
            outputs_changed: 2
        }
    );
    assert!(plan.has_changes());

    let subnet = change(&plan, "subnet");
    assert_eq!(subnet.id, None);
    assert_eq!(subnet.dependencies, ["vpc"]);
    // A reference to a resource not created yet is known only after apply.
    let vpc_id = attr(subnet, "vpc_id");
    assert!(vpc_id.after_unknown);
    assert_eq!((&vpc_id.before, &vpc_id.after), (&None, &None));
    // Known values, defaults and ownership tags are all there.
    assert_eq!(attr(subnet, "cidr_block").after, Some(json!("10.192.10.0/24")));
    assert_eq!(attr(subnet, "map_public_ip_on_launch").after, Some(json!(false)));
    assert_eq!(
        attr(subnet, "tags").after,
        Some(tags("subnet", &[("Name", "Demo us-west-2b")]))
    );
    assert!(
        subnet
            .changes
            .iter()
            .all(|c| c.before.is_none() && !c.forces_replacement)
    );
    let names: Vec<&str> = subnet.changes.iter().map(|c| c.name.as_str()).collect();
    assert!(names.is_sorted(), "{names:?}");

    let vpc = change(&plan, "vpc");
    assert_eq!(
        attr(vpc, "enable_dns_support").after,
        Some(json!(true)),
        "default filled in"
    );
    let rta = change(&plan, "rta");
    assert!(attr(rta, "route_table_id").after_unknown && attr(rta, "subnet_id").after_unknown);

    let text = render(&plan);
    assert!(text.contains("  + subnet (aws.ec2.subnet)\n"), "{text}");
    // Names are aligned to the longest one (`map_public_ip_on_launch`).
    assert!(
        text.contains(&format!("      {:23}  (known after apply)\n", "vpc_id")),
        "{text}"
    );
    assert!(
        text.contains("Plan: 4 to create, 0 to update, 0 to replace, 0 to delete."),
        "{text}"
    );
}

#[test]
fn az_index_picks_the_zone_by_sorted_position() {
    let plan = run_ok(BASE, &Prior::default());
    let subnet = change(&plan, "subnet");
    assert_eq!(attr(subnet, "availability_zone").after, Some(json!("us-west-2b")));
    // Also inside a string template.
    assert_eq!(
        attr(subnet, "tags").after.as_ref().unwrap()["Name"],
        json!("Demo us-west-2b")
    );
}

#[test]
fn az_index_out_of_range_names_the_resource() {
    let text = BASE.replace(
        "availability_zone = \"${az[1]}\"",
        "availability_zone = \"${az[2]}\"",
    );
    let err = run(&stack(&text), &Prior::default()).unwrap_err();
    let PlanError::Eval { address, source } = &err else {
        panic!("expected an evaluation error, got {err:?}");
    };
    assert_eq!(address, "subnet");
    assert_eq!(*source, EvalError::AzOutOfRange { index: 2, count: 2 });
    assert_eq!(
        err.to_string(),
        "subnet: `${az[2]}`: the region has only 2 available availability zones"
    );
}

#[test]
fn prior_equal_to_desired_is_a_no_op() {
    let plan = run_ok(BASE, &applied());
    assert!(
        plan.resources
            .iter()
            .all(|r| r.action == Action::NoOp && r.changes.is_empty()),
        "{plan:#?}"
    );
    assert_eq!(
        plan.summary,
        Summary {
            unchanged: 4,
            ..Summary::default()
        }
    );
    assert!(!plan.has_changes());
    assert_eq!(change(&plan, "subnet").id.as_deref(), Some("subnet-1"));
    assert!(plan.outputs.iter().all(|o| !o.is_change()), "{:#?}", plan.outputs);
    assert_eq!(output(&plan, "vpc_id").after, Some(json!("vpc-1")));
    assert_eq!(
        render(&plan),
        "No changes. The live resources match stack `plantest`.\n"
    );
}

#[test]
fn changed_in_place_attribute_is_an_update() {
    let mut prior = applied();
    prior.resources.get_mut("subnet").unwrap().live.as_mut().unwrap()["map_public_ip_on_launch"] =
        json!(true);
    let plan = run_ok(BASE, &prior);
    let subnet = change(&plan, "subnet");
    assert_eq!(subnet.action, Action::Update);
    assert!(subnet.replaced_because.is_empty());
    assert_eq!(subnet.changes.len(), 1, "{subnet:#?}");
    let c = attr(subnet, "map_public_ip_on_launch");
    assert_eq!((&c.before, &c.after), (&Some(json!(true)), &Some(json!(false))));
    assert!(!c.after_unknown && !c.forces_replacement);
    // The subnet keeps its id, so nothing that refers to it changes.
    assert_eq!(change(&plan, "rta").action, Action::NoOp);
    assert_eq!(
        plan.summary,
        Summary {
            update: 1,
            unchanged: 3,
            ..Summary::default()
        }
    );
}

#[test]
fn changed_force_new_attribute_replaces_and_dependents_follow() {
    let text = BASE.replace("\"10.192.10.0/24\"", "\"10.192.11.0/24\"");
    let plan = run_ok(&text, &applied());
    let subnet = change(&plan, "subnet");
    assert_eq!(subnet.action, Action::Replace);
    assert_eq!(subnet.replaced_because, ["cidr_block"]);
    assert_eq!(subnet.id.as_deref(), Some("subnet-1"));
    let c = attr(subnet, "cidr_block");
    assert_eq!(
        (&c.before, &c.after),
        (&Some(json!("10.192.10.0/24")), &Some(json!("10.192.11.0/24")))
    );
    assert!(c.forces_replacement);

    // The new subnet's id is unknown, and the association's subnet_id forces
    // replacement; its route table is unchanged.
    let rta = change(&plan, "rta");
    assert_eq!(rta.action, Action::Replace);
    assert_eq!(rta.replaced_because, ["subnet_id"]);
    let c = attr(rta, "subnet_id");
    assert_eq!(c.before, Some(json!("subnet-1")));
    assert!(c.after_unknown && c.after.is_none() && c.forces_replacement);
    assert!(rta.changes.iter().all(|c| c.name != "route_table_id"), "{rta:#?}");

    assert_eq!(change(&plan, "vpc").action, Action::NoOp);
    assert_eq!(change(&plan, "rt").action, Action::NoOp);
    assert_eq!(
        plan.summary,
        Summary {
            replace: 2,
            unchanged: 2,
            ..Summary::default()
        }
    );
    // The subnet's AZ is unchanged and known, so the output does not change.
    assert!(!output(&plan, "subnet_az").is_change());
}

#[test]
fn replacing_a_resource_replaces_everything_with_force_new_references_to_it() {
    let text = BASE.replace("\"10.192.0.0/16\"", "\"10.193.0.0/16\"");
    let plan = run_ok(&text, &applied());
    assert_eq!(
        actions(&plan),
        [
            ("vpc", Action::Replace),
            ("rt", Action::Replace),
            ("subnet", Action::Replace),
            ("rta", Action::Replace)
        ]
    );
    assert_eq!(change(&plan, "subnet").replaced_because, ["vpc_id"]);
    assert_eq!(change(&plan, "rt").replaced_because, ["vpc_id"]);
    // The association is replaced for its subnet; its route table id is
    // unknown too but changes in place.
    let rta = change(&plan, "rta");
    assert_eq!(rta.replaced_because, ["subnet_id"]);
    assert!(attr(rta, "route_table_id").after_unknown && !attr(rta, "route_table_id").forces_replacement);
    let vpc_id = output(&plan, "vpc_id");
    assert!(vpc_id.after_unknown && vpc_id.is_change());
}

#[test]
fn resource_deleted_out_of_band_is_created_again() {
    let mut prior = applied();
    prior.resources.get_mut("subnet").unwrap().live = None;
    let plan = run_ok(BASE, &prior);
    let subnet = change(&plan, "subnet");
    assert_eq!(subnet.action, Action::Create);
    assert_eq!(subnet.id, None);
    assert_eq!(
        subnet.reason.as_deref(),
        Some("subnet-1 was deleted outside meshform")
    );
    assert!(subnet.changes.iter().all(|c| c.before.is_none()));
    // Its VPC is unchanged, so the VPC id is known.
    assert_eq!(attr(subnet, "vpc_id").after, Some(json!("vpc-1")));
    assert_eq!(change(&plan, "rta").action, Action::Replace);
    let text = render(&plan);
    assert!(
        text.contains("  + subnet (aws.ec2.subnet)\n      # subnet-1 was deleted outside meshform\n"),
        "{text}"
    );
}

#[test]
fn resources_no_longer_in_the_stack_are_deleted_dependents_first() {
    let mut prior = applied();
    let r = &mut prior.resources;
    r.insert(
        "igw".into(),
        prior_resource("aws.ec2.internet_gateway", "igw-1", Some(attrs(json!({}))), &[]),
    );
    r.insert(
        "igw_attachment".into(),
        prior_resource(
            "aws.ec2.internet_gateway_attachment",
            "igw-1|vpc-1",
            Some(attrs(json!({}))),
            &["igw", "vpc"],
        ),
    );
    // Already gone from the cloud: still deleted from state.
    r.insert(
        "old_rta".into(),
        prior_resource(
            "aws.ec2.route_table_association",
            "rtbassoc-2",
            None,
            &["old_rt", "subnet"],
        ),
    );
    r.insert(
        "old_rt".into(),
        prior_resource("aws.ec2.route_table", "rtb-2", Some(attrs(json!({}))), &["vpc"]),
    );
    let plan = run_ok(BASE, &prior);

    assert_eq!(
        actions(&plan),
        [
            ("vpc", Action::NoOp),
            ("rt", Action::NoOp),
            ("subnet", Action::NoOp),
            ("rta", Action::NoOp),
            ("old_rta", Action::Delete),
            ("old_rt", Action::Delete),
            ("igw_attachment", Action::Delete),
            ("igw", Action::Delete),
        ]
    );
    assert_dependents_first(&plan);
    let old_rta = change(&plan, "old_rta");
    assert_eq!(old_rta.id.as_deref(), Some("rtbassoc-2"));
    assert_eq!(old_rta.kind, "aws.ec2.route_table_association");
    assert_eq!(old_rta.dependencies, ["old_rt", "subnet"]);
    assert_eq!(
        old_rta.reason.as_deref(),
        Some("already deleted outside meshform")
    );
    assert_eq!(change(&plan, "igw").reason, None);
    assert_eq!(
        plan.summary,
        Summary {
            delete: 4,
            unchanged: 4,
            ..Summary::default()
        }
    );
}

#[test]
fn tag_drift_updates_tags_only() {
    let mut prior = applied();
    let live = prior.resources.get_mut("vpc").unwrap().live.as_mut().unwrap();
    live["tags"]["Name"] = json!("Renamed");
    live["tags"]["Owner"] = json!("someone");
    let plan = run_ok(BASE, &prior);
    let vpc = change(&plan, "vpc");
    assert_eq!(vpc.action, Action::Update);
    assert_eq!(vpc.changes.len(), 1, "{vpc:#?}");
    let c = attr(vpc, "tags");
    assert_eq!(c.after, Some(tags("vpc", &[("Name", "Demo")])));
    assert_eq!(
        c.before,
        Some(tags("vpc", &[("Name", "Renamed"), ("Owner", "someone")]))
    );
    assert!(!c.forces_replacement);
    // The VPC keeps its id: nothing else changes.
    assert_eq!(
        plan.summary,
        Summary {
            update: 1,
            unchanged: 3,
            ..Summary::default()
        }
    );

    // Losing an ownership tag is drift too.
    let mut prior = applied();
    let live = prior.resources.get_mut("rt").unwrap().live.as_mut().unwrap();
    live["tags"].as_object_mut().unwrap().remove("meshform:address");
    let plan = run_ok(BASE, &prior);
    let rt = change(&plan, "rt");
    assert_eq!((rt.action, rt.changes.len()), (Action::Update, 1));
    assert_eq!(attr(rt, "tags").after, Some(tags("rt", &[])));
}

const POLICY_STACK: &str = r#"
[stack]
name = "plantest"
region = "us-west-2"

[resource.policy]
type = "aws.iam.policy"
name = "NodesSDPolicy"
policy = '''
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["servicediscovery:UpdateInstanceCustomHealthStatus"], "Resource": "*"}
  ]
}
'''

[output.arn]
value = "${policy.arn}"
"#;

fn policy_prior(document: Value) -> Prior {
    let arn = "arn:aws:iam::123456789012:policy/NodesSDPolicy";
    let live = attrs(json!({
        "name": "NodesSDPolicy",
        "path": "/",
        "policy": document,
        "tags": tags("policy", &[]),
        "arn": arn,
        "policy_id": "ANPA0000000000000001",
        "default_version_id": "v1",
    }));
    let mut prior = Prior::default();
    prior.resources.insert(
        "policy".into(),
        prior_resource("aws.iam.policy", arn, Some(live), &[]),
    );
    prior.outputs.insert("arn".into(), json!(arn));
    prior
}

#[test]
fn policy_json_string_equals_the_parsed_live_document() {
    let live_doc = json!({
        "Statement": [{
            "Action": ["servicediscovery:UpdateInstanceCustomHealthStatus"],
            "Effect": "Allow",
            "Resource": "*",
        }],
        "Version": "2012-10-17",
    });
    let plan = run_ok(POLICY_STACK, &policy_prior(live_doc));
    assert_eq!(actions(&plan), [("policy", Action::NoOp)]);
    assert!(!plan.has_changes(), "{plan:#?}");
    // The output of a computed attribute comes from the live resource.
    assert_eq!(
        output(&plan, "arn").after,
        Some(json!("arn:aws:iam::123456789012:policy/NodesSDPolicy"))
    );

    // A changed document is an in-place update, shown parsed.
    let other = json!({ "Version": "2012-10-17", "Statement": [] });
    let plan = run_ok(POLICY_STACK, &policy_prior(other.clone()));
    let policy = change(&plan, "policy");
    assert_eq!(policy.action, Action::Update);
    let c = attr(policy, "policy");
    assert_eq!(c.before, Some(other));
    assert_eq!(
        c.after.as_ref().unwrap()["Statement"][0]["Effect"],
        json!("Allow")
    );
}

#[test]
fn security_group_rules_compare_as_a_set_with_defaults() {
    let text = r#"
[stack]
name = "plantest"
region = "us-west-2"

[resource.web]
type = "aws.ec2.security_group"
name = "web"
vpc_id = "vpc-1"
ingress = [
  { protocol = "tcp", from_port = 443, to_port = 443, cidr_blocks = ["10.0.0.0/8", "0.0.0.0/0"] },
  { protocol = "tcp", from_port = 80, to_port = 80, cidr_blocks = ["0.0.0.0/0"] },
]
"#;
    // As read returns them: every key present, sorted.
    let rule = |port: i64, blocks: &[&str]| json!({ "protocol": "tcp", "from_port": port, "to_port": port, "cidr_blocks": blocks, "description": "" });
    let mut ingress = vec![rule(443, &["0.0.0.0/0", "10.0.0.0/8"]), rule(80, &["0.0.0.0/0"])];
    ingress.sort_by_key(|v| v.to_string());
    let live = attrs(json!({
        "name": "web",
        "description": "Managed by meshform",
        "vpc_id": "vpc-1",
        "ingress": ingress,
        "egress": [rule(0, &["0.0.0.0/0"])],
        "arn": "arn:aws:ec2:us-west-2:123456789012:security-group/sg-1",
        "owner_id": "123456789012",
        "tags": tags("web", &[]),
    }));
    let mut prior = Prior::default();
    prior.resources.insert(
        "web".into(),
        prior_resource("aws.ec2.security_group", "sg-1", Some(live), &[]),
    );
    let plan = run_ok(text, &prior);
    // Egress is not configured, so it is not managed.
    assert_eq!(actions(&plan), [("web", Action::NoOp)], "{plan:#?}");
}

#[test]
fn changed_type_replaces() {
    let mut prior = applied();
    prior.resources.get_mut("rt").unwrap().kind = "aws.ec2.internet_gateway".into();
    let plan = run_ok(BASE, &prior);
    let rt = change(&plan, "rt");
    assert_eq!(rt.action, Action::Replace);
    assert_eq!(rt.replaced_because, ["type"]);
    assert_eq!(
        rt.reason.as_deref(),
        Some("type changes from aws.ec2.internet_gateway to aws.ec2.route_table")
    );
    assert_eq!(
        change(&plan, "rta").action,
        Action::Update,
        "route_table_id changes in place"
    );
}

#[test]
fn outputs_unknown_on_first_plan_and_unchanged_when_equal() {
    let first = run_ok(BASE, &Prior::default());
    let vpc_id = output(&first, "vpc_id");
    assert!(vpc_id.after_unknown && vpc_id.after.is_none() && vpc_id.before.is_none());
    // A configured attribute of a resource still to be created is known.
    let az = output(&first, "subnet_az");
    assert_eq!(
        (az.after.clone(), az.after_unknown),
        (Some(json!("us-west-2b")), false)
    );
    let text = render(&first);
    assert!(text.contains("Changes to outputs:\n"), "{text}");
    assert!(
        text.contains("    vpc_id = (none) -> (known after apply)\n"),
        "{text}"
    );

    let same = run_ok(BASE, &applied());
    assert!(same.outputs.iter().all(|o| !o.is_change()));
    assert_eq!(same.summary.outputs_changed, 0);

    // Only an output differs: still a change to apply. A removed output goes.
    let mut prior = applied();
    prior.outputs.insert("vpc_id".into(), json!("vpc-old"));
    prior.outputs.insert("gone".into(), json!("x"));
    let plan = run_ok(BASE, &prior);
    assert_eq!(
        plan.summary,
        Summary {
            unchanged: 4,
            outputs_changed: 2,
            ..Summary::default()
        }
    );
    assert!(plan.has_changes());
    let gone = output(&plan, "gone");
    assert_eq!(
        (&gone.before, &gone.after, gone.after_unknown),
        (&Some(json!("x")), &None, false)
    );
    let text = render(&plan);
    assert!(text.contains("    vpc_id = \"vpc-old\" -> \"vpc-1\"\n"), "{text}");
    assert!(text.contains("    gone = \"x\" -> (none)\n"), "{text}");
}

#[test]
fn plan_destroy_deletes_everything_dependents_first() {
    let prior = applied();
    let plan = plan_destroy(STACK, "us-west-2", &prior);
    assert!(plan.destroy);
    assert_eq!(
        actions(&plan),
        [
            ("rta", Action::Delete),
            ("subnet", Action::Delete),
            ("rt", Action::Delete),
            ("vpc", Action::Delete)
        ]
    );
    assert_dependents_first(&plan);
    assert_eq!(change(&plan, "subnet").id.as_deref(), Some("subnet-1"));
    assert_eq!(
        plan.summary,
        Summary {
            delete: 4,
            outputs_changed: 2,
            ..Summary::default()
        }
    );
    assert!(
        plan.outputs
            .iter()
            .all(|o| o.before.is_some() && o.after.is_none())
    );
    let text = render(&plan);
    assert!(
        text.contains("  - rta (aws.ec2.route_table_association) rtbassoc-1\n"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 0 to create, 0 to update, 0 to replace, 4 to delete."),
        "{text}"
    );

    let empty = plan_destroy(STACK, "us-west-2", &Prior::default());
    assert!(!empty.has_changes());
}

/// A plan with every action: vpc unchanged, subnet replaced (cidr), rt
/// updated (tags), rta replaced (follows subnet), igw deleted, repo created.
fn mixed_plan() -> Plan {
    let text = format!(
        "{}\n[resource.repo]\ntype = \"aws.ecr.repository\"\nname = \"app\"\n",
        BASE.replace("\"10.192.10.0/24\"", "\"10.192.11.0/24\"")
    );
    let mut prior = applied();
    prior.resources.get_mut("rt").unwrap().live.as_mut().unwrap()["tags"]["Extra"] = json!("1");
    prior.resources.insert(
        "igw".into(),
        prior_resource("aws.ec2.internet_gateway", "igw-1", Some(Attrs::new()), &[]),
    );
    run_ok(&text, &prior)
}

#[test]
fn human_render_shows_each_action_and_a_summary() {
    let plan = mixed_plan();
    assert_eq!(
        plan.summary,
        Summary {
            create: 1,
            update: 1,
            replace: 2,
            delete: 1,
            unchanged: 1,
            outputs_changed: 0
        }
    );
    let text = render(&plan);
    assert!(
        text.starts_with("meshform will perform these actions on stack `plantest` (us-west-2):\n"),
        "{text}"
    );
    for line in [
        "  + repo (aws.ecr.repository)\n",
        &format!("      {:20}  \"app\"\n", "name"),
        "      image_tag_mutability  \"MUTABLE\"\n",
        "  ~ rt (aws.ec2.route_table) rtb-1\n",
        "  -/+ subnet (aws.ec2.subnet) subnet-1  must be replaced (destroy before create): cidr_block cannot change in place\n",
        "      cidr_block  \"10.192.10.0/24\" -> \"10.192.11.0/24\"   # forces replacement\n",
        "  -/+ rta (aws.ec2.route_table_association) rtbassoc-1  must be replaced (destroy before create): subnet_id cannot change in place\n",
        "      subnet_id  \"subnet-1\" -> (known after apply)   # forces replacement\n",
        "  - igw (aws.ec2.internet_gateway) igw-1\n",
        "\nPlan: 1 to create, 1 to update, 2 to replace, 1 to delete.\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // Unchanged resources are not listed.
    assert!(!text.contains(" vpc (aws.ec2.vpc)"), "{text}");
    assert!(text.ends_with("to delete.\n"), "{text}");
}

#[test]
fn plan_json_round_trips_with_a_format_version() {
    let plan = mixed_plan();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["format_version"], json!(4));
    assert_eq!(PLAN_FORMAT_VERSION, 4);
    assert_eq!(json["partial"], json!(false), "a whole plan says so");
    assert_eq!(json["targets"], json!([]));
    assert_eq!(json["stack"], json!("plantest"));
    assert_eq!(json["destroy"], json!(false));
    let subnet = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "subnet")
        .unwrap();
    assert_eq!(subnet["type"], json!("aws.ec2.subnet"));
    assert_eq!(subnet["action"], json!("replace"));
    assert_eq!(subnet["replaced_because"], json!(["cidr_block"]));
    let vpc = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "vpc")
        .unwrap();
    assert_eq!(vpc["action"], json!("no_op"));
    assert_eq!(json["summary"]["replace"], json!(2));

    let text = serde_json::to_string_pretty(&plan).unwrap();
    let back: Plan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn planning_is_deterministic() {
    let a = mixed_plan();
    let b = mixed_plan();
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert_eq!(render(&a), render(&b));
}
