//! The resource types the fake serves: a fixed set of built-ins (with the
//! scope, short names, categories and status subresource the real server's
//! discovery shows) plus, for each CustomResourceDefinition whose
//! `Established` condition is True, one type per served version.

use super::util::str_at;
use serde_json::Value;

/// One served resource at one group/version.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    /// "" for the core group.
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource: writes to the main resource keep the
    /// stored status, writes to `/status` change only the status.
    pub status_subresource: bool,
    /// Keeps `metadata.generation` (bumped when anything outside metadata
    /// and status changes). The real server does this for workloads, CRDs
    /// and custom resources, not for ConfigMaps, Services, Namespaces, RBAC.
    pub tracks_generation: bool,
    /// Defined by a CRD.
    pub custom: bool,
    /// An immediate DELETE answers with the deleted object; otherwise
    /// (the real server's default, `ReturnDeletedObject: false`) with a
    /// `Status` of `Success` naming it. True for Services and
    /// ServiceAccounts (and Namespaces and CRDs, whose deletion always
    /// waits for a finalizer and so answers with the object).
    pub returns_deleted_object: bool,
}

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// The verbs every served resource supports here.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One built-in kind as the real server's discovery shows it (v1.33):
/// group, version, plural, kind, namespaced, short names, categories,
/// status subresource, keeps `metadata.generation`.
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
    bool,
    bool,
);

const RBAC: &str = "rbac.authorization.k8s.io";
const ADMISSION: &str = "admissionregistration.k8s.io";
const NETWORKING: &str = "networking.k8s.io";
const ALL: &[&str] = &["all"];
const API_EXTENSIONS: &[&str] = &["api-extensions"];

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    ("", "v1", "configmaps", "ConfigMap", true, &["cm"], &[], false, false),
    ("", "v1", "endpoints", "Endpoints", true, &["ep"], &[], false, false),
    ("", "v1", "events", "Event", true, &["ev"], &[], false, false),
    ("", "v1", "namespaces", "Namespace", false, &["ns"], &[], true, false),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, &["pvc"], &[], true, false),
    ("", "v1", "pods", "Pod", true, &["po"], ALL, true, false),
    ("", "v1", "secrets", "Secret", true, &[], &[], false, false),
    ("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"], &[], false, false),
    ("", "v1", "services", "Service", true, &["svc"], ALL, true, false),
    ("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], ALL, true, true),
    ("apps", "v1", "deployments", "Deployment", true, &["deploy"], ALL, true, true),
    ("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"], ALL, true, true),
    ("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"], ALL, true, true),
    ("batch", "v1", "cronjobs", "CronJob", true, &["cj"], ALL, true, true),
    ("batch", "v1", "jobs", "Job", true, &[], ALL, true, true),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"], &[], true, true),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, &["hpa"], ALL, true, false),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, &["crd", "crds"], API_EXTENSIONS, true, true),
    (RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[], &[], false, false),
    (RBAC, "v1", "clusterroles", "ClusterRole", false, &[], &[], false, false),
    (RBAC, "v1", "rolebindings", "RoleBinding", true, &[], &[], false, false),
    (RBAC, "v1", "roles", "Role", true, &[], &[], false, false),
    (ADMISSION, "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", false, &[], API_EXTENSIONS, false, true),
    (ADMISSION, "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", false, &[], API_EXTENSIONS, false, true),
    (NETWORKING, "v1", "ingressclasses", "IngressClass", false, &[], &[], false, true),
    (NETWORKING, "v1", "ingresses", "Ingress", true, &["ing"], &[], true, true),
    (NETWORKING, "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"], &[], false, true),
    ("coordination.k8s.io", "v1", "leases", "Lease", true, &[], &[], false, false),
];

/// The built-in kinds.
pub fn builtins() -> Vec<ResourceType> {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    BUILTINS
        .iter()
        .map(
            |&(group, version, plural, kind, namespaced, short, categories, status, generation)| {
                ResourceType {
                    group: group.into(),
                    version: version.into(),
                    plural: plural.into(),
                    singular: kind.to_lowercase(),
                    kind: kind.into(),
                    namespaced,
                    short_names: strings(short),
                    categories: strings(categories),
                    status_subresource: status,
                    tracks_generation: generation,
                    custom: false,
                    returns_deleted_object: matches!(
                        kind,
                        "Service" | "ServiceAccount" | "Namespace" | "CustomResourceDefinition" | "Pod"
                    ),
                }
            },
        )
        .collect()
}

/// The fields a kind's lists and watches can select on besides
/// `metadata.name` and `metadata.namespace`, as the real server's per-kind
/// field label conversions define them: (selector name, JSON path).
pub fn field_selectors(ty: &ResourceType) -> &'static [(&'static str, &'static str)] {
    if ty.custom {
        return &[];
    }
    match (ty.group.as_str(), ty.kind.as_str()) {
        ("", "Event") => &[
            ("involvedObject.kind", "involvedObject.kind"),
            ("involvedObject.namespace", "involvedObject.namespace"),
            ("involvedObject.name", "involvedObject.name"),
            ("involvedObject.uid", "involvedObject.uid"),
            ("involvedObject.apiVersion", "involvedObject.apiVersion"),
            ("involvedObject.resourceVersion", "involvedObject.resourceVersion"),
            ("involvedObject.fieldPath", "involvedObject.fieldPath"),
            ("reason", "reason"),
            ("reportingComponent", "reportingComponent"),
            ("source", "source.component"),
            ("type", "type"),
        ],
        ("", "Pod") => &[
            ("spec.nodeName", "spec.nodeName"),
            ("spec.restartPolicy", "spec.restartPolicy"),
            ("spec.schedulerName", "spec.schedulerName"),
            ("spec.serviceAccountName", "spec.serviceAccountName"),
            ("spec.hostNetwork", "spec.hostNetwork"),
            ("status.phase", "status.phase"),
            ("status.podIP", "status.podIP"),
            ("status.nominatedNodeName", "status.nominatedNodeName"),
        ],
        ("", "Secret") => &[("type", "type")],
        ("", "Namespace") => &[("status.phase", "status.phase")],
        ("", "Service") => &[("spec.clusterIP", "spec.clusterIP"), ("spec.type", "spec.type")],
        ("apps", "ReplicaSet") => &[("status.replicas", "status.replicas")],
        ("batch", "Job") => &[("status.successful", "status.succeeded")],
        _ => &[],
    }
}

/// True when the CRD object has condition `type` with status True.
pub fn has_condition(obj: &Value, type_: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(type_)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// The types a CRD defines: one per served version, and none until the
/// CRD is Established (the real server does not serve them before then).
pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
    if !has_condition(crd, "Established") {
        return vec![];
    }
    let spec = &crd["spec"];
    let group = str_at(spec, &["group"]).unwrap_or_default();
    let names = &spec["names"];
    let plural = str_at(names, &["plural"]).unwrap_or_default();
    let kind = str_at(names, &["kind"]).unwrap_or_default();
    let singular = str_at(names, &["singular"])
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let namespaced = str_at(spec, &["scope"]) != Some("Cluster");
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(false))
        .map(|v| ResourceType {
            group: group.into(),
            version: str_at(v, &["name"]).unwrap_or_default().into(),
            plural: plural.into(),
            singular: singular.clone(),
            kind: kind.into(),
            namespaced,
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            status_subresource: v.pointer("/subresources/status").is_some(),
            tracks_generation: true,
            custom: true,
            returns_deleted_object: false,
        })
        .collect()
}

/// Kubernetes version ordering: GA before beta before alpha, higher numbers
/// first, anything unparsable last (alphabetically). Larger is preferred.
pub fn version_priority(v: &str) -> (u8, u32, u32, std::cmp::Reverse<String>) {
    let parse = || -> Option<(u8, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        for (word, rank) in [("beta", 2u8), ("alpha", 1u8)] {
            if let Some(n) = tail.strip_prefix(word) {
                return Some((rank, major, n.parse().ok()?));
            }
        }
        None
    };
    match parse() {
        Some((rank, major, minor)) => (rank, major, minor, std::cmp::Reverse(String::new())),
        None => (0, 0, 0, std::cmp::Reverse(v.to_string())),
    }
}
