//! The defaults the real API server fills into built-in objects before it
//! validates and stores them (the generated `SetDefaults_*` functions of
//! the kubernetes API groups), so that what a client reads back, or gets
//! from a dry run, carries the same server-added fields as on a cluster.
//!
//! A default only fills a field that is absent (or null); what a client
//! sent is never changed. Defaults are written per kind and per path, so
//! that a kind gets its defaults as soon as the fake serves it:
//! - every pod template (`spec.template.spec` of Deployment, StatefulSet,
//!   DaemonSet, ReplicaSet, Job, ReplicationController;
//!   `spec.jobTemplate.spec.template.spec` of CronJob; `template.spec` of
//!   PodTemplate) and a Pod's own `spec`: `restartPolicy: Always`,
//!   `terminationGracePeriodSeconds: 30`, `dnsPolicy: ClusterFirst`,
//!   `schedulerName: default-scheduler`, `securityContext: {}`; volumes'
//!   `defaultMode: 420` (secret, configMap, downwardAPI, projected) and
//!   hostPath `type: ""`; in every container and init container
//!   `terminationMessagePath`, `terminationMessagePolicy`,
//!   `imagePullPolicy` (Always for `:latest` or no tag, else
//!   IfNotPresent), ports' `protocol: TCP`, env `fieldRef.apiVersion: v1`,
//!   probes' timeout/period/thresholds and `httpGet` path and scheme.
//!   A Pod also gets `enableServiceLinks: true` and requests copied from
//!   limits.
//! - Deployment: `replicas: 1`, strategy RollingUpdate 25%/25%,
//!   `revisionHistoryLimit: 10`, `progressDeadlineSeconds: 600`.
//! - StatefulSet: `replicas: 1`, `podManagementPolicy: OrderedReady`,
//!   updateStrategy RollingUpdate with `partition: 0`,
//!   `revisionHistoryLimit: 10`, PVC retention Retain/Retain, claim
//!   templates `volumeMode: Filesystem` and `status.phase: Pending`.
//! - DaemonSet: updateStrategy RollingUpdate `maxUnavailable: 1`,
//!   `maxSurge: 0`; `revisionHistoryLimit: 10`. ReplicaSet: `replicas: 1`.
//! - Job: `parallelism`/`completions` 1, `backoffLimit: 6`,
//!   `completionMode: NonIndexed`, `suspend: false`,
//!   `podReplacementPolicy: TerminatingOrFailed`, and (unless
//!   `manualSelector`) the generated selector and template labels
//!   (`batch.kubernetes.io/controller-uid`, `job-name`, ...), which the
//!   real server sets in its create strategy. CronJob: `concurrencyPolicy:
//!   Allow`, `suspend: false`, history limits 3 and 1.
//! - Service (after `strategy.rs` has allocated its cluster IP and node
//!   ports): `sessionAffinity: None` (ClientIP gets a 10800s timeout),
//!   `clusterIPs` from `clusterIP`; unless ExternalName `ipFamilies:
//!   [IPv4]`, `ipFamilyPolicy: SingleStack`, `internalTrafficPolicy:
//!   Cluster`; NodePort and LoadBalancer `externalTrafficPolicy: Cluster`;
//!   LoadBalancer `allocateLoadBalancerNodePorts: true`.
//! - PersistentVolumeClaim: `volumeMode: Filesystem`.
//! - RoleBinding/ClusterRoleBinding: subjects of kind User or Group get
//!   `apiGroup: rbac.authorization.k8s.io`.
//! - CustomResourceDefinition: `conversion: {strategy: None}`.
//!
//! NOT defaulted: quantities are not canonicalized (`cpu: 0.5` is not
//! turned into `500m`), admission plugins' additions (a Pod's service
//! account, tolerations, priority) are not made, and custom resources get
//! no defaults from their CRD's schema.

use super::kinds::ResourceType;
use super::util::str_at;
use serde_json::{Map, Value, json};

/// Sets `key` of `map` to `value` when it is absent or null.
fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.into(), value);
    }
}

/// The map at a path of keys, when every step is a map.
fn map_mut<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    path.iter()
        .try_fold(v, |cur, key| cur.as_object_mut()?.get_mut(*key))?
        .as_object_mut()
}

/// The maps of the list at `key` of `map` (non-maps skipped).
fn maps_in<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Where a kind keeps its pod spec, when it has one.
pub fn pod_spec_path(ty: &ResourceType) -> Option<&'static [&'static str]> {
    if ty.custom {
        return None;
    }
    match (ty.group.as_str(), ty.kind.as_str()) {
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job")
        | ("", "ReplicationController") => Some(&["spec", "template", "spec"]),
        ("batch", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        ("", "PodTemplate") => Some(&["template", "spec"]),
        ("", "Pod") => Some(&["spec"]),
        _ => None,
    }
}

/// Fills in the defaults of a built-in object (see the module docs).
/// `old` is the stored object on an update.
pub fn default_object(ty: &ResourceType, obj: &mut Value, old: Option<&Value>) {
    if ty.custom || !obj.is_object() {
        return;
    }
    if let Some(path) = pod_spec_path(ty)
        && let Some(spec) = map_mut(obj, path)
    {
        pod_spec(spec, ty.kind == "Pod");
    }
    match (ty.group.as_str(), ty.kind.as_str()) {
        ("apps", kind) => apps(kind, obj),
        ("batch", "Job") => job(obj, old),
        ("batch", "CronJob") => {
            if let Some(spec) = map_mut(obj, &["spec"]) {
                default(spec, "concurrencyPolicy", json!("Allow"));
                default(spec, "suspend", json!(false));
                default(spec, "successfulJobsHistoryLimit", json!(3));
                default(spec, "failedJobsHistoryLimit", json!(1));
            }
        }
        ("", "Service") => {
            if let Some(spec) = map_mut(obj, &["spec"]) {
                service(spec, old);
            }
        }
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = map_mut(obj, &["spec"]) {
                default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            if let Some(m) = obj.as_object_mut() {
                for subject in maps_in(m, "subjects") {
                    let kind = subject.get("kind").and_then(Value::as_str).unwrap_or_default();
                    if kind == "User" || kind == "Group" {
                        default(subject, "apiGroup", json!("rbac.authorization.k8s.io"));
                    }
                }
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            if let Some(spec) = map_mut(obj, &["spec"]) {
                default(spec, "conversion", json!({"strategy": "None"}));
            }
        }
        _ => {}
    }
}

fn apps(kind: &str, obj: &mut Value) {
    let Some(spec) = map_mut(obj, &["spec"]) else {
        return;
    };
    match kind {
        "Deployment" => {
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            default(spec, "strategy", json!({}));
            if let Some(strategy) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
                default(strategy, "type", json!("RollingUpdate"));
                if strategy["type"] == "RollingUpdate" {
                    default(strategy, "rollingUpdate", json!({}));
                    if let Some(ru) = strategy.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                        default(ru, "maxUnavailable", json!("25%"));
                        default(ru, "maxSurge", json!("25%"));
                    }
                }
            }
        }
        "StatefulSet" => {
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "updateStrategy", json!({}));
            if let Some(strategy) = spec.get_mut("updateStrategy").and_then(Value::as_object_mut) {
                default(strategy, "type", json!("RollingUpdate"));
                if strategy["type"] == "RollingUpdate" {
                    default(strategy, "rollingUpdate", json!({}));
                    if let Some(ru) = strategy.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                        default(ru, "partition", json!(0));
                    }
                }
            }
            default(spec, "persistentVolumeClaimRetentionPolicy", json!({}));
            if let Some(p) = spec
                .get_mut("persistentVolumeClaimRetentionPolicy")
                .and_then(Value::as_object_mut)
            {
                default(p, "whenDeleted", json!("Retain"));
                default(p, "whenScaled", json!("Retain"));
            }
            for claim in maps_in(spec, "volumeClaimTemplates") {
                default(claim, "spec", json!({}));
                if let Some(s) = claim.get_mut("spec").and_then(Value::as_object_mut) {
                    default(s, "volumeMode", json!("Filesystem"));
                }
                default(claim, "status", json!({"phase": "Pending"}));
            }
        }
        "DaemonSet" => {
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "updateStrategy", json!({}));
            if let Some(strategy) = spec.get_mut("updateStrategy").and_then(Value::as_object_mut) {
                default(strategy, "type", json!("RollingUpdate"));
                if strategy["type"] == "RollingUpdate" {
                    default(strategy, "rollingUpdate", json!({}));
                    if let Some(ru) = strategy.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                        default(ru, "maxUnavailable", json!(1));
                        default(ru, "maxSurge", json!(0));
                    }
                }
            }
        }
        "ReplicaSet" => default(spec, "replicas", json!(1)),
        _ => {}
    }
}

fn job(obj: &mut Value, old: Option<&Value>) {
    let name = str_at(obj, &["metadata", "name"]).unwrap_or_default().to_string();
    let uid = str_at(obj, &["metadata", "uid"]).unwrap_or_default().to_string();
    let Some(spec) = map_mut(obj, &["spec"]) else {
        return;
    };
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec.insert("completions".into(), json!(1));
    }
    default(spec, "parallelism", json!(1));
    default(spec, "backoffLimit", json!(6));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    let replacement = if spec.get("podFailurePolicy").is_some_and(|p| !p.is_null()) {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    default(spec, "podReplacementPolicy", json!(replacement));
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    // The selector is the server's, made once at create; an update that
    // leaves it out keeps it.
    match old.and_then(|o| o.pointer("/spec/selector")) {
        Some(kept) => default(spec, "selector", kept.clone()),
        None => default(
            spec,
            "selector",
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        ),
    }
    if old.is_none()
        && let Some(template) = spec.get_mut("template").and_then(Value::as_object_mut)
    {
        default(template, "metadata", json!({}));
        if let Some(meta) = template.get_mut("metadata").and_then(Value::as_object_mut) {
            default(meta, "labels", json!({}));
            if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", &uid),
                    ("batch.kubernetes.io/job-name", &name),
                    ("controller-uid", &uid),
                    ("job-name", &name),
                ] {
                    labels.insert(k.into(), json!(v));
                }
            }
        }
    }
}

fn pod_spec(spec: &mut Map<String, Value>, is_pod: bool) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    if is_pod {
        default(spec, "enableServiceLinks", json!(true));
    }
    for volume in maps_in(spec, "volumes") {
        for source in ["secret", "configMap", "downwardAPI", "projected"] {
            if let Some(s) = volume.get_mut(source).and_then(Value::as_object_mut) {
                default(s, "defaultMode", json!(420));
            }
        }
        if let Some(s) = volume.get_mut("hostPath").and_then(Value::as_object_mut) {
            default(s, "type", json!(""));
        }
    }
    for list in ["containers", "initContainers"] {
        for c in maps_in(spec, list) {
            container(c, is_pod);
        }
    }
}

/// `Always` for an image tagged `latest` or not tagged (and not pinned by
/// digest), `IfNotPresent` otherwise: the real server's rule.
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn container(c: &mut Map<String, Value>, is_pod: bool) {
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    default(c, "imagePullPolicy", json!(image_pull_policy(&image)));
    for port in maps_in(c, "ports") {
        default(port, "protocol", json!("TCP"));
    }
    for env in maps_in(c, "env") {
        if let Some(r) = env
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            default(r, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            http_get(p);
        }
    }
    if let Some(lifecycle) = c.get_mut("lifecycle").and_then(Value::as_object_mut) {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = lifecycle.get_mut(hook).and_then(Value::as_object_mut) {
                http_get(h);
            }
        }
    }
    if is_pod
        && let Some(resources) = c.get_mut("resources").and_then(Value::as_object_mut)
        && let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned()
    {
        default(resources, "requests", json!({}));
        if let Some(requests) = resources.get_mut("requests").and_then(Value::as_object_mut) {
            for (k, v) in limits {
                default(requests, &k, v);
            }
        }
    }
}

fn http_get(handler: &mut Map<String, Value>) {
    if let Some(h) = handler.get_mut("httpGet").and_then(Value::as_object_mut) {
        default(h, "path", json!("/"));
        default(h, "scheme", json!("HTTP"));
    }
}

fn service(spec: &mut Map<String, Value>, old: Option<&Value>) {
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    if spec["sessionAffinity"] == "ClientIP" {
        default(
            spec,
            "sessionAffinityConfig",
            json!({"clientIP": {"timeoutSeconds": 10800}}),
        );
    }
    let type_ = spec["type"].as_str().unwrap_or_default().to_string();
    if type_ != "ExternalName" {
        // A changed clusterIP is carried into clusterIPs, as the real
        // server normalizes them, so that validation sees (and names) it.
        if let Some(ip) = spec.get("clusterIP").filter(|ip| ip.is_string()).cloned() {
            let old_ip = old.and_then(|o| o.pointer("/spec/clusterIP"));
            let old_ips = old.and_then(|o| o.pointer("/spec/clusterIPs"));
            let ips_unchanged =
                spec.get("clusterIPs").is_none_or(Value::is_null) || spec.get("clusterIPs") == old_ips;
            if ips_unchanged && old_ip != Some(&ip) {
                spec.insert("clusterIPs".into(), json!([ip]));
            }
            default(spec, "clusterIPs", json!([ip]));
        }
        default(spec, "ipFamilies", json!(["IPv4"]));
        default(spec, "ipFamilyPolicy", json!("SingleStack"));
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if type_ == "NodePort" || type_ == "LoadBalancer" {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if type_ == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    for port in maps_in(spec, "ports") {
        default(port, "protocol", json!("TCP"));
        if let Some(p) = port.get("port").cloned() {
            default(port, "targetPort", p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::builtins;

    fn ty(kind: &str) -> ResourceType {
        builtins()
            .into_iter()
            .find(|t| t.kind == kind)
            .unwrap_or_else(|| ResourceType {
                group: match kind {
                    "StatefulSet" | "DaemonSet" => "apps",
                    "Job" | "CronJob" => "batch",
                    _ => "",
                }
                .into(),
                version: "v1".into(),
                plural: format!("{}s", kind.to_lowercase()),
                singular: kind.to_lowercase(),
                kind: kind.into(),
                namespaced: true,
                short_names: vec![],
                categories: vec![],
                status_subresource: true,
                tracks_generation: true,
                custom: false,
                returns_deleted_object: false,
            })
    }

    fn template(containers: Value) -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
    }

    #[test]
    fn deployment_gets_strategy_history_deadline_and_pod_defaults() {
        let mut d = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(json!([
                {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                 "readinessProbe": {"httpGet": {"port": 80}},
                 "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]},
                {"name": "side", "image": "envoy", "imagePullPolicy": "Never"},
            ])),
        }});
        default_object(&ty("Deployment"), &mut d, None);
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["securityContext"], json!({}));
        assert!(pod.get("enableServiceLinks").is_none(), "templates do not get it");
        let web = &pod["containers"][0];
        assert_eq!(web["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(web["terminationMessagePolicy"], "File");
        assert_eq!(web["imagePullPolicy"], "IfNotPresent");
        assert_eq!(web["ports"][0], json!({"containerPort": 80, "protocol": "TCP"}));
        assert_eq!(
            web["readinessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                   "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(web["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        // What the client set is kept.
        assert_eq!(pod["containers"][1]["imagePullPolicy"], "Never");
    }

    #[test]
    fn a_set_strategy_is_kept_and_recreate_gets_no_rolling_update() {
        let mut d = json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}});
        default_object(&ty("Deployment"), &mut d, None);
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        let mut d = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}});
        default_object(&ty("Deployment"), &mut d, None);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}})
        );
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(image_pull_policy("registry:5000/team/app"), "Always");
        assert_eq!(image_pull_policy("registry:5000/team/app:1.0"), "IfNotPresent");
        assert_eq!(image_pull_policy("nginx@sha256:abcd"), "IfNotPresent");
        assert_eq!(image_pull_policy("nginx:1.27"), "IfNotPresent");
    }

    #[test]
    fn service_defaults_by_type() {
        let mut s = json!({"spec": {"clusterIP": "10.100.0.1", "ports": [{"port": 80}]}});
        default_object(&ty("Service"), &mut s, None);
        assert_eq!(
            s["spec"],
            json!({
                "type": "ClusterIP", "sessionAffinity": "None", "clusterIP": "10.100.0.1",
                "clusterIPs": ["10.100.0.1"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster",
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            })
        );
        let mut lb =
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": "https"}]}});
        default_object(&ty("Service"), &mut lb, None);
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(lb["spec"]["ports"][0]["targetPort"], "https");
        let mut ext = json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        default_object(&ty("Service"), &mut ext, None);
        assert!(ext["spec"].get("ipFamilies").is_none());
        assert!(ext["spec"].get("internalTrafficPolicy").is_none());
        assert!(ext["spec"].get("externalTrafficPolicy").is_none());
        let mut sticky = json!({"spec": {"sessionAffinity": "ClientIP"}});
        default_object(&ty("Service"), &mut sticky, None);
        assert_eq!(
            sticky["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
    }

    #[test]
    fn a_changed_cluster_ip_is_carried_into_cluster_ips() {
        let old = json!({"spec": {"clusterIP": "10.100.0.1", "clusterIPs": ["10.100.0.1"]}});
        let mut new = json!({"spec": {"clusterIP": "10.100.0.9", "clusterIPs": ["10.100.0.1"]}});
        default_object(&ty("Service"), &mut new, Some(&old));
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.100.0.9"]));
    }

    #[test]
    fn workloads_and_jobs_get_their_own_defaults() {
        let mut sts = json!({"spec": {"template": template(json!([{"name": "db", "image": "pg:16"}])),
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}});
        default_object(&ty("StatefulSet"), &mut sts, None);
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            sts["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["status"]["phase"],
            "Pending"
        );
        assert_eq!(sts["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");

        let mut ds = json!({"spec": {"template": template(json!([]))}});
        default_object(&ty("DaemonSet"), &mut ds, None);
        assert_eq!(
            ds["spec"]["updateStrategy"]["rollingUpdate"],
            json!({"maxUnavailable": 1, "maxSurge": 0})
        );

        let mut job = json!({"metadata": {"name": "migrate", "uid": "u-1"}, "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "app:1"}]}}}});
        default_object(&ty("Job"), &mut job, None);
        let spec = &job["spec"];
        assert_eq!(
            (spec["completions"].clone(), spec["parallelism"].clone()),
            (json!(1), json!(1))
        );
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(
            spec["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u-1"
        );
        assert_eq!(spec["template"]["metadata"]["labels"]["job-name"], "migrate");
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");

        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "a", "resources": {"limits": {"cpu": "1"}}}]}});
        default_object(&ty("Pod"), &mut pod, None);
        assert_eq!(pod["spec"]["enableServiceLinks"], true);
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["requests"],
            json!({"cpu": "1"})
        );
    }

    #[test]
    fn bindings_and_crds() {
        let mut rb =
            json!({"subjects": [{"kind": "User", "name": "a"}, {"kind": "ServiceAccount", "name": "b"}]});
        default_object(&ty("RoleBinding"), &mut rb, None);
        assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert!(rb["subjects"][1].get("apiGroup").is_none());
        let mut crd = json!({"spec": {"group": "x"}});
        default_object(&ty("CustomResourceDefinition"), &mut crd, None);
        assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
        let mut cm = json!({"data": {"a": "b"}});
        default_object(&ty("ConfigMap"), &mut cm, None);
        assert_eq!(cm, json!({"data": {"a": "b"}}));
    }
}
