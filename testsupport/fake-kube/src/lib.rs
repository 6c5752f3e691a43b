//! A FAKE Kubernetes API server for tests. It is not Kubernetes: no etcd,
//! no scheduler, no kubelet, no real controllers. It speaks real HTTP/1.1
//! and the real API's JSON on 127.0.0.1 (plain http, no auth), so the real
//! client (kube-rs) and code built on it run against it unchanged, and it
//! follows the real API's behaviour where tests can see it. What it does,
//! and where it simplifies:
//!
//! **Serving and discovery** (`discovery.rs`, `kinds.rs`): built-in kinds,
//! with the scope, short names, categories and `/status` subresource the
//! real server's discovery shows: core/v1 Namespace, ConfigMap, Secret,
//! Service, ServiceAccount, Pod, PersistentVolumeClaim, Endpoints, Event;
//! apps/v1 Deployment, StatefulSet, DaemonSet, ReplicaSet; batch/v1 Job,
//! CronJob; policy/v1 PodDisruptionBudget; autoscaling/v2
//! HorizontalPodAutoscaler; apiextensions.k8s.io/v1
//! CustomResourceDefinition; rbac.authorization.k8s.io/v1 Role,
//! RoleBinding, ClusterRole, ClusterRoleBinding;
//! admissionregistration.k8s.io/v1 Validating- and
//! MutatingWebhookConfiguration; networking.k8s.io/v1 Ingress,
//! IngressClass, NetworkPolicy; coordination.k8s.io/v1 Lease. They are
//! stored and served generically (only Namespaces, Deployments, Services,
//! Secrets and CRDs get per-kind defaults and validation, see
//! `strategy.rs`). Any other kind only once a CRD defines it and is
//! Established; before that its paths (and its group/version in
//! discovery) are 404 "the server could not find the requested resource".
//! `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}`
//! answer as the real server does, and `/api` and `/apis` answer in the
//! aggregated form (apidiscovery.k8s.io v2 or v2beta1, with the exact
//! `Content-Type` client-go checks) when `Accept` asks for it; an `Accept`
//! naming only encodings the fake does not produce (protobuf, YAML, CBOR;
//! tables other than on reads of resources) is 406. So kubectl, Helm and kube-rs (`Discovery::run()`,
//! `run_aggregated()`) discover what is served.
//!
//! **OpenAPI** (`openapi.rs`): `/openapi/v3` (index with `?hash=` URLs) and
//! one document per group/version, and `/openapi/v2` as JSON (406 to
//! client-go's protobuf-only request, so kubectl uses v3). Built-in
//! schemas are the real ones (from k8s-openapi, so `kubectl explain`
//! works) with the strategic-merge extensions written from the same table
//! the fake's strategic merge uses; custom resources get their CRD's
//! `openAPIV3Schema`. PATCH operations list `fieldValidation`, so kubectl
//! sends `fieldValidation=Strict` and skips client-side validation; the
//! fake accepts the parameter but does not check fields.
//!
//! **Objects** (`api.rs`, `store.rs`, `strategy.rs`): GET; LIST (kind
//! `XList`, `metadata.resourceVersion`, `labelSelector` and `fieldSelector`
//! as in `selectors.rs`, including each kind's own selectable fields such
//! as an Event's `involvedObject.*`, `limit`/`continue` paging, where a later page sees
//! the current state rather than a snapshot); POST (201; 409 AlreadyExists;
//! 404 when the namespace is missing, 403 when it is terminating; 422
//! Invalid without a name; `generateName`); PUT (409 Conflict on a stale
//! `resourceVersion`; 404 when missing, no create-on-update); PATCH with
//! `application/apply-patch+yaml` (server-side apply, see `apply.rs`;
//! without `fieldManager` the real server's 422 `PatchOptions... is
//! invalid: fieldManager: Required value`; creates when missing, 201; the
//! body must be JSON, which is what kube-rs sends), with
//! `application/merge-patch+json` (RFC 7386), with
//! `application/strategic-merge-patch+json` (`strategic_merge.rs`: lists
//! such as containers, env, ports, volumes merge by key, with the
//! directives kubectl's client-side apply sends; refused with 415 on
//! custom resources, as the real server does) and with
//! `application/json-patch+json` (RFC 6902, `json_patch.rs`; managedFields
//! it rewrites replace the stored ones, as kubectl's move from client-side
//! to server-side apply needs). DELETE (200 with, as the real server
//! answers, a `Status` of `Success` naming the object, or the object
//! itself for Services, ServiceAccounts and Pods; for an object with
//! finalizers, `deletionTimestamp` is set and it stays, 200 with the
//! object, until an update empties its finalizers, at which point it is removed; 404 when missing;
//! preconditions honoured; `propagationPolicy` ignored: there is no garbage
//! collector) and DELETE on a collection. `/status` subresources for the
//! kinds that have one (as listed in discovery, and custom resources that
//! declare it): writes to the main resource keep the stored status,
//! writes to `/status` change only it.
//!
//! Every change gets the next value of one global counter as its
//! `resourceVersion` (a string of an integer); a write that changes nothing
//! is not a change (no new resourceVersion, no event), as with the real
//! server. Objects get `uid` and `creationTimestamp`; `generation` is kept
//! where the real server keeps it (workloads, CRDs, policies, webhook
//! configurations, Ingresses, custom resources) and bumped when anything outside metadata and status changes (or deletion
//! begins). `dryRun=All` on POST/PUT/PATCH/DELETE returns the result
//! without storing it or emitting an event (the request log still records
//! it, with `dry_run: true`). List items of built-in kinds omit `kind` and
//! `apiVersion`, as the real server's do.
//!
//! **Encodings** (`protobuf/`): request bodies are JSON or, for built-in
//! kinds, Protobuf (`application/vnd.kubernetes.protobuf`, what client-go's
//! typed clients send: `kubectl create ...`, Helm's release Secrets),
//! including DeleteOptions bodies. A Protobuf body is decoded, with a table
//! generated from Kubernetes' `generated.proto` files and Go struct tags
//! (`proto/gen_schema.py`, covering core/v1, apps/v1, batch/v1, policy/v1,
//! autoscaling/v2, rbac/v1, admissionregistration/v1, networking/v1,
//! coordination/v1 and meta/v1), into the JSON a JSON client would have
//! sent, then handled as JSON; an undecodable one is the real server's 400.
//! Custom resources take no Protobuf (415, as on the real server).
//! Responses are always JSON: an Accept header that allows JSON (client-go
//! sends `application/vnd.kubernetes.protobuf,application/json`) gets it,
//! one that allows only other types gets 406 NotAcceptable.
//!
//! **Tables** (`table.rs`): a read that asks for `as=Table` (`kubectl get`)
//! gets a `meta.k8s.io` Table with the real printers' columns for the
//! common kinds (NAME, AGE elsewhere) and a CRD's
//! `additionalPrinterColumns` for custom resources, watches included.
//!
//! **Defaults and validation** (`strategy.rs`, `defaults.rs`,
//! `validation.rs`): every create, update and patch (server-side apply
//! included, dry run or not) fills in the defaults the real server adds
//! to built-in kinds (Deployment replicas, strategy, revisionHistoryLimit
//! and progressDeadlineSeconds; pod templates' restartPolicy, dnsPolicy,
//! schedulerName, terminationGracePeriodSeconds, securityContext;
//! containers' imagePullPolicy, terminationMessagePath/Policy, port
//! protocol, probe timings; Service type, sessionAffinity, IP families,
//! traffic policies, cluster IP and node ports, port protocol and
//! targetPort; Secret type; StatefulSet, DaemonSet, Job, CronJob, Pod,
//! PVC and RBAC subject defaults for when those kinds are served), then
//! rejects what the real server rejects with its 422 Invalid `Status`
//! (field paths in `details.causes`): object names, label syntax,
//! missing or non-matching selectors, containers without name or image,
//! ports outside 1-65535, Service ports and types, restart policies,
//! immutable selectors, Job templates and Service cluster IPs, CRD names
//! and storage versions. So a dry run answers what the server would store.
//! Not defaulted or validated: quantities (not canonicalized), admission
//! plugins' additions, probes, volumes, env names, most enum values, and
//! anything of kinds not listed in those files.
//!
//! **Errors** (`status.rs`) are real `Status` objects, so kube-rs returns
//! `kube::Error::Api` with the real code, reason and wording.
//!
//! **Controllers** (`controllers.rs`): CRDs become NamesAccepted at once and
//! Established after [`FakeKube::set_crd_establish_delay`] (default 0);
//! deleting a Namespace or CRD deletes what it contains first; Deployments
//! stay unready until [`FakeKube::complete_deployments`] or
//! [`FakeKube::set_auto_complete_deployments`]; LoadBalancer Services get an
//! ingress hostname from [`FakeKube::complete_load_balancers`]; each
//! Deployment has its current ReplicaSet, owned by it and ready when it is
//! (`replicasets.rs`; Helm 3's `--wait` looks for it). Their writes
//! are separate changes, as on a cluster.
//!
//! **Watch** (`watch.rs`): newline-delimited JSON events with the real
//! resourceVersion semantics, selectors and `timeoutSeconds`; BOOKMARKs
//! with `allowWatchBookmarks=true` (periodically and before a timeout
//! closes the stream); `sendInitialEvents=true` +
//! `resourceVersionMatch=NotOlderThan` (client-go's and kube-rs' streaming
//! lists) with the `k8s.io/initial-events-end` bookmark. So
//! `kube::runtime::watcher`, `await_condition`, `kubectl wait`, `kubectl
//! rollout status` and `kubectl delete --wait` work.
//!
//! **Not there**: authentication and authorization (everything is allowed),
//! admission webhooks (Mutating- and ValidatingWebhookConfigurations are
//! stored and served like any object, never called: an Istio install's
//! `failurePolicy: Fail` injector changes nothing here) and admission
//! plugins, schema validation, pruning
//! and defaulting of custom resources (and `fieldValidation` is not
//! enforced), conversion between CRD versions (one stored object is served
//! under every version), the defaults and checks listed above as not done,
//! controllers for Pods, StatefulSets, Jobs and the other workloads (they
//! are stored, never run; ReplicaSets only as above), every kind not listed above,
//! `/scale` and other subresources, YAML request bodies, Protobuf (and YAML)
//! responses, Protobuf bodies for kinds outside the groups above, 410 Gone
//! (history is never compacted), and the namespaces a cluster starts with
//! unless [`FakeKube::create_initial_namespaces`] is called (the binary does).
//!
//! Use: `let kube = FakeKube::start();` then `kube.client()` (inside a tokio
//! runtime) or `kube.kubeconfig()` for a child process; read state back
//! with [`FakeKube::object`] / [`FakeKube::objects`] and the request log
//! with [`FakeKube::requests`]. The server stops when the value drops.

mod api;
mod apply;
mod controllers;
mod defaults;
mod discovery;
mod json_patch;
mod kinds;
mod openapi;
mod protobuf;
mod replicasets;
mod selectors;
mod server;
mod status;
mod store;
mod strategic_merge;
mod strategy;
mod table;
mod util;
mod validation;
mod watch;
#[cfg(test)]
mod write_path_tests;

use serde_json::{Value, json};
use server::Shared;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::Key;

/// One request the fake received, in arrival order.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    pub content_type: Option<String>,
    pub field_manager: Option<String>,
    pub dry_run: bool,
    pub at: Instant,
    /// The HTTP status answered.
    pub status: u16,
    /// The body, when it was JSON (or Protobuf, decoded to JSON).
    pub body: Option<Value>,
}

/// A running fake API server; stops on drop.
pub struct FakeKube {
    shared: Arc<Shared>,
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// `"apps/v1"` → `("apps", "v1")`, `"v1"` → `("", "v1")`.
fn split_group_version(gv: &str) -> (&str, &str) {
    gv.split_once('/').unwrap_or(("", gv))
}

impl FakeKube {
    /// Starts a fake on a free port of 127.0.0.1 (panics if it cannot: for
    /// tests).
    pub fn start() -> FakeKube {
        FakeKube::start_on(0).expect("bind the fake kube server on 127.0.0.1")
    }

    /// Starts a fake on 127.0.0.1:`port` (0 for a free one).
    pub fn start_on(port: u16) -> std::io::Result<FakeKube> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(addr));
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let thread = server::spawn(shared.clone(), listener, rx);
        Ok(FakeKube {
            shared,
            shutdown,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// A kube-rs client for this server (no auth). Must be called inside a
    /// tokio runtime (kube-rs spawns its connection task).
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("valid url"));
        kube::Client::try_from(config).expect("kube client for the fake")
    }

    /// A kubeconfig (YAML) pointing at this server, for a child process.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake-kube\n  cluster:\n    server: {}\ncontexts:\n- name: fake-kube\n  context:\n    cluster: fake-kube\n    user: fake-kube\n    namespace: default\ncurrent-context: fake-kube\nusers:\n- name: fake-kube\n  user: {{}}\n",
            self.url()
        )
    }

    /// Creates the namespaces a new cluster starts with (`default`,
    /// `kube-system`, `kube-public`, `kube-node-lease`). `start()` leaves
    /// them out so that tests see only what they made; the `fake-kube`
    /// binary, used by hand, creates them.
    pub fn create_initial_namespaces(&self) {
        self.shared.with_state(|s| {
            let Some(ty) = s.type_of("", "namespaces") else {
                return;
            };
            for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let key = FakeKube::key("v1", "namespaces", None, name);
                if s.get(&key).is_some() {
                    continue;
                }
                let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
                strategy::prepare_for_create(s, &ty, &mut ns);
                apply::record_update(&ty, None, &mut ns, "kube-apiserver", apply::Part::Main);
                s.commit(&ty, ns, false);
            }
            controllers::reconcile(s);
        });
    }

    /// How long a new CRD takes to become Established (default 0).
    pub fn set_crd_establish_delay(&self, delay: Duration) {
        self.shared.with_state(|s| s.crd_establish_delay = delay);
    }

    /// Complete every Deployment rollout as soon as it starts.
    pub fn set_auto_complete_deployments(&self, on: bool) {
        self.shared.with_state(|s| {
            s.auto_complete_deployments = on;
            controllers::reconcile(s);
        });
    }

    /// Completes the rollout of every Deployment not yet complete.
    pub fn complete_deployments(&self) {
        self.shared.with_state(|s| {
            controllers::complete_deployments(s);
            controllers::reconcile(s);
        });
    }

    /// Gives every LoadBalancer Service an ingress hostname as soon as it
    /// is created.
    pub fn set_auto_complete_load_balancers(&self, on: bool) {
        self.shared.with_state(|s| {
            s.auto_complete_load_balancers = on;
            controllers::reconcile(s);
        });
    }

    /// Gives every LoadBalancer Service without one an ingress hostname.
    pub fn complete_load_balancers(&self) {
        self.shared.with_state(|s| {
            controllers::complete_load_balancers(s);
            controllers::reconcile(s);
        });
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log().clone()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.with_state(|s| s.rv)
    }

    fn key(group_version: &str, plural: &str, namespace: Option<&str>, name: &str) -> Key {
        let (group, _) = split_group_version(group_version);
        Key {
            group: group.into(),
            plural: plural.into(),
            namespace: namespace.unwrap_or_default().into(),
            name: name.into(),
        }
    }

    /// One stored object (as served at `group_version`), e.g.
    /// `object("apps/v1", "deployments", Some("shop"), "web")`.
    pub fn object(
        &self,
        group_version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let key = FakeKube::key(group_version, plural, namespace, name);
        self.shared.with_state(|s| {
            let mut obj = s.get(&key)?.clone();
            obj["apiVersion"] = json!(group_version);
            Some(obj)
        })
    }

    /// Every stored object of a resource (any group, any namespace).
    pub fn objects(&self, plural: &str) -> Vec<Value> {
        self.shared.with_state(|s| {
            s.objects
                .iter()
                .filter(|(k, _)| k.plural == plural)
                .map(|(_, v)| v.clone())
                .collect()
        })
    }

    /// Edits an object as a test-side controller would (an update by
    /// manager `fake-kube-test`), then lets the fake's controllers run.
    fn edit(
        &self,
        group_version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let key = FakeKube::key(group_version, plural, namespace, name);
        self.shared.with_state(|s| {
            let ty = s.type_of(&key.group, &key.plural).expect("served type");
            let old = s
                .get(&key)
                .cloned()
                .unwrap_or_else(|| panic!("no object {key:?}"));
            let mut new = old.clone();
            f(&mut new);
            apply::record_update(&ty, Some(&old), &mut new, "fake-kube-test", apply::Part::Main);
            s.commit(&ty, new, false);
            controllers::reconcile(s);
        });
    }

    /// Adds a finalizer to an object.
    pub fn add_finalizer(
        &self,
        group_version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
        finalizer: &str,
    ) {
        self.edit(group_version, plural, namespace, name, |obj| {
            let meta = util::map_at(obj, &["metadata"]);
            let fins = meta.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(list) = fins.as_array_mut()
                && !list.iter().any(|f| f == finalizer)
            {
                list.push(json!(finalizer));
            }
        });
    }

    /// Removes all of an object's finalizers (which deletes it if its
    /// deletion has begun).
    pub fn remove_finalizers(&self, group_version: &str, plural: &str, namespace: Option<&str>, name: &str) {
        self.edit(group_version, plural, namespace, name, |obj| {
            util::map_at(obj, &["metadata"]).remove("finalizers");
        });
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
