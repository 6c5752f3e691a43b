//! Make-before-break between Kubernetes objects in one apply, through the
//! `meshform` binary against the fake API server: a DestinationRule's
//! subsets and the VirtualService routing to them change together, and at
//! no point does the route name a subset the rule lacks. Checked by
//! replaying every write the server received, in order.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::cli::{expect_code, stdout};
use crate::support::walkthrough::Walkthrough;

const CLUSTER: &str =
    r#"cluster = { kubeconfig_context = "unused: MESHFORM_KUBE_SERVER points at the fake" }"#;

/// The CRDs, the namespace, the rule and the route; the subsets present
/// and the weights are variables.
fn stack_text() -> String {
    format!(
        r#"
[stack]
name = "mbb"
region = "us-west-2"

[vars.v2]
type = "bool"
default = false

[vars.v3]
type = "bool"
default = false

[vars.w1]
type = "integer"
default = 100

[vars.w2]
type = "integer"
default = 0

[vars.w3]
type = "integer"
default = 0

[resource.crds]
type = "kube.manifest"
{CLUSTER}
yaml = '${{file("crds.yaml")}}'

[resource.namespace]
type = "kube.namespace"
{CLUSTER}
name = "demo"

[resource.rules]
type = "kube.manifest"
{CLUSTER}
yaml = '${{file("rules.yaml")}}'
depends_on = ["crds", "namespace"]

# The route names the rule's subsets: it depends on the rule.
[resource.route]
type = "kube.manifest"
{CLUSTER}
yaml = '${{file("route.yaml")}}'
depends_on = ["rules"]
"#
    )
}

fn crd(plural: &str, kind: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.networking.istio.io
spec:
  group: networking.istio.io
  names:
    kind: {kind}
    plural: {plural}
    singular: {singular}
    listKind: {kind}List
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#,
        singular = kind.to_lowercase()
    )
}

const RULES: &str = r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: demo
spec:
  host: reviews
  subsets:
    - name: v1
      labels:
        version: v1
${if var.v2}    - name: v2
      labels:
        version: v2
${end}${if var.v3}    - name: v3
      labels:
        version: v3
${end}"#;

const ROUTE: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: demo
spec:
  hosts:
    - reviews
  http:
    - route:
        - destination:
            host: reviews
            subset: v1
          weight: ${var.w1}
${if var.v2}        - destination:
            host: reviews
            subset: v2
          weight: ${var.w2}
${end}${if var.v3}        - destination:
            host: reviews
            subset: v3
          weight: ${var.w3}
${end}"#;

/// The subsets a DestinationRule body declares, or a VirtualService body
/// routes to.
pub(crate) fn subsets(body: &Value) -> BTreeSet<String> {
    let names = |items: Option<&Value>, field: &str| -> BTreeSet<String> {
        items
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|i| i.pointer(field).and_then(Value::as_str).map(str::to_string))
            .collect()
    };
    match body["kind"].as_str() {
        Some("DestinationRule") => names(body.pointer("/spec/subsets"), "/name"),
        _ => body["spec"]["http"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|h| names(h.get("route"), "/destination/subset"))
            .collect(),
    }
}

/// The writes (not dry runs) to the DestinationRule and the
/// VirtualService named `reviews` since request `from`, in order: (kind,
/// subsets).
pub(crate) fn writes(w: &Walkthrough, from: usize) -> Vec<(String, BTreeSet<String>)> {
    w.kube
        .requests()
        .into_iter()
        .skip(from)
        .filter(|r| !r.dry_run && (200..300).contains(&r.status))
        .filter(|r| matches!(r.method.as_str(), "PATCH" | "PUT" | "POST"))
        .filter(|r| r.path.contains("/destinationrules/") || r.path.contains("/virtualservices/"))
        .filter(|r| r.path.ends_with("/reviews"))
        .filter_map(|r| {
            let body = r.body?;
            Some((body["kind"].as_str()?.to_string(), subsets(&body)))
        })
        .collect()
}

/// Replays `writes` from the subsets the rule and the route had: no route
/// ever names a subset the rule lacks at that moment.
pub(crate) fn assert_never_dangling(
    mut rule: BTreeSet<String>,
    mut route: BTreeSet<String>,
    writes: &[(String, BTreeSet<String>)],
) {
    for (kind, names) in writes {
        match kind.as_str() {
            "DestinationRule" => rule = names.clone(),
            _ => route = names.clone(),
        }
        assert!(
            route.is_subset(&rule),
            "after a {kind} write the route names {route:?} but the rule has {rule:?}; writes: {writes:?}"
        );
    }
}

pub(crate) fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// How the plan JSON orders the update of `address`: (contract_after,
/// expand_first).
pub(crate) fn update_order(plan: &Value, address: &str) -> (Vec<String>, bool) {
    let rules = plan["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|c| c["address"] == address))
        .expect("the resource in the plan");
    let after = rules["contract_after"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    (after, rules["expand_first"].as_bool().unwrap_or(false))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subsets_exist_before_routes_name_them_and_go_after_routes_stop() {
    let w = Walkthrough::start("mbb");
    w.dir.write(
        "crds.yaml",
        &format!(
            "{}---\n{}",
            crd("destinationrules", "DestinationRule"),
            crd("virtualservices", "VirtualService")
        ),
    );
    w.dir.write("rules.yaml", RULES);
    w.dir.write("route.yaml", ROUTE);
    let stack = w.dir.write("mbb.toml", &stack_text());
    let stack = stack.to_str().unwrap();
    let apply = |vars: &[&str]| {
        let mut args = vec!["apply", stack, "--auto-approve"];
        for v in vars {
            args.extend(["--var", v]);
        }
        expect_code(w.meshform(&args), 0);
    };
    let plan_json = |vars: &[&str]| -> Value {
        let mut args = vec!["plan", stack, "--json"];
        for v in vars {
            args.extend(["--var", v]);
        }
        let out = expect_code(w.meshform(&args), 0);
        serde_json::from_str(&stdout(&out)).expect("plan JSON")
    };

    apply(&[]);

    // v3 comes in at 50/50: the subset is made before the route names it
    // (plain dependency order; nothing is taken away).
    let step = ["v3=true", "w1=50", "w3=50"];
    assert_eq!(update_order(&plan_json(&step), "rules"), (vec![], false));
    let from = w.kube.requests().len();
    apply(&step);
    let seen = writes(&w, from);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_never_dangling(set(&["v1"]), set(&["v1"]), &seen);

    // Traffic moves from v3 to v2 in one apply: the rule gains v2 while
    // keeping v3, the route moves, then the rule drops v3.
    let step = ["v2=true", "w1=50", "w2=50"];
    assert_eq!(
        update_order(&plan_json(&step), "rules"),
        (vec!["route".to_string()], true)
    );
    let from = w.kube.requests().len();
    apply(&step);
    let seen = writes(&w, from);
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["DestinationRule", "VirtualService", "DestinationRule"],
        "{seen:?}"
    );
    assert_eq!(seen[0].1, set(&["v1", "v2", "v3"]));
    assert_never_dangling(set(&["v1", "v3"]), set(&["v1", "v3"]), &seen);

    // v2 goes, route and subset in one apply: the route stops naming it
    // before the subset goes, with no interim write.
    assert_eq!(
        update_order(&plan_json(&[]), "rules"),
        (vec!["route".to_string()], false)
    );
    let from = w.kube.requests().len();
    apply(&[]);
    let seen = writes(&w, from);
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["VirtualService", "DestinationRule"], "{seen:?}");
    assert_never_dangling(set(&["v1", "v2"]), set(&["v1", "v2"]), &seen);

    let rule = w
        .kube
        .object(
            "networking.istio.io/v1",
            "destinationrules",
            Some("demo"),
            "reviews",
        )
        .expect("the rule");
    assert_eq!(subsets(&rule), set(&["v1"]));
    expect_code(w.meshform(&["plan", stack, "--detailed-exitcode"]), 0);
    expect_code(w.meshform(&["destroy", stack, "--auto-approve"]), 0);
}
