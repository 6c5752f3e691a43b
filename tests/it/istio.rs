//! The Istio stacks: `stacks/istio-bookinfo.toml` (Istio from its charts,
//! bookinfo, the reviews split as variables, outputs from the ingress load
//! balancer) and `stacks/yelb-istio.toml` (the walkthrough on Istio). AWS is
//! moto; the cluster is the fake API server of testsupport/fake-kube (a
//! fake, not Kubernetes: it stores webhook configurations and never calls
//! them, runs no pods, and gives LoadBalancer Services a made-up hostname);
//! helm is the real Helm 4 installing the chart fixtures
//! tests/data/charts/{istio-base,istiod,istio-gateway} from a local chart
//! repository in place of Istio's.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::in_cluster::{changes, plan_lines_for};
use crate::make_before_break::{assert_never_dangling, set, update_order, writes};
use crate::support::cli::{expect_code, stderr, stdout};
use crate::support::inventory::{Inventory, WalkthroughExtras};
use crate::support::walkthrough::Walkthrough;
use fake_kube::LoggedRequest;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, PostParams};

const ISTIO_REPO: &str = "https://istio-release.storage.googleapis.com/charts";
const CHARTS: [&str; 3] = ["istio-base", "istiod", "istio-gateway"];
const NET: &str = "networking.istio.io/v1";
const CRD_DELAY: Duration = Duration::from_millis(300);

/// The 15 CRDs of Istio's base chart.
const ISTIO_CRDS: [&str; 15] = [
    "destinationrules.networking.istio.io",
    "envoyfilters.networking.istio.io",
    "gateways.networking.istio.io",
    "proxyconfigs.networking.istio.io",
    "serviceentries.networking.istio.io",
    "sidecars.networking.istio.io",
    "virtualservices.networking.istio.io",
    "workloadentries.networking.istio.io",
    "workloadgroups.networking.istio.io",
    "authorizationpolicies.security.istio.io",
    "peerauthentications.security.istio.io",
    "requestauthentications.security.istio.io",
    "telemetries.telemetry.istio.io",
    "wasmplugins.extensions.istio.io",
    "trafficextensions.extensions.istio.io",
];

fn start(name: &str, stack: &str) -> Walkthrough {
    let w = Walkthrough::start_stack(name, stack, &CHARTS, ISTIO_REPO);
    w.kube.set_crd_establish_delay(CRD_DELAY);
    w.kube.set_auto_complete_load_balancers(true);
    w
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// `(subset, weight)` of a VirtualService's first HTTP route.
fn route_weights(w: &Walkthrough, ns: &str, name: &str) -> Vec<(String, i64)> {
    let vs = w
        .kube
        .object(NET, "virtualservices", Some(ns), name)
        .unwrap_or_else(|| panic!("VirtualService {ns}/{name}"));
    vs["spec"]["http"][0]["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["destination"]["subset"].as_str().unwrap().to_string(),
                r["weight"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn subsets(w: &Walkthrough, ns: &str, name: &str) -> Vec<(String, String)> {
    let dr = w
        .kube
        .object(NET, "destinationrules", Some(ns), name)
        .unwrap_or_else(|| panic!("DestinationRule {ns}/{name}"));
    dr["spec"]["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["labels"]["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn with_vars<'a>(args: &[&'a str], vars: &[&'a str]) -> Vec<&'a str> {
    [args, vars].concat()
}

/// A write that changed the store (not a dry run, answered 2xx).
fn is_write(r: &LoggedRequest) -> bool {
    matches!(r.method.as_str(), "POST" | "PATCH" | "PUT") && !r.dry_run && r.status < 300
}

/// When the first successful write to an object path containing all of
/// `needles` happened.
fn first_write(requests: &[LoggedRequest], needles: &[&str]) -> Instant {
    requests
        .iter()
        .find(|r| is_write(r) && needles.iter().all(|n| r.path.contains(n)))
        .map(|r| r.at)
        .unwrap_or_else(|| panic!("no write to {needles:?}"))
}

/// When each Istio CRD was first written (helm applies them server-side:
/// PATCH to the CRD's path; a POST names it in its body).
fn crd_writes(requests: &[LoggedRequest]) -> Vec<Instant> {
    ISTIO_CRDS
        .iter()
        .map(|crd| {
            requests
                .iter()
                .find(|r| {
                    is_write(r)
                        && r.path.contains("customresourcedefinitions")
                        && (r.path.ends_with(crd)
                            || r.body.as_ref().is_some_and(|b| b["metadata"]["name"] == *crd))
                })
                .map(|r| r.at)
                .unwrap_or_else(|| panic!("CRD {crd} was never written"))
        })
        .collect()
}

/// Istio custom resources were touched only once every Istio CRD had been
/// Established (the fake establishes them `CRD_DELAY` after their write),
/// and never answered 404.
fn assert_crds_established_before_istio_objects(w: &Walkthrough) {
    let requests = w.kube.requests();
    let last_crd = crd_writes(&requests).into_iter().max().unwrap();
    let istio_object = |r: &LoggedRequest| {
        r.path.starts_with("/apis/") && r.path.contains(".istio.io/") && r.path.contains("/namespaces/")
    };
    let first = requests
        .iter()
        .find(|r| istio_object(r))
        .map(|r| r.at)
        .expect("requests for Istio objects");
    assert!(
        first.duration_since(last_crd) >= CRD_DELAY,
        "an Istio object was touched {:?} after the last Istio CRD was written, before it was Established",
        first.duration_since(last_crd)
    );
    let refused: Vec<String> = requests
        .iter()
        .filter(|r| istio_object(r) && r.status == 404 && r.method != "GET" && r.method != "DELETE")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(refused.is_empty(), "Istio objects refused: {refused:?}");
}

/// The CRDs were installed by the base release, each kept by resource policy.
fn assert_istio_crds(w: &Walkthrough) {
    for crd in ISTIO_CRDS {
        let obj = w
            .kube
            .object("apiextensions.k8s.io/v1", "customresourcedefinitions", None, crd)
            .unwrap_or_else(|| panic!("CRD {crd}"));
        assert_eq!(
            obj["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{crd}"
        );
        assert_eq!(
            obj["metadata"]["annotations"]["meta.helm.sh/release-name"], "istio-base",
            "{crd}"
        );
    }
}

/// Webhook configurations no release owns: two Istio ones as an earlier
/// install or `istioctl tag` leaves them (pointing at an istiod that is
/// going away), and someone else's, which the teardown must leave alone.
async fn add_stray_webhooks(w: &Walkthrough) {
    let client = w.kube.client();
    let webhook = |name: &str| {
        serde_json::json!({
            "metadata": {"name": name},
            "webhooks": [{
                "name": "validation.istio.io",
                "clientConfig": {"service": {"name": "istiod-stale", "namespace": "istio-system", "path": "/validate"}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }],
        })
    };
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    for name in ["istio-validator-stale-istio-system", "someone-elses-validator"] {
        validating
            .create(
                &PostParams::default(),
                &serde_json::from_value(webhook(name)).unwrap(),
            )
            .await
            .unwrap();
    }
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client);
    mutating
        .create(
            &PostParams::default(),
            &serde_json::from_value(webhook("istio-revision-tag-default")).unwrap(),
        )
        .await
        .unwrap();
}

/// Nothing of Istio is left in the cluster: no Istio CRD, no webhook
/// configuration, none of `namespaces`.
fn assert_istio_gone(w: &Walkthrough, namespaces: &[&str]) {
    let crds: Vec<String> = w
        .kube
        .objects("customresourcedefinitions")
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string))
        .filter(|n| n.ends_with(".istio.io"))
        .collect();
    assert!(crds.is_empty(), "Istio CRDs left: {crds:?}");
    for plural in ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"] {
        let left: Vec<String> = w
            .kube
            .objects(plural)
            .iter()
            .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let expected: &[&str] = if plural.starts_with("validating") {
            &["someone-elses-validator"]
        } else {
            &[]
        };
        assert_eq!(left, expected, "{plural} left");
    }
    let left: Vec<String> = w
        .kube
        .objects("namespaces")
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .filter(|n| namespaces.contains(&n.as_str()))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    for plural in [
        "deployments",
        "services",
        "horizontalpodautoscalers",
        "serviceaccounts",
    ] {
        let left: Vec<String> = w
            .kube
            .objects(plural)
            .iter()
            .filter(|o| o["metadata"]["namespace"] != "default")
            .map(|o| format!("{}/{}", o["metadata"]["namespace"], o["metadata"]["name"]))
            .collect();
        assert!(left.is_empty(), "{plural} left: {left:?}");
    }
}

/// Where `needle` first starts a line of `events`.
fn line_of(events: &str, needle: &str) -> usize {
    events
        .lines()
        .position(|l| l.starts_with(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{events}"))
}

/// The Istio releases were installed base, istiod, gateway, each only once
/// the one before it had finished (its Deployment written before the next
/// release's first write).
fn assert_istio_install_order(w: &Walkthrough, releases: &[&str]) {
    let installed: Vec<String> = w
        .helm
        .calls_of("upgrade")
        .iter()
        .map(|c| c.argv[2].clone())
        .collect();
    assert_eq!(installed, releases, "helm upgrade --install order");
    let requests = w.kube.requests();
    let crds_done = crd_writes(&requests).into_iter().max().unwrap();
    let istiod = first_write(&requests, &["/namespaces/istio-system/deployments", "istiod"]);
    assert!(
        istiod.duration_since(crds_done) >= CRD_DELAY,
        "istiod was installed before the base release's CRDs were Established"
    );
    if releases.contains(&"istio-ingress") {
        let gateway = first_write(&requests, &["/namespaces/istio-ingress/"]);
        assert!(gateway > istiod, "the gateway release was written before istiod");
    }
    for release in releases {
        let ns = if *release == "istio-ingress" {
            "istio-ingress"
        } else {
            "istio-system"
        };
        let meta = w
            .helm
            .json(&w.kubeconfig(), &["get", "metadata", release, "-n", ns]);
        assert_eq!(meta["status"], "deployed", "{release}");
        assert_eq!(meta["version"], "1.30.3", "{release}");
    }
}

/// The destroy's order: custom resources, the app, the gateway release,
/// istiod, base (whose uninstall then sweeps the kept CRDs and the webhook
/// configurations).
fn assert_teardown_order(events: &str, custom: &[&str], app: &str, gateway: bool) {
    for cr in custom {
        assert!(
            line_of(events, &format!("{cr}: deleted")) < line_of(events, &format!("{app}: deleting...")),
            "{cr} before {app}:\n{events}"
        );
    }
    let next = if gateway { "istio_ingress" } else { "istiod" };
    assert!(
        line_of(events, &format!("{app}: deleted")) < line_of(events, &format!("{next}: deleting...")),
        "{app} before {next}:\n{events}"
    );
    if gateway {
        assert!(
            line_of(events, "istio_ingress: deleted") < line_of(events, "istiod: deleting..."),
            "{events}"
        );
    }
    assert!(
        line_of(events, "istiod: deleted") < line_of(events, "istio_base: deleting..."),
        "{events}"
    );
    for what in [
        "deleting CustomResourceDefinition virtualservices.networking.istio.io, left by release istio-system/istio-base",
        "deleting ValidatingWebhookConfiguration istio-validator-stale-istio-system, left by release istio-system/istio-base",
        "deleting MutatingWebhookConfiguration istio-revision-tag-default, left by release istio-system/istio-base",
    ] {
        assert!(events.contains(what), "no `{what}` in:\n{events}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookinfo_installs_in_order_splits_reviews_and_tears_down_clean() {
    let w = start("istio-bookinfo", "istio-bookinfo.toml");
    let stack = w.stack();
    let stack = stack.to_str().unwrap();

    expect_code(w.meshform(&["apply", stack, "--auto-approve"]), 0);

    // AWS: the walkthrough's network and cluster, under this stack's name.
    Inventory::read_stack(&w.moto, "istio-bookinfo")
        .await
        .assert_baseline(&w.moto)
        .await;

    // Istio, in order, as helm reads its releases back.
    assert_istio_install_order(&w, &["istio-base", "istiod", "istio-ingress"]);
    assert_crds_established_before_istio_objects(&w);
    assert_istio_crds(&w);
    let injector = w
        .kube
        .object(
            "admissionregistration.k8s.io/v1",
            "mutatingwebhookconfigurations",
            None,
            "istio-sidecar-injector",
        )
        .expect("the sidecar injector");
    assert_eq!(injector["webhooks"][0]["failurePolicy"], "Fail");
    assert!(
        w.kube
            .object(
                "admissionregistration.k8s.io/v1",
                "validatingwebhookconfigurations",
                None,
                "istiod-default-validator"
            )
            .is_some()
    );
    let gateway_svc = w
        .kube
        .object("v1", "services", Some("istio-ingress"), "istio-ingress")
        .expect("the ingress gateway's Service");
    assert_eq!(gateway_svc["spec"]["type"], "LoadBalancer");
    let ports: Vec<i64> = gateway_svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [15021, 80, 443]);
    let gateway_dep = w
        .kube
        .object("apps/v1", "deployments", Some("istio-ingress"), "istio-ingress")
        .expect("the ingress gateway");
    assert_eq!(
        gateway_dep["spec"]["template"]["metadata"]["labels"]["istio"],
        "ingress"
    );
    assert!(
        w.kube
            .object(
                "autoscaling/v2",
                "horizontalpodautoscalers",
                Some("istio-ingress"),
                "istio-ingress"
            )
            .is_some()
    );

    // bookinfo.
    let ns = w
        .kube
        .object("v1", "namespaces", None, "bookinfo")
        .expect("namespace");
    assert_eq!(ns["metadata"]["labels"]["istio-injection"], "enabled");
    for svc in ["details", "ratings", "reviews", "productpage"] {
        let s = w
            .kube
            .object("v1", "services", Some("bookinfo"), svc)
            .unwrap_or_else(|| panic!("Service {svc}"));
        assert_eq!(s["spec"]["ports"][0]["port"], 9080, "{svc}");
        assert_eq!(s["spec"]["ports"][0]["name"], "http", "{svc}");
        assert_eq!(s["spec"]["selector"]["app"], svc, "{svc}");
        assert!(
            w.kube
                .object(
                    "v1",
                    "serviceaccounts",
                    Some("bookinfo"),
                    &format!("bookinfo-{svc}")
                )
                .is_some(),
            "ServiceAccount of {svc}"
        );
    }
    for (app, version) in [
        ("details", "v1"),
        ("ratings", "v1"),
        ("reviews", "v1"),
        ("reviews", "v2"),
        ("reviews", "v3"),
        ("productpage", "v1"),
    ] {
        let name = format!("{app}-{version}");
        let d = w
            .kube
            .object("apps/v1", "deployments", Some("bookinfo"), &name)
            .unwrap_or_else(|| panic!("Deployment {name}"));
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        assert_eq!(
            (labels["app"].as_str(), labels["version"].as_str()),
            (Some(app), Some(version))
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            format!("registry.istio.io/release/examples-bookinfo-{app}-{version}:1.20.3")
        );
        assert_eq!(d["spec"]["replicas"], 1);
    }
    let gw = w
        .kube
        .object(NET, "gateways", Some("bookinfo"), "bookinfo-gateway")
        .expect("Gateway");
    assert_eq!(gw["spec"]["selector"]["istio"], "ingress");
    assert_eq!(gw["spec"]["servers"][0]["port"]["number"], 80);
    let vs = w
        .kube
        .object(NET, "virtualservices", Some("bookinfo"), "bookinfo")
        .expect("VirtualService bookinfo");
    assert_eq!(vs["spec"]["gateways"], serde_json::json!(["bookinfo-gateway"]));
    assert_eq!(
        vs["spec"]["http"][0]["route"][0]["destination"]["host"],
        "productpage"
    );
    assert_eq!(vs["spec"]["http"][0]["match"].as_array().unwrap().len(), 5);
    assert_eq!(subsets(&w, "bookinfo", "productpage"), pairs(&[("v1", "v1")]));
    assert_eq!(
        subsets(&w, "bookinfo", "details"),
        pairs(&[("v1", "v1"), ("v2", "v2")])
    );
    assert_eq!(
        subsets(&w, "bookinfo", "ratings"),
        pairs(&[("v1", "v1"), ("v2", "v2")])
    );
    assert_eq!(
        subsets(&w, "bookinfo", "reviews"),
        pairs(&[("v1", "v1"), ("v2", "v2")])
    );
    assert_eq!(
        route_weights(&w, "bookinfo", "reviews"),
        [("v1".to_string(), 100)]
    );
    // The subsets before the route that names them.
    let requests = w.kube.requests();
    assert!(
        first_write(&requests, &["/destinationrules/reviews"])
            < first_write(&requests, &["/virtualservices/reviews"]),
        "the reviews route was written before its subsets"
    );

    // Outputs from the gateway's load balancer, as the API server has it.
    let host = gateway_svc["status"]["loadBalancer"]["ingress"][0]["hostname"]
        .as_str()
        .expect("the fake gave the load balancer a hostname")
        .to_string();
    let outputs: Value =
        serde_json::from_str(&stdout(&expect_code(w.meshform(&["output", stack, "--json"]), 0))).unwrap();
    assert_eq!(outputs["ingress_hostname"], host.as_str(), "{outputs}");
    assert_eq!(
        outputs["product_page_url"],
        format!("http://{host}/productpage"),
        "{outputs}"
    );

    expect_code(w.meshform(&["plan", stack, "--detailed-exitcode"]), 0);

    // The reviews split: 50/50 adds the v3 subset and changes the route...
    let half = ["--var", "reviews_v3=true", "--var", "reviews_v3_weight=50"];
    let plan = expect_code(
        w.meshform(&with_vars(
            &["plan", stack, "--json", "--detailed-exitcode"],
            &half,
        )),
        2,
    );
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(
        changes(&plan),
        pairs(&[("reviews_route", "update"), ("reviews_subsets", "update")])
    );
    // Field by field: the route's destinations (a list changing length
    // is shown whole) and the subsets, gaining v3.
    let human = stdout(&expect_code(w.meshform(&with_vars(&["plan", stack], &half)), 0));
    let route_lines = plan_lines_for(&human, "reviews_route");
    assert_eq!(route_lines.len(), 1, "{human}");
    assert!(
        route_lines[0].starts_with("yaml[0].spec.http[0].route ")
            && route_lines[0].ends_with(
                r#"-> [{"destination":{"host":"reviews","subset":"v1"},"weight":50},{"destination":{"host":"reviews","subset":"v3"},"weight":50}]"#
            ),
        "{human}"
    );
    let subset_lines = plan_lines_for(&human, "reviews_subsets");
    assert_eq!(subset_lines.len(), 1, "{human}");
    assert!(
        subset_lines[0].starts_with("yaml[0].spec.subsets ")
            && subset_lines[0].ends_with(r#"{"labels":{"version":"v3"},"name":"v3"}]"#),
        "{human}"
    );
    expect_code(
        w.meshform(&with_vars(&["apply", stack, "--auto-approve"], &half)),
        0,
    );
    assert_eq!(
        subsets(&w, "bookinfo", "reviews"),
        pairs(&[("v1", "v1"), ("v2", "v2"), ("v3", "v3")])
    );
    assert_eq!(
        route_weights(&w, "bookinfo", "reviews"),
        [("v1".to_string(), 50), ("v3".to_string(), 50)]
    );
    expect_code(
        w.meshform(&with_vars(&["plan", stack, "--detailed-exitcode"], &half)),
        0,
    );

    // ...and all to v3 changes only the route's weights.
    let all = ["--var", "reviews_v3=true", "--var", "reviews_v3_weight=100"];
    let plan = expect_code(
        w.meshform(&with_vars(
            &["plan", stack, "--json", "--detailed-exitcode"],
            &all,
        )),
        2,
    );
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(changes(&plan), pairs(&[("reviews_route", "update")]));
    let human = stdout(&expect_code(w.meshform(&with_vars(&["plan", stack], &all)), 0));
    let route_lines = plan_lines_for(&human, "reviews_route");
    assert_eq!(route_lines.len(), 2, "{human}");
    assert!(
        route_lines[0].contains("route[0].weight") && route_lines[0].contains("50 -> 0"),
        "{human}"
    );
    assert!(
        route_lines[1].contains("route[1].weight") && route_lines[1].contains("50 -> 100"),
        "{human}"
    );
    let reviews_route = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "reviews_route")
        .unwrap();
    let changed = reviews_route.to_string();
    assert!(changed.contains("weight"), "{changed}");
    expect_code(
        w.meshform(&with_vars(&["apply", stack, "--auto-approve"], &all)),
        0,
    );
    assert_eq!(
        route_weights(&w, "bookinfo", "reviews"),
        [("v1".to_string(), 0), ("v3".to_string(), 100)]
    );
    expect_code(
        w.meshform(&with_vars(&["plan", stack, "--detailed-exitcode"], &all)),
        0,
    );

    // v3 leaves the split and its subset goes, in one apply: the route
    // stops naming v3 before the rule loses it (make-before-break), read
    // from the API server's request log.
    let plan = expect_code(w.meshform(&["plan", stack, "--json"]), 0);
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(
        changes(&plan),
        pairs(&[("reviews_route", "update"), ("reviews_subsets", "update")])
    );
    assert_eq!(
        update_order(&plan, "reviews_subsets"),
        (vec!["reviews_route".to_string()], false)
    );
    let from = w.kube.requests().len();
    expect_code(w.meshform(&["apply", stack, "--auto-approve"]), 0);
    let seen = writes(&w, from);
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["VirtualService", "DestinationRule"], "{seen:?}");
    assert_never_dangling(set(&["v1", "v2", "v3"]), set(&["v1", "v3"]), &seen);
    assert_eq!(
        route_weights(&w, "bookinfo", "reviews"),
        [("v1".to_string(), 100)]
    );
    expect_code(w.meshform(&["plan", stack, "--detailed-exitcode"]), 0);

    // Teardown: nothing of Istio, the app or AWS is left (not even
    // webhook configurations no release owned).
    add_stray_webhooks(&w).await;
    // The gateway's Service holds the finalizer a cloud's service
    // controller keeps until its load balancer is gone: released 2 s
    // after its deletion began. Istio's control plane goes only after.
    let lb_finalizer = "service.kubernetes.io/load-balancer-cleanup";
    w.kube.add_finalizer(
        "v1",
        "services",
        Some("istio-ingress"),
        "istio-ingress",
        lb_finalizer,
    );
    let (out, lb_gone) = std::thread::scope(|scope| {
        let releaser = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(55);
            loop {
                let svc = w
                    .kube
                    .object("v1", "services", Some("istio-ingress"), "istio-ingress");
                if svc
                    .as_ref()
                    .is_some_and(|s| s["metadata"]["deletionTimestamp"].is_string())
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the gateway's Service was never deleted"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_secs(2));
            let at = Instant::now();
            w.kube
                .remove_finalizers("v1", "services", Some("istio-ingress"), "istio-ingress");
            at
        });
        let out = expect_code(
            w.meshform(&with_vars(&["destroy", stack, "--auto-approve"], &all)),
            0,
        );
        (out, releaser.join().unwrap())
    });
    let istiod_deleted = w
        .kube
        .requests()
        .iter()
        .find(|r| r.method == "DELETE" && r.path.ends_with("/namespaces/istio-system/deployments/istiod"))
        .map(|r| r.at)
        .expect("helm deleted istiod's Deployment");
    assert!(
        istiod_deleted > lb_gone,
        "istiod was uninstalled while the gateway's load balancer Service was still there"
    );
    let events = stderr(&out);
    assert_teardown_order(
        &events,
        &[
            "reviews_route",
            "reviews_subsets",
            "bookinfo_destination_rules",
            "bookinfo_gateway",
        ],
        "bookinfo_app",
        true,
    );
    let uninstalled: Vec<String> = w
        .helm
        .calls_of("uninstall")
        .iter()
        .map(|c| c.argv[1].clone())
        .collect();
    assert_eq!(uninstalled, ["istio-ingress", "istiod", "istio-base"]);
    assert_istio_gone(&w, &["istio-system", "istio-ingress", "bookinfo"]);
    Inventory::read_stack(&w.moto, "istio-bookinfo")
        .await
        .assert_empty();
    WalkthroughExtras::read(&w.moto).await.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yelb_on_istio_runs_the_walkthrough_canary_and_tears_down_clean() {
    let w = start("yelb-istio", "yelb-istio.toml");
    let stack = w.stack();
    let stack = stack.to_str().unwrap();

    expect_code(w.meshform(&["apply", stack, "--auto-approve"]), 0);
    Inventory::read_stack(&w.moto, "yelb-istio")
        .await
        .assert_baseline(&w.moto)
        .await;
    assert_istio_install_order(&w, &["istio-base", "istiod"]);
    assert_crds_established_before_istio_objects(&w);
    assert_istio_crds(&w);

    // The walkthrough's checks of the app, as for the App Mesh stack.
    let yelb = w
        .kube
        .object("v1", "namespaces", None, "yelb")
        .expect("yelb namespace");
    assert_eq!(yelb["metadata"]["labels"]["istio-injection"], "enabled");
    let tiers = [
        ("redis-server", "redis:4.0.2", 6379, "cache"),
        ("yelb-db", "mreferre/yelb-db:0.5", 5432, "backenddb"),
        (
            "yelb-appserver",
            "mreferre/yelb-appserver:0.5",
            4567,
            "middletier",
        ),
        ("yelb-ui", "mreferre/yelb-ui:0.7", 80, "frontend"),
    ];
    for (name, image, port, tier) in tiers {
        let d = w
            .kube
            .object("apps/v1", "deployments", Some("yelb"), name)
            .unwrap_or_else(|| panic!("dep {name}"));
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], image, "{name}");
        assert_eq!(c["ports"][0]["containerPort"], port, "{name}");
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["tier"], tier, "{name}");
        assert_eq!(labels["version"], "v1", "{name}");
        let svc = w
            .kube
            .object("v1", "services", Some("yelb"), name)
            .unwrap_or_else(|| panic!("svc {name}"));
        assert_eq!(svc["spec"]["ports"][0]["port"], port, "{name}");
        let ty = if name == "yelb-ui" {
            "LoadBalancer"
        } else {
            "ClusterIP"
        };
        assert_eq!(svc["spec"]["type"], ty, "{name}");
    }
    assert_eq!(subsets(&w, "yelb", "yelb-appserver"), pairs(&[("v1", "v1")]));
    assert_eq!(
        route_weights(&w, "yelb", "yelb-appserver"),
        [("v1".to_string(), 100)]
    );
    // The walkthrough's retry policy, mapped.
    let route = w
        .kube
        .object(NET, "virtualservices", Some("yelb"), "yelb-appserver")
        .unwrap();
    let retries = &route["spec"]["http"][0]["retries"];
    assert_eq!(retries["attempts"], 2);
    assert_eq!(retries["perTryTimeout"], "2000ms");
    assert_eq!(retries["retryOn"], "5xx,gateway-error,retriable-4xx");
    assert!(
        w.kube.objects("meshes").is_empty() && w.kube.objects("virtualnodes").is_empty(),
        "no App Mesh objects"
    );
    expect_code(w.meshform(&["plan", stack, "--detailed-exitcode"]), 0);

    // Canary 50/50: the v2 Deployment, its subset and the route's weights.
    let half = ["--var", "appserver_v2=true", "--var", "v2_weight=50"];
    let plan = expect_code(
        w.meshform(&with_vars(
            &["plan", stack, "--json", "--detailed-exitcode"],
            &half,
        )),
        2,
    );
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(
        changes(&plan),
        pairs(&[
            ("yelb_appserver_route", "update"),
            ("yelb_appserver_subsets", "update"),
            ("yelb_appserver_v2", "create"),
        ])
    );
    expect_code(
        w.meshform(&with_vars(&["apply", stack, "--auto-approve"], &half)),
        0,
    );
    assert_eq!(
        subsets(&w, "yelb", "yelb-appserver"),
        pairs(&[("v1", "v1"), ("v2", "v2")])
    );
    assert_eq!(
        route_weights(&w, "yelb", "yelb-appserver"),
        [("v1".to_string(), 50), ("v2".to_string(), 50)]
    );
    let v2 = w
        .kube
        .object("apps/v1", "deployments", Some("yelb"), "yelb-appserver-v2")
        .expect("v2 deployment");
    let image = v2["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert!(
        image.ends_with(".dkr.ecr.us-west-2.amazonaws.com/yelb-appserver-v2:latest"),
        "{image}"
    );
    assert_eq!(v2["spec"]["template"]["metadata"]["labels"]["version"], "v2");
    assert_eq!(
        v2["spec"]["template"]["metadata"]["labels"]["app"],
        "yelb-appserver"
    );

    // All to v2: the route only.
    let all = ["--var", "appserver_v2=true", "--var", "v2_weight=100"];
    let plan = expect_code(
        w.meshform(&with_vars(
            &["plan", stack, "--json", "--detailed-exitcode"],
            &all,
        )),
        2,
    );
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(changes(&plan), pairs(&[("yelb_appserver_route", "update")]));
    expect_code(
        w.meshform(&with_vars(&["apply", stack, "--auto-approve"], &all)),
        0,
    );
    assert_eq!(
        route_weights(&w, "yelb", "yelb-appserver"),
        [("v1".to_string(), 0), ("v2".to_string(), 100)]
    );
    expect_code(
        w.meshform(&with_vars(&["plan", stack, "--detailed-exitcode"], &all)),
        0,
    );

    add_stray_webhooks(&w).await;
    let out = expect_code(
        w.meshform(&with_vars(&["destroy", stack, "--auto-approve"], &all)),
        0,
    );
    let events = stderr(&out);
    assert_teardown_order(
        &events,
        &["yelb_appserver_route", "yelb_appserver_subsets"],
        "yelb_app",
        false,
    );
    assert_istio_gone(&w, &["istio-system", "yelb"]);
    Inventory::read_stack(&w.moto, "yelb-istio").await.assert_empty();
    WalkthroughExtras::read(&w.moto).await.assert_empty();
}
