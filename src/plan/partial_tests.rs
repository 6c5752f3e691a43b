//! Partly known values in plans: a manifest whose image names a repository
//! created (or replaced) in the same apply shows its known objects and
//! marks only the image unknown, in the JSON plan and the human one.

use std::path::Path;

use serde_json::json;

use super::*;
use crate::config::{LoadOptions, load_str};
use crate::graph::ResourceGraph;
use crate::provider::RegionFacts;
use crate::{Attrs, Value};

const TEXT: &str = r#"
[stack]
name = "partial"
region = "us-west-2"

[vars]
repo = "app"

[resource.repo]
type = "aws.ecr.repository"
name = "${var.repo}"

[resource.app]
type = "kube.manifest"
cluster = { kubeconfig_context = "test" }
yaml = '''
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: default
spec:
  template:
    spec:
      containers:
        - name: app
          image: ${repo.repository_uri}:latest
---
apiVersion: v1
kind: Service
metadata:
  name: app
  namespace: default
spec:
  ports:
    - port: 80
'''

[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "10.0.0.0/16"

[resource.subnet]
type = "aws.ec2.subnet"
vpc_id = "${vpc.id}"
cidr_block = "10.0.1.0/24"
availability_zone = "${az[0]}"
tags = { Name = "in ${vpc.id}", Env = "dev" }
"#;

const IMAGE: &str = "/0/spec/template/spec/containers/0/image";

fn plan_with(vars: &[(&str, &str)], prior: &Prior) -> Plan {
    let options = LoadOptions {
        vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let stack = load_str(Path::new("t.toml"), TEXT.to_string(), &options)
        .unwrap_or_else(|e| panic!("{}", e.messages()));
    let graph = ResourceGraph::build(&stack).unwrap();
    let facts = RegionFacts {
        region: "us-west-2".into(),
        azs: vec!["us-west-2a".into()],
    };
    plan(&stack, &graph, prior, &facts).unwrap()
}

fn yaml_change(plan: &Plan) -> &AttrChange {
    plan.change("app")
        .unwrap()
        .changes
        .iter()
        .find(|c| c.name == "yaml")
        .unwrap()
}

#[test]
fn a_created_manifest_shows_its_objects_and_only_the_image_unknown() {
    let plan = plan_with(&[], &Prior::default());
    let c = yaml_change(&plan);
    // As a whole the value is still unknown until apply...
    assert!(c.after_unknown);
    assert_eq!(c.after, None);
    // ...but every object and field but the image is known.
    assert_eq!(c.after_unknown_paths, [IMAGE]);
    let partial = c.after_partial.as_ref().expect("a partial value");
    assert_eq!(partial.pointer(IMAGE), Some(&Value::Null));
    assert_eq!(partial[0]["kind"], "Deployment");
    assert_eq!(
        partial[0]["spec"]["template"]["spec"]["containers"][0]["name"],
        "app"
    );
    assert_eq!(partial[1]["kind"], "Service");
    assert_eq!(partial[1]["spec"]["ports"][0]["port"], 80);

    // A reference that is the whole value has nothing known to show.
    let vpc_id = plan
        .change("subnet")
        .unwrap()
        .changes
        .iter()
        .find(|c| c.name == "vpc_id")
        .unwrap();
    assert!(vpc_id.after_unknown && vpc_id.after_partial.is_none());
    // Tags: the known tag and the ownership tags, the unknown one marked.
    let tags = plan
        .change("subnet")
        .unwrap()
        .changes
        .iter()
        .find(|c| c.name == "tags")
        .unwrap();
    assert_eq!(tags.after_unknown_paths, ["/Name"]);
    let known = tags.after_partial.as_ref().unwrap();
    assert_eq!(known["Env"], "dev");
    assert_eq!(known["meshform:address"], "subnet");

    // The human plan lists the unknown leaf by its path, and no other
    // line of the manifest says it is unknown.
    let text = render(&plan);
    let app_lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("+ app (kube.manifest)"))
        .skip(1)
        .take_while(|l| l.starts_with("      "))
        .collect();
    let unknown: Vec<&&str> = app_lines
        .iter()
        .filter(|l| l.contains("(known after apply)"))
        .collect();
    assert_eq!(unknown.len(), 1, "{text}");
    assert!(
        unknown[0]
            .trim_start()
            .starts_with("yaml[0].spec.template.spec.containers[0].image "),
        "{text}"
    );
    assert!(
        app_lines
            .iter()
            .any(|l| l.trim_start().starts_with("yaml ") && l.contains("Deployment")),
        "{text}"
    );
}

fn live_manifest(image: &str) -> Attrs {
    json!({
        "cluster": { "kubeconfig_context": "test" },
        "wait_timeout_seconds": 600,
        "yaml": [
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "app", "namespace": "default"},
             "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}},
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "app", "namespace": "default"},
             "spec": {"ports": [{"port": 80}]}}
        ],
    })
    .as_object()
    .unwrap()
    .clone()
}

#[test]
fn an_updated_manifest_marks_only_the_unknown_image() {
    // The repository is renamed (replaced: a new URI), the manifest stays.
    let mut prior = Prior::default();
    let uri = "123456789012.dkr.ecr.us-west-2.amazonaws.com/app";
    prior.resources.insert(
        "repo".into(),
        PriorResource {
            kind: "aws.ecr.repository".into(),
            id: "app".into(),
            live: Some(
                json!({"name": "app", "repository_uri": uri, "arn": "arn:x", "registry_id": "1",
                       "image_tag_mutability": "MUTABLE", "scan_on_push": false,
                       "tags": {"meshform:stack": "partial", "meshform:address": "repo"}})
                .as_object()
                .unwrap()
                .clone(),
            ),
            dependencies: vec![],
            not_refreshed: None,
        },
    );
    prior.resources.insert(
        "app".into(),
        PriorResource {
            kind: "kube.manifest".into(),
            id: "test/apps/v1/Deployment/default/app".into(),
            live: Some(live_manifest(&format!("{uri}:latest"))),
            dependencies: vec!["repo".into()],
            not_refreshed: None,
        },
    );
    let plan = plan_with(&[("repo", "app2")], &prior);
    assert_eq!(plan.change("repo").unwrap().action, Action::Replace);
    let app = plan.change("app").unwrap();
    assert_eq!(app.action, Action::Update);
    let c = yaml_change(&plan);
    assert_eq!(c.after_unknown_paths, [IMAGE]);
    let text = render(&plan);
    let app_lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("~ app (kube.manifest)"))
        .skip(1)
        .take_while(|l| l.starts_with("      "))
        .collect();
    assert_eq!(app_lines.len(), 1, "only the image changes:\n{text}");
    assert!(
        app_lines[0].contains("yaml[0].spec.template.spec.containers[0].image")
            && app_lines[0].contains(&format!("\"{uri}:latest\" -> (known after apply)")),
        "{text}"
    );
}

#[test]
fn plans_without_the_partial_fields_still_read() {
    let old = json!({
        "name": "subnet_id", "before": null, "after": null,
        "after_unknown": true, "forces_replacement": false
    });
    let c: AttrChange = serde_json::from_value(old).unwrap();
    assert!(c.after_partial.is_none() && c.after_unknown_paths.is_empty());
    // ...and a plan without partial values serialises as before.
    let text = serde_json::to_string(&c).unwrap();
    assert!(
        !text.contains("after_partial") && !text.contains("after_unknown_paths"),
        "{text}"
    );
}
