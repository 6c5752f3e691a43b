//! `helm.release`: a Helm chart installed into a cluster, driven through
//! the `helm` program (see `helm_cli.rs` in this directory).
//!
//! The id is `<namespace>/<name>`. Cluster, name and namespace cannot
//! change in place (changing them replaces the release); chart,
//! repository, version and values change in place with another
//! `helm upgrade --install`, which makes a new revision.
//!
//! **Program.** `helm` on PATH, or the program `MESHFORM_HELM` names
//! ([`PROGRAM_ENV`]). [`HelmRelease::with_program`] fixes the program
//! instead (library users and tests, which must not change the
//! process-global environment).
//!
//! **Versions.** Helm 3.13 or later 3.x, or Helm 4.x. [`preflight`] (during
//! `validate`, `plan` and `apply`) runs `helm version --template
//! {{.Version}}` and refuses a missing program or a version outside that
//! range, naming the version found, before anything is changed; every
//! operation checks again (once per program and process). Arguments that
//! differ between Helm 3 and 4 are built for the major version found: the
//! differences, and why meshform leaves Helm 4's apply method at its
//! default (server-side apply for releases it installs), are in
//! `helm_version.rs`.
//!
//! **Connection.** Every helm call is told where the cluster is, never
//! left to helm's defaults, and never changes the user's kubeconfig:
//!
//! - with `MESHFORM_KUBE_SERVER` set, a temporary kubeconfig naming that
//!   server, without credentials;
//! - for an EKS cluster (`"${cluster.connection}"`), a temporary kubeconfig
//!   with the endpoint, the CA data and a fresh EKS token; a call that may
//!   outlast the token's 15 minutes (`wait_timeout_seconds` above 840)
//!   gets an `exec` entry running this program's `eks-token` instead, so
//!   that helm asks for new tokens as it goes (this assumes the running
//!   program is the `meshform` binary);
//! - for `{ kubeconfig_context = ... }`, `--kube-context` and, when given,
//!   `--kubeconfig`.
//!
//! Temporary kubeconfigs and the values file live in a private directory
//! (mode `0700`, files `0600`) removed after the call.
//!
//! **Create and update**: `helm upgrade --install NAME CHART --namespace NS
//! [--create-namespace] [--repo URL] [--version V] --values FILE
//! --reset-values --wait --timeout Ns --output json` (`--wait=watcher` for
//! Helm 4, whose bare `--wait` takes a strategy). The values file is
//! the `values` table as JSON (which is YAML); `--reset-values` makes the
//! release's values exactly that table, even when it is empty. Then the
//! release is read back.
//!
//! **Read**, one release at a time (helm has no batch read): `helm get
//! metadata -o json` (revision, status, chart version, app version; `helm
//! status` leaves the chart out of its JSON) and `helm get values -o json`
//! (the user-supplied values). "release: not found" means the release is
//! gone; any other failure is an error.
//!
//! `version` is reported as deployed when it was set as an exact version,
//! so that a chart upgraded or rolled back outside meshform shows as a
//! change; a version range (`^1.2`, `>=1.0 <2`) is reported as set. Chart
//! and repository are reported as recorded: helm does not keep where a
//! chart came from.
//!
//! **Delete**: `helm uninstall NAME --namespace NS --wait --timeout Ns`
//! (`--wait=watcher` for Helm 4, so it returns once the release's objects
//! are gone: a LoadBalancer Service whose cloud load balancer is still
//! being deleted holds its finalizer until then); a release that is
//! already gone is not an error. CRDs installed from a chart's `crds/`
//! directory stay, as with helm itself, and so does whatever the chart
//! marks `helm.sh/resource-policy: keep` (Istio's base chart keeps its
//! CRDs that way).
//!
//! **Leftovers** (`delete_after_uninstall`): after the uninstall, meshform
//! deletes what the release leaves behind on purpose or by accident, so
//! that a later install starts clean: each entry names a kind
//! (`api_version`, `kind`), optionally a `namespace`, and selects its
//! objects by `names` (patterns where `*` matches any run of characters)
//! and/or a `label_selector` (at least one of them: an entry never means
//! every object of a kind). Each selected object is deleted and waited for
//! until gone; a kind the cluster no longer serves has nothing left. It
//! runs also when the release was already gone, so a destroy that failed
//! half-way finishes the sweep when run again. The entries are checked
//! before the first install (a bad entry fails the create before helm
//! runs); changing them changes nothing in the cluster, only what the
//! delete will sweep.
//!
//! **Load balancer** (`load_balancer_hostname`, computed): the ingress
//! hostname (or IP) of the release's first LoadBalancer Service (by name;
//! the Services carrying helm's `meta.helm.sh/release-name` annotation in
//! the release's namespace), read from the API server after each install
//! and at every refresh; empty while the cloud has not given it one yet
//! (Helm 4's watcher does not wait for it), so an output built from it
//! shows the hostname from the refresh after the load balancer exists.
//!
//! Helm releases carry no ownership tags: [`ResourceKind::find_existing`]
//! finds a `deployed` release of the name in the namespace, and a create
//! over an existing release of the same name upgrades it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kube::api::{DeleteParams, ListParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;

use super::connection::{Clients, Connection, server_override};
use super::helm_cli::{
    CONTEXT_NAME, Helm, ReleaseMetadata, Scratch, UserAuth, is_release_not_found, kubeconfig_yaml, os_args,
    parse_metadata, parse_values,
};
pub use super::helm_cli::{NOT_ON_PATH, PROGRAM_ENV, locate as locate_helm};
use super::helm_version::HelmVersion;
use super::objects::{ObjectKey, Resolver, api_error, dyn_api, is_not_found, name_matches};
use super::wait;
use crate::kubeconfig::{EksCluster, ExecCommand};
use crate::provider::schema::{KindDef, attrs};
use crate::provider::{
    InPlace, Live, OpContext, Progress, ProviderError, ReadRequest, ResourceKind, Schema, attr_bool,
    attr_opt_str, attr_str,
};
use crate::{Attrs, Value};

/// Schema of `helm.release`.
pub static DEF: KindDef = KindDef {
    type_name: "helm.release",
    doc: "A Helm chart release, installed and upgraded with the `helm` program. The id is `<namespace>/<name>`.",
    attrs: attrs! {
        /// The cluster: "${cluster.connection}" of an aws.eks.cluster, or { kubeconfig_context =
        /// "name", kubeconfig = "path" }.
        required cluster: Json, force_new;
        /// Release name.
        required name: String, force_new;
        /// Namespace the release is installed in.
        required namespace: String, force_new;
        /// Chart: a name with `repository`, `repo/name` of a repository helm knows, an OCI reference or
        /// a path. Changes in place (an upgrade).
        required chart: String;
        /// Chart repository URL (helm's --repo). Changes in place.
        optional repository: String;
        /// Chart version or version range; the latest when not set. Changes in place.
        optional version: String;
        /// Create the namespace if it does not exist (helm's --create-namespace).
        optional create_namespace: Bool = Bool(false);
        /// Chart values, as a table. Changes in place; the release's values are exactly these.
        optional values: Json;
        /// How long helm waits for the release's resources to be ready (or gone, on delete).
        optional wait_timeout_seconds: Int = Int(DEFAULT_WAIT_SECONDS as i64);
        /// What to delete after `helm uninstall` (and wait for until gone): a list of { api_version,
        /// kind, namespace (optional), names (patterns, `*` = any characters), label_selector }, each
        /// with `names` or `label_selector` or both. For what a chart keeps on purpose
        /// (`helm.sh/resource-policy: keep`, such as Istio's CRDs) or leaves behind (webhook
        /// configurations), so that a later install does not fail. Changes in place (only what a later
        /// delete sweeps).
        optional delete_after_uninstall: Json;
        /// Ingress hostname (or IP) of the release's first LoadBalancer Service, read from the API
        /// server after each install and at every refresh; empty until the cloud gives one.
        computed load_balancer_hostname: String;
        /// The release's revision: 1, then one more per upgrade.
        computed revision: Int;
        /// The release's status, such as `deployed`.
        computed status: String;
        /// The deployed chart's appVersion.
        computed app_version: String;
        /// The deployed chart's version.
        computed chart_version: String;
    },
    normalize: Some(normalize),
    preflight: Some(preflight),
    identity: &[&["cluster", "namespace", "name"]],
    ..KindDef::BASE
};

/// Default of `wait_timeout_seconds`.
const DEFAULT_WAIT_SECONDS: u64 = 600;

/// The longest helm call a fresh EKS token is used for; longer ones get an
/// `exec` entry (tokens are accepted for 15 minutes).
const TOKEN_SAFE_SECONDS: u64 = 840;

/// Time limit of helm calls that do not wait for resources.
const QUICK_CALL_LIMIT: Duration = Duration::from_secs(300);

/// Attributes [`ResourceKind::update`] changes in place (the others are
/// force-new; a test checks the schema agrees).
#[cfg(test)]
const IN_PLACE: &[&str] = &[
    "chart",
    "repository",
    "version",
    "create_namespace",
    "values",
    "wait_timeout_seconds",
    "delete_after_uninstall",
];

/// In-place attributes whose change needs a helm upgrade (the others only
/// change how meshform calls helm).
const UPGRADE_ON: &[&str] = &["chart", "repository", "version", "values"];

/// Checks a helm program can be found ([`locate_helm`] with this process's
/// `MESHFORM_HELM` and `PATH`) and is a supported version (`helm
/// version`; see `helm_version.rs`), logging which it is.
pub fn preflight() -> Result<(), String> {
    let program = super::helm_cli::locate_from_env()?;
    let version = super::helm_cli::version_blocking(&program)?;
    tracing::info!(program = %program.display(), %version, "helm found");
    Ok(())
}

/// Canonical form of attribute `attr` of `helm.release`: in `values`,
/// numbers with an integral value become integers (helm reads values as
/// YAML and answers `2` for `2.0`). Other attributes are returned unchanged.
pub fn normalize(attr: &str, value: Value) -> Value {
    if attr == "values" {
        integral_numbers(value)
    } else {
        value
    }
}

fn integral_numbers(value: Value) -> Value {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral_numbers).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, integral_numbers(v))).collect()),
        other => other,
    }
}

/// Whether a `version` is a range rather than one version.
fn is_version_range(version: &str) -> bool {
    version.contains(['^', '~', '<', '>', '=', '*', '|', ',', ' '])
        || version.split('.').any(|part| matches!(part, "x" | "X"))
}

/// The `version` a read reports: none when none was set; the set value when
/// it is a range or names the deployed version; else the deployed version.
fn reported_version(recorded: Option<&str>, deployed: &str) -> Option<String> {
    let recorded = recorded?;
    let bare = |v: &str| v.trim().trim_start_matches('v').to_string();
    if is_version_range(recorded) || bare(recorded) == bare(deployed) {
        Some(recorded.to_string())
    } else {
        Some(deployed.to_string())
    }
}

/// The values to install: the `values` table, `{}` when not set.
fn desired_values(desired: &Attrs) -> Result<Value, ProviderError> {
    match desired.get("values") {
        None | Some(Value::Null) => Ok(Value::Object(serde_json::Map::new())),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err(ProviderError::invalid("values", "must be a table")),
            Err(e) => Err(ProviderError::invalid("values", format!("not valid JSON: {e}"))),
        },
        Some(_) => Err(ProviderError::invalid("values", "must be a table")),
    }
}

/// One entry of `delete_after_uninstall`: objects of one kind to delete
/// after the release is uninstalled.
#[derive(Debug, Clone, PartialEq)]
struct Leftover {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    names: Vec<String>,
    label_selector: Option<String>,
}

impl Leftover {
    /// Whether an object of this entry's kind named `name` is selected
    /// (the label selector is applied by the API server's list).
    fn selects(&self, name: &str) -> bool {
        self.names.is_empty() || self.names.iter().any(|p| name_matches(p, name))
    }

    fn describe(&self) -> String {
        let mut what = vec![];
        if !self.names.is_empty() {
            what.push(format!("named {}", self.names.join(" or ")));
        }
        if let Some(sel) = &self.label_selector {
            what.push(format!("labelled {sel}"));
        }
        let ns = self
            .namespace
            .as_deref()
            .map(|n| format!(" in {n}"))
            .unwrap_or_default();
        format!("{} {}{ns} {}", self.api_version, self.kind, what.join(", "))
    }
}

/// The entries of `delete_after_uninstall` (none when not set); `Err`
/// names the entry and what is wrong with it.
fn leftovers(attrs: &Attrs) -> Result<Vec<Leftover>, ProviderError> {
    const ATTR: &str = "delete_after_uninstall";
    let items = match attrs.get(ATTR) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(items)) => items,
            _ => return Err(ProviderError::invalid(ATTR, "must be a list of tables")),
        },
        Some(_) => return Err(ProviderError::invalid(ATTR, "must be a list of tables")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let bad = |msg: &str| ProviderError::invalid(ATTR, format!("entry {}: {msg}", i + 1));
            let Some(table) = item.as_object() else {
                return Err(bad("must be a table"));
            };
            if let Some(key) = table.keys().find(|k| {
                !["api_version", "kind", "namespace", "names", "label_selector"].contains(&k.as_str())
            }) {
                return Err(bad(&format!(
                    "unknown key `{key}` (keys: api_version, kind, namespace, names, label_selector)"
                )));
            }
            let text = |key: &str| -> Result<Option<String>, ProviderError> {
                match table.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                    Some(_) => Err(bad(&format!("`{key}` must be a non-empty string"))),
                }
            };
            let api_version = text("api_version")?.ok_or_else(|| bad("`api_version` is required"))?;
            let kind = text("kind")?.ok_or_else(|| bad("`kind` is required"))?;
            let names = match table.get("names") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(names)) => names
                    .iter()
                    .map(|n| {
                        n.as_str()
                            .filter(|n| !n.is_empty())
                            .map(str::to_string)
                            .ok_or_else(|| bad("`names` holds non-empty strings"))
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(bad("`names` must be a list of strings")),
            };
            let label_selector = text("label_selector")?;
            if names.is_empty() && label_selector.is_none() {
                return Err(bad(
                    "give `names` or `label_selector` (an entry never selects every object of a kind)",
                ));
            }
            Ok(Leftover {
                api_version,
                kind,
                namespace: text("namespace")?,
                names,
                label_selector,
            })
        })
        .collect()
}

/// The ingress hostname (or IP) of a Service's load balancer, if it has one.
fn ingress_of(service: &Value) -> Option<String> {
    service
        .pointer("/status/loadBalancer/ingress")?
        .as_array()?
        .iter()
        .find_map(|i| {
            i.get("hostname")
                .or_else(|| i.get("ip"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
}

/// The hostname of the first (by name) LoadBalancer Service among
/// `services` that helm's annotation assigns to `release`; empty if none.
fn release_load_balancer(services: &[Value], release: &str) -> String {
    let mut lbs: Vec<&Value> = services
        .iter()
        .filter(|s| s.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer"))
        .filter(|s| {
            s.pointer("/metadata/annotations/meta.helm.sh~1release-name")
                .and_then(Value::as_str)
                == Some(release)
        })
        .collect();
    lbs.sort_by_key(|s| {
        s.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    });
    lbs.first().and_then(|s| ingress_of(s)).unwrap_or_default()
}

/// Which release an operation is about, and how to reach its cluster.
#[derive(Debug, Clone)]
struct Target {
    conn: Connection,
    name: String,
    namespace: String,
    wait_seconds: u64,
}

impl Target {
    fn from_attrs(attrs: &Attrs) -> Result<Target, ProviderError> {
        let conn = Connection::parse(
            attrs
                .get("cluster")
                .ok_or_else(|| ProviderError::invalid("cluster", "missing"))?,
        )?;
        let wait_seconds = match attrs.get("wait_timeout_seconds") {
            None => DEFAULT_WAIT_SECONDS,
            Some(v) => v.as_u64().filter(|s| *s > 0).ok_or_else(|| {
                ProviderError::invalid("wait_timeout_seconds", "must be a positive integer")
            })?,
        };
        Ok(Target {
            conn,
            name: attr_str(attrs, "name")?.to_string(),
            namespace: attr_str(attrs, "namespace")?.to_string(),
            wait_seconds,
        })
    }

    fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Time limit of a call that waits for resources: helm's own timeout
    /// applies to each wait, so allow twice that and some.
    fn waiting_call_limit(&self) -> Duration {
        Duration::from_secs(self.wait_seconds.saturating_mul(2).saturating_add(300))
    }
}

/// The arguments telling helm how to reach `conn`, writing a kubeconfig
/// into `scratch` when meshform makes one. `long` is whether the call may
/// outlast an EKS token.
async fn connection_args(
    conn: &Connection,
    scratch: &Scratch,
    long: bool,
) -> Result<Vec<OsString>, ProviderError> {
    let text = if let Some(server) = server_override(conn)? {
        kubeconfig_yaml(&server, None, &UserAuth::Anonymous)?
    } else {
        match conn {
            Connection::Context { context, kubeconfig } => {
                let mut args = os_args(["--kube-context", context.as_str()]);
                if let Some(path) = kubeconfig {
                    args.extend(os_args([OsString::from("--kubeconfig"), path.into()]));
                }
                return Ok(args);
            }
            Connection::Eks {
                name,
                endpoint,
                certificate_authority_data,
                region,
            } => {
                let auth = if long {
                    let program = std::env::current_exe().map_err(|e| {
                        ProviderError::Config(format!(
                            "{}: cannot tell where the meshform program is (for `eks-token`): {e}",
                            conn.describe()
                        ))
                    })?;
                    let cluster = EksCluster {
                        address: String::new(),
                        name: name.clone(),
                        arn: None,
                        endpoint: endpoint.clone(),
                        certificate_authority_data: certificate_authority_data.clone(),
                        region: region.clone(),
                    };
                    UserAuth::Exec(ExecCommand::eks_token(&program, &cluster))
                } else {
                    let token = crate::eks_auth::fresh_token(name, region).await.map_err(|e| {
                        ProviderError::Config(format!("{}: cannot make an EKS token: {e}", conn.describe()))
                    })?;
                    UserAuth::Token(token.token)
                };
                kubeconfig_yaml(endpoint, Some(certificate_authority_data), &auth)?
            }
        }
    };
    let path = scratch.write("kubeconfig", text.as_bytes())?;
    Ok(os_args([
        OsString::from("--kubeconfig"),
        path.into(),
        OsString::from("--kube-context"),
        OsString::from(CONTEXT_NAME),
    ]))
}

/// A release's attributes: what `recorded` (the desired or last applied
/// attributes) says for those helm does not keep, the rest from helm.
fn live_from(
    recorded: &Attrs,
    target: &Target,
    meta: &ReleaseMetadata,
    values: Value,
    lb_hostname: String,
) -> Live {
    let mut attrs = Attrs::new();
    if let Some(cluster) = recorded.get("cluster") {
        attrs.insert("cluster".into(), cluster.clone());
    }
    attrs.insert("name".into(), Value::String(target.name.clone()));
    attrs.insert("namespace".into(), Value::String(target.namespace.clone()));
    for key in ["chart", "repository"] {
        if let Some(v) = attr_opt_str(recorded, key) {
            attrs.insert(key.into(), Value::String(v.to_string()));
        }
    }
    if let Some(v) = reported_version(attr_opt_str(recorded, "version"), &meta.version) {
        attrs.insert("version".into(), Value::String(v));
    }
    attrs.insert(
        "create_namespace".into(),
        Value::Bool(attr_bool(recorded, "create_namespace")),
    );
    attrs.insert("values".into(), normalize("values", values));
    attrs.insert("wait_timeout_seconds".into(), Value::from(target.wait_seconds));
    if let Some(v) = recorded.get("delete_after_uninstall").filter(|v| !v.is_null()) {
        attrs.insert("delete_after_uninstall".into(), v.clone());
    }
    attrs.insert("load_balancer_hostname".into(), Value::String(lb_hostname));
    attrs.insert("revision".into(), Value::from(meta.revision));
    attrs.insert("status".into(), Value::String(meta.status.clone()));
    attrs.insert("app_version".into(), Value::String(meta.app_version.clone()));
    attrs.insert("chart_version".into(), Value::String(meta.version.clone()));
    Live {
        id: target.id(),
        attrs,
    }
}

/// `Ok(None)` for a "release: not found" failure.
fn unless_gone<T>(result: Result<T, ProviderError>) -> Result<Option<T>, ProviderError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_release_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The operations, given the helm program and its (supported) version.
struct Ops {
    helm: Helm,
    version: HelmVersion,
    /// Kubernetes clients, for what helm does not answer: the release's
    /// load balancer and the leftovers to delete.
    clients: Arc<Clients>,
}

impl Ops {
    /// Asks `program` its version, refusing an unsupported one.
    async fn new(program: PathBuf, clients: Arc<Clients>) -> Result<Ops, ProviderError> {
        let helm = Helm { program };
        let version = helm.version().await?;
        Ok(Ops {
            helm,
            version,
            clients,
        })
    }

    /// The release's load balancer hostname ([`release_load_balancer`]
    /// over the Services of its namespace).
    async fn load_balancer_hostname(&self, target: &Target) -> Result<String, ProviderError> {
        let client = self.clients.client(&target.conn).await?;
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Service"));
        let api = dyn_api(&client, &ar, Some(&target.namespace));
        let operation = format!("list of Services in {}", target.namespace);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| api_error(&operation, e))?;
        let services = list
            .items
            .iter()
            .map(|s| super::objects::to_value(s, &operation))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(release_load_balancer(&services, &target.name))
    }

    /// Deletes what `delete_after_uninstall` selects, waiting for each
    /// object to be gone.
    async fn delete_leftovers(
        &self,
        cx: &OpContext,
        target: &Target,
        wanted: &[Leftover],
    ) -> Result<(), ProviderError> {
        if wanted.is_empty() {
            return Ok(());
        }
        let client = self.clients.client(&target.conn).await?;
        let mut resolver = Resolver::new(client.clone());
        let timeout = wait::delete_timeout(Duration::from_secs(target.wait_seconds));
        for entry in wanted {
            let key = ObjectKey {
                api_version: entry.api_version.clone(),
                kind: entry.kind.clone(),
                namespace: entry.namespace.clone(),
                name: String::new(),
            };
            // A kind no longer served has no objects left.
            let Some((ar, namespaced)) = resolver.resolve(&key).await? else {
                continue;
            };
            let scope = if namespaced {
                entry.namespace.as_deref()
            } else {
                None
            };
            let mut params = ListParams::default();
            if let Some(sel) = &entry.label_selector {
                params = params.labels(sel);
            }
            let operation = format!("list of {}", entry.describe());
            let list = dyn_api(&client, &ar, scope)
                .list(&params)
                .await
                .map_err(|e| api_error(&operation, e))?;
            let mut found: Vec<(Option<String>, String)> = list
                .items
                .iter()
                .filter_map(|o| Some((o.metadata.namespace.clone(), o.metadata.name.clone()?)))
                .filter(|(_, name)| entry.selects(name))
                .collect();
            found.sort();
            for (ns, name) in found {
                let subject = match &ns {
                    Some(ns) => format!("{} {ns}/{name}", entry.kind),
                    None => format!("{} {name}", entry.kind),
                };
                let api = dyn_api(&client, &ar, ns.as_deref());
                cx.progress
                    .report(&format!("deleting {subject}, left by release {}", target.id()));
                let uid = match api.delete(&name, &DeleteParams::default()).await {
                    Ok(either) => match either.left() {
                        Some(obj) => obj.metadata.uid,
                        None => continue,
                    },
                    Err(e) if is_not_found(&e) => continue,
                    Err(e) => return Err(api_error(&format!("delete of {subject}"), e)),
                };
                wait::wait_gone(api, &name, uid.as_deref(), &subject, timeout, &cx.progress).await?;
            }
        }
        Ok(())
    }

    /// `helm upgrade --install` to the desired attributes, then a read.
    async fn install(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let target = Target::from_attrs(desired)?;
        let chart = attr_str(desired, "chart")?;
        let values = desired_values(desired)?;
        // Checked now so that a bad entry fails before anything is installed.
        leftovers(desired)?;
        let values_json = serde_json::to_vec_pretty(&values)
            .map_err(|e| ProviderError::invalid("values", format!("cannot serialize: {e}")))?;

        let scratch = Scratch::new()?;
        let values_file = scratch.write("values.json", &values_json)?;
        let mut args = os_args([
            "upgrade",
            "--install",
            target.name.as_str(),
            chart,
            "--namespace",
            target.namespace.as_str(),
        ]);
        if attr_bool(desired, "create_namespace") {
            args.extend(os_args(["--create-namespace"]));
        }
        if let Some(repo) = attr_opt_str(desired, "repository").filter(|r| !r.is_empty()) {
            args.extend(os_args(["--repo", repo]));
        }
        if let Some(version) = attr_opt_str(desired, "version").filter(|v| !v.is_empty()) {
            args.extend(os_args(["--version", version]));
        }
        args.extend(os_args([OsString::from("--values"), values_file.into()]));
        args.extend(os_args(["--reset-values", self.version.wait_flag(), "--timeout"]));
        args.push(format!("{}s", target.wait_seconds).into());
        args.extend(os_args(["--output", "json"]));
        args.extend(connection_args(&target.conn, &scratch, target.wait_seconds > TOKEN_SAFE_SECONDS).await?);

        cx.progress.report(&format!(
            "helm upgrade --install {} ({chart}) in namespace {} with Helm {}, waiting up to {}s for its resources",
            target.name, target.namespace, self.version, target.wait_seconds
        ));
        self.helm
            .run(
                "helm upgrade --install",
                &args,
                target.waiting_call_limit(),
                &cx.progress,
            )
            .await?;
        drop(scratch);
        self.live(desired).await?.ok_or_else(|| {
            ProviderError::unexpected(
                "helm upgrade --install",
                format!("release {} not found right after installing it", target.id()),
            )
        })
    }

    /// The release `recorded` names, `None` when helm has no such release.
    async fn live(&self, recorded: &Attrs) -> Result<Option<Live>, ProviderError> {
        let target = Target::from_attrs(recorded)?;
        let scratch = Scratch::new()?;
        let conn = connection_args(&target.conn, &scratch, false).await?;
        let get = |what: &str| {
            let mut args = os_args([
                "get",
                what,
                target.name.as_str(),
                "--namespace",
                target.namespace.as_str(),
                "--output",
                "json",
            ]);
            args.extend(conn.iter().cloned());
            args
        };
        let quiet = Progress::default();
        let Some(out) = unless_gone(
            self.helm
                .run("helm get metadata", &get("metadata"), QUICK_CALL_LIMIT, &quiet)
                .await,
        )?
        else {
            return Ok(None);
        };
        let meta = parse_metadata(&out)?;
        let Some(out) = unless_gone(
            self.helm
                .run("helm get values", &get("values"), QUICK_CALL_LIMIT, &quiet)
                .await,
        )?
        else {
            return Ok(None);
        };
        let values = parse_values(&out)?;
        let lb = self.load_balancer_hostname(&target).await?;
        Ok(Some(live_from(recorded, &target, &meta, values, lb)))
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        let mut out = Vec::with_capacity(requests.len());
        for req in requests {
            out.push(self.live(&req.attrs).await?);
        }
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        // A force-new attribute never reaches an update: the engine replaces
        // the release instead.
        if change.has_any(UPGRADE_ON) {
            return self.install(cx, change.desired).await;
        }
        let target = Target::from_attrs(change.desired)?;
        self.live(change.desired).await?.ok_or_else(|| {
            ProviderError::unexpected(
                "helm get metadata",
                format!("release {} disappeared during the update", target.id()),
            )
        })
    }

    async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let target = Target::from_attrs(&prior.attrs)?;
        let sweep = leftovers(&prior.attrs)?;
        let scratch = Scratch::new()?;
        let mut args = os_args([
            "uninstall",
            target.name.as_str(),
            "--namespace",
            target.namespace.as_str(),
            self.version.wait_flag(),
            "--timeout",
        ]);
        args.push(format!("{}s", target.wait_seconds).into());
        args.extend(connection_args(&target.conn, &scratch, target.wait_seconds > TOKEN_SAFE_SECONDS).await?);
        cx.progress.report(&format!(
            "helm uninstall {} in namespace {}, waiting up to {}s for its resources to go",
            target.name, target.namespace, target.wait_seconds
        ));
        unless_gone(
            self.helm
                .run("helm uninstall", &args, target.waiting_call_limit(), &cx.progress)
                .await,
        )?;
        drop(scratch);
        self.delete_leftovers(cx, &target, &sweep).await
    }

    async fn find_existing(&self, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        Ok(self
            .live(desired)
            .await?
            .filter(|live| live.attrs.get("status").and_then(Value::as_str) == Some("deployed")))
    }
}

/// Operations of `helm.release`, running the helm program [`preflight`]
/// finds (`MESHFORM_HELM`, else `helm` on PATH) at each call.
pub struct HelmRelease(pub Arc<Clients>);

impl HelmRelease {
    /// Operations of `helm.release` that run `program` as helm, whatever
    /// the environment says.
    pub fn with_program(clients: Arc<Clients>, program: PathBuf) -> HelmReleaseWithProgram {
        HelmReleaseWithProgram { clients, program }
    }

    async fn ops(&self) -> Result<Ops, ProviderError> {
        let program = super::helm_cli::locate_from_env().map_err(ProviderError::Config)?;
        Ops::new(program, self.0.clone()).await
    }
}

/// Operations of `helm.release` with a fixed helm program (see
/// [`HelmRelease::with_program`]).
pub struct HelmReleaseWithProgram {
    /// The shared Kubernetes client cache (for the reads and deletes helm
    /// does not do).
    pub clients: Arc<Clients>,
    /// The helm program.
    pub program: PathBuf,
}

impl HelmReleaseWithProgram {
    async fn ops(&self) -> Result<Ops, ProviderError> {
        Ops::new(self.program.clone(), self.clients.clone()).await
    }
}

/// Implements [`ResourceKind`] for a type with `async fn ops(&self) -> Result<Ops, ProviderError>`.
macro_rules! helm_release_kind {
    ($ty:ty) => {
        impl Schema for $ty {
            fn def(&self) -> &'static KindDef {
                &DEF
            }
        }

        #[async_trait]
        impl ResourceKind for $ty {
            async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
                self.ops().await?.install(cx, desired).await
            }

            async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
                if requests.is_empty() {
                    return Ok(Vec::new());
                }
                self.ops().await?.read(requests).await
            }

            async fn update(&self, cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
                self.ops().await?.update(cx, change).await
            }

            async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
                self.ops().await?.delete(cx, prior).await
            }

            async fn find_existing(
                &self,
                _cx: &OpContext,
                desired: &Attrs,
            ) -> Result<Option<Live>, ProviderError> {
                self.ops().await?.find_existing(desired).await
            }
        }
    };
}

helm_release_kind!(HelmRelease);
helm_release_kind!(HelmReleaseWithProgram);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_numbers_compare_as_helm_answers_them() {
        assert_eq!(
            normalize(
                "values",
                json!({"replicas": 2.0, "ratio": 0.5, "list": [1.0, "a"], "n": 3})
            ),
            json!({"replicas": 2, "ratio": 0.5, "list": [1, "a"], "n": 3})
        );
        assert_eq!(normalize("chart", json!(2.0)), json!(2.0));
    }

    #[test]
    fn version_reported_as_deployed_unless_a_range() {
        assert_eq!(reported_version(None, "1.2.3"), None);
        assert_eq!(reported_version(Some("1.2.3"), "1.2.3").as_deref(), Some("1.2.3"));
        assert_eq!(
            reported_version(Some("v1.2.3"), "1.2.3").as_deref(),
            Some("v1.2.3")
        );
        assert_eq!(reported_version(Some("1.2.3"), "1.3.0").as_deref(), Some("1.3.0"));
        for range in ["^1.2", "~1.2.0", ">=1.0 <2", "1.x", "*"] {
            assert_eq!(reported_version(Some(range), "1.3.0").as_deref(), Some(range));
        }
    }

    #[test]
    fn values_must_be_a_table() {
        let attrs = |v: Value| -> Attrs {
            let mut a = Attrs::new();
            a.insert("values".into(), v);
            a
        };
        assert_eq!(desired_values(&Attrs::new()).unwrap(), json!({}));
        assert_eq!(desired_values(&attrs(json!({"a": 1}))).unwrap(), json!({"a": 1}));
        assert_eq!(
            desired_values(&attrs(json!("{\"a\": 1}"))).unwrap(),
            json!({"a": 1})
        );
        assert!(desired_values(&attrs(json!([1]))).is_err());
        assert!(desired_values(&attrs(json!("[1]"))).is_err());
    }

    #[test]
    fn target_needs_cluster_name_namespace_and_a_positive_wait() {
        let attrs = |v: Value| -> Attrs { v.as_object().cloned().unwrap_or_default() };
        let ok = attrs(json!({
            "cluster": {"kubeconfig_context": "kind"},
            "name": "appmesh-controller",
            "namespace": "appmesh-system",
        }));
        let t = Target::from_attrs(&ok).unwrap();
        assert_eq!(
            (t.id().as_str(), t.wait_seconds),
            ("appmesh-system/appmesh-controller", 600)
        );
        let mut bad = ok.clone();
        bad.insert("wait_timeout_seconds".into(), json!(0));
        assert!(Target::from_attrs(&bad).is_err());
        let mut bad = ok.clone();
        bad.remove("cluster");
        assert!(Target::from_attrs(&bad).is_err());
    }

    #[test]
    fn leftovers_are_checked_and_select_by_name_pattern() {
        let attrs = |v: Value| -> Attrs {
            let mut a = Attrs::new();
            a.insert("delete_after_uninstall".into(), v);
            a
        };
        assert_eq!(leftovers(&Attrs::new()).unwrap(), vec![]);
        let got = leftovers(&attrs(json!([
            {"api_version": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "names": ["*.istio.io"]},
            {"api_version": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
             "label_selector": "app=istiod"},
        ])))
        .unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].selects("virtualservices.networking.istio.io"));
        assert!(!got[0].selects("meshes.appmesh.k8s.aws"));
        assert!(
            got[1].selects("anything"),
            "the label selector does the selecting"
        );
        for bad in [
            json!({"kind": "X"}),
            json!([{"api_version": "v1", "kind": "ConfigMap"}]),
            json!([{"api_version": "v1", "names": ["a"]}]),
            json!([{"api_version": "v1", "kind": "ConfigMap", "names": [""]}]),
            json!([{"api_version": "v1", "kind": "ConfigMap", "names": ["a"], "nmae": 1}]),
        ] {
            assert!(leftovers(&attrs(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn load_balancer_hostname_is_the_releases_first_with_an_ingress() {
        let svc = |name: &str, release: &str, ty: &str, ingress: Value| {
            json!({
                "metadata": {"name": name, "annotations": {"meta.helm.sh/release-name": release}},
                "spec": {"type": ty},
                "status": {"loadBalancer": {"ingress": ingress}},
            })
        };
        let services = [
            svc(
                "other",
                "someone-else",
                "LoadBalancer",
                json!([{"hostname": "x.elb"}]),
            ),
            svc(
                "istio-ingress",
                "istio-ingress",
                "LoadBalancer",
                json!([{"hostname": "gw.elb"}]),
            ),
            svc("internal", "istio-ingress", "ClusterIP", json!([])),
        ];
        assert_eq!(release_load_balancer(&services, "istio-ingress"), "gw.elb");
        assert_eq!(release_load_balancer(&services, "istiod"), "");
        let pending = [svc("istio-ingress", "istio-ingress", "LoadBalancer", json!([]))];
        assert_eq!(release_load_balancer(&pending, "istio-ingress"), "");
        let by_ip = [svc("gw", "gw", "LoadBalancer", json!([{"ip": "192.0.2.1"}]))];
        assert_eq!(release_load_balancer(&by_ip, "gw"), "192.0.2.1");
    }

    #[test]
    fn the_schema_is_as_documented() {
        let attr = |n: &str| DEF.attr(n).unwrap_or_else(|| panic!("{n}"));
        for n in ["cluster", "name", "namespace"] {
            assert!(attr(n).force_new, "{n}");
        }
        for n in IN_PLACE {
            assert!(!attr(n).force_new, "{n}");
        }
        assert!(!DEF.taggable);
        assert!(DEF.preflight.is_some());
    }
}
