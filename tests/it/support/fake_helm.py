# A FAKE `helm` for meshform's tests: see fake_helm.rs, which writes this
# script out as an executable named `helm` with its paths filled in. It is
# not Helm. It understands the calls meshform makes, records each one, and
# does to the Kubernetes API server what a real install would do, so that
# what follows a release in a test behaves as after a real install:
#
# - every call appends {"argv", "values", "values_mode", "kubeconfig_mode"}
#   as one JSON line to LOG (the values file's content, and the modes of the
#   values and kubeconfig files, read while they exist);
# - the API server is the first `server:` of the --kubeconfig file (which
#   is required; --kube-context must name a context in it);
# - charts: a directory path, or any reference whose last path segment
#   names a directory under CHARTS (`appmesh-controller`,
#   `eks/appmesh-controller` with or without --repo); --version must equal
#   the chart's version. Chart.yaml is read as flat `key: value` lines;
#   values.yaml, crds/*.yaml and templates/*.yaml must be JSON documents
#   (JSON is YAML) separated by `---` lines, `#` comment lines allowed;
#   templates may use `{{ .Values.a.b }}`, `{{ .Release.Name }}`,
#   `{{ .Release.Namespace }}`, `{{ .Chart.Name }}`, `{{ .Chart.Version }}`
#   and `{{ .Chart.AppVersion }}`, nothing else;
# - `upgrade --install`: without --create-namespace the namespace must
#   exist; with it, the namespace is applied. On first install the CRDs of
#   crds/ are applied and waited for until Established (real helm does so
#   and skips them on upgrade). The templates are applied with server-side
#   apply (PATCH application/apply-patch+yaml, JSON body, fieldManager=helm,
#   force=true) carrying helm's managed-by label and release annotations;
#   objects of the previous revision no longer rendered are deleted. With
#   --wait, Deployments must become available within --timeout (else the
#   release is `failed` and helm fails with "context deadline exceeded").
#   The release (name, namespace, revision, status, chart, version,
#   appVersion, values of the --values file) is kept in the STATE file,
#   not in Secrets as real helm keeps it (reads still ask the server, so an
#   unreachable cluster fails them as it would real helm);
# - `status`, `get metadata`, `get values` print helm's JSON (-o json);
# - `uninstall` deletes the release's objects (not its CRDs) and record;
#   with --wait, until they are gone;
# - an unknown release: exit 1, "Error: release: not found" (uninstall:
#   "Error: uninstall: Release not loaded: NAME: release: not found").
import json
import os
import re
import stat
import sys
import time
import urllib.error
import urllib.request

LOG = __LOG__
STATE = __STATE__
CHARTS = __CHARTS__

VALUE_FLAGS = {
    "--namespace", "-n", "--repo", "--version", "--values", "-f", "--timeout",
    "--output", "-o", "--kubeconfig", "--kube-context",
}
ALIASES = {"-n": "--namespace", "-f": "--values", "-o": "--output"}

# (apiVersion, kind) -> (plural, namespaced)
KINDS = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "Service"): ("services", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("customresourcedefinitions", False),
}


def fail(message):
    sys.stderr.write("Error: " + message + "\n")
    sys.exit(1)


def parse(argv):
    positional, flags = [], {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and "=" in a:
            k, v = a.split("=", 1)
            flags[ALIASES.get(k, k)] = v
        elif a in VALUE_FLAGS:
            if i + 1 >= len(argv):
                fail("flag needs an argument: " + a)
            flags[ALIASES.get(a, a)] = argv[i + 1]
            i += 1
        elif a.startswith("-"):
            flags[a] = True
        else:
            positional.append(a)
        i += 1
    return positional, flags


def mode_of(path):
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def record(argv, flags):
    entry = {"argv": argv, "values": None, "values_mode": None, "kubeconfig_mode": None}
    if isinstance(flags.get("--values"), str):
        entry["values_mode"] = mode_of(flags["--values"])
        try:
            with open(flags["--values"]) as f:
                entry["values"] = json.load(f)
        except (OSError, ValueError) as e:
            entry["values"] = "unreadable: %s" % e
    if isinstance(flags.get("--kubeconfig"), str):
        entry["kubeconfig_mode"] = mode_of(flags["--kubeconfig"])
    with open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")


def server(flags):
    path = flags.get("--kubeconfig")
    if not isinstance(path, str):
        fail("Kubernetes cluster unreachable: the fake helm needs --kubeconfig")
    try:
        text = open(path).read()
    except OSError as e:
        fail("Kubernetes cluster unreachable: %s" % e)
    context = flags.get("--kube-context")
    if isinstance(context, str) and not re.search(
        r"^\s*-?\s*name:\s*['\"]?%s['\"]?\s*$" % re.escape(context), text, re.M
    ):
        fail('Kubernetes cluster unreachable: context "%s" does not exist' % context)
    m = re.search(r"^\s*server:\s*['\"]?([^'\"\s]+)", text, re.M)
    if not m:
        fail("Kubernetes cluster unreachable: no server in " + path)
    return m.group(1).rstrip("/")


def http(base, method, path, body=None, content_type="application/json"):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    req.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None
    except urllib.error.URLError as e:
        fail("Kubernetes cluster unreachable: %s" % e.reason)


def documents(path):
    text = "\n".join(l for l in open(path).read().splitlines() if not l.lstrip().startswith("#"))
    return [d for d in re.split(r"^---\s*$", text, flags=re.M) if d.strip()]


def load_chart(ref, version):
    path = ref if os.path.isdir(ref) else os.path.join(CHARTS, ref.rstrip("/").split("/")[-1])
    if not os.path.isdir(path):
        fail('chart "%s" not found' % ref)
    meta = {}
    for line in open(os.path.join(path, "Chart.yaml")):
        m = re.match(r"^(\w+):\s*['\"]?([^'\"#]*?)['\"]?\s*$", line)
        if m:
            meta[m.group(1)] = m.group(2)
    if isinstance(version, str) and version not in (meta.get("version"), "v" + meta.get("version", "")):
        fail('chart "%s" version "%s" not found' % (ref, version))
    defaults = {}
    values_file = os.path.join(path, "values.yaml")
    if os.path.exists(values_file):
        docs = documents(values_file)
        defaults = go_numbers(json.loads(docs[0])) if docs else {}
    return path, meta, defaults


def go_numbers(v):
    # Helm reads values as YAML into float64s: 2.0 is 2 in its templates
    # and in its JSON output.
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dict):
        return {k: go_numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        return [go_numbers(x) for x in v]
    return v


def merge(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def render(path, context):
    def value(m):
        scope, keys = m.group(1), m.group(2).split(".")
        v = context[scope]
        for k in keys:
            if not isinstance(v, dict) or k not in v:
                fail("template: %s: nil pointer evaluating .%s.%s" % (path, scope, m.group(2)))
            v = v[k]
        if isinstance(v, bool):
            return "true" if v else "false"
        return v if isinstance(v, str) else json.dumps(v)

    out = []
    for doc in documents(path):
        text = re.sub(r"\{\{-?\s*\.(Values|Release|Chart)\.([\w.]+)\s*-?\}\}", value, doc)
        if "{{" in text:
            fail("template: %s: the fake helm cannot render this template" % path)
        try:
            out.append(json.loads(text))
        except ValueError as e:
            fail("YAML parse error on %s: %s" % (path, e))
    return out


def manifests(directory, context):
    out = []
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            if name.endswith((".yaml", ".yml", ".json")):
                out.extend(render(os.path.join(directory, name), context))
    return out


def object_path(obj, namespace):
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key not in KINDS:
        fail("unable to build kubernetes objects: no matches for kind %s in version %s" % (key[1], key[0]))
    plural, namespaced = KINDS[key]
    base = "/api/v1" if key[0] == "v1" else "/apis/" + key[0]
    name = obj.get("metadata", {}).get("name")
    if namespaced:
        obj["metadata"]["namespace"] = namespace
        return "%s/namespaces/%s/%s/%s" % (base, namespace, plural, name)
    return "%s/%s/%s" % (base, plural, name)


def apply(base, obj, namespace):
    path = object_path(obj, namespace)
    code, body = http(base, "PATCH", path + "?fieldManager=helm&force=true", obj, "application/apply-patch+yaml")
    if code >= 300:
        fail("failed to apply %s %s: %s" % (obj.get("kind"), path, (body or {}).get("message", code)))
    return path


def seconds(timeout):
    if not isinstance(timeout, str):
        return 300
    total = 0
    for n, unit in re.findall(r"(\d+)([hms])", timeout):
        total += int(n) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def wait_until(deadline, ready):
    while True:
        if ready():
            return True
        if time.time() >= deadline:
            return False
        time.sleep(0.05)


def established(base, path):
    code, crd = http(base, "GET", path)
    conditions = (crd or {}).get("status", {}).get("conditions", []) if code == 200 else []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def available(base, path):
    code, dep = http(base, "GET", path)
    if code != 200:
        return False
    want = dep.get("spec", {}).get("replicas", 1)
    status = dep.get("status", {})
    return (
        status.get("observedGeneration", 0) >= dep.get("metadata", {}).get("generation", 1)
        and status.get("updatedReplicas", 0) >= want
        and status.get("availableReplicas", 0) >= want
    )


def load_state():
    try:
        with open(STATE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save_state(state):
    with open(STATE + ".tmp", "w") as f:
        json.dump(state, f, indent=1)
    os.replace(STATE + ".tmp", STATE)


def release_json(rel, with_chart):
    out = {
        "name": rel["name"],
        "info": {
            "first_deployed": rel["first_deployed"],
            "last_deployed": rel["last_deployed"],
            "deleted": "",
            "description": rel["description"],
            "status": rel["status"],
        },
        "config": rel["values"],
        "version": rel["revision"],
        "namespace": rel["namespace"],
    }
    if with_chart:
        out["chart"] = {
            "metadata": {
                "name": rel["chart"],
                "version": rel["version"],
                "appVersion": rel["app_version"],
                "apiVersion": "v2",
            }
        }
    return out


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def upgrade(positional, flags):
    if flags.get("--install") is not True:
        fail("the fake helm only supports upgrade --install")
    if len(positional) != 3:
        fail('"helm upgrade" requires 2 arguments')
    name, ref = positional[1], positional[2]
    namespace = flags.get("--namespace", "default")
    base = server(flags)
    chart_dir, meta, defaults = load_chart(ref, flags.get("--version"))
    user_values = {}
    if isinstance(flags.get("--values"), str):
        with open(flags["--values"]) as f:
            user_values = go_numbers(json.load(f) or {})
    state = load_state()
    key = namespace + "/" + name
    previous = state.get(key)
    deadline = time.time() + seconds(flags.get("--timeout"))

    code, _ = http(base, "GET", "/api/v1/namespaces/" + namespace)
    if code == 404:
        if flags.get("--create-namespace") is not True:
            fail('create: failed to create: namespaces "%s" not found' % namespace)
        apply(base, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, namespace)

    context = {
        "Values": merge(defaults, user_values),
        "Release": {"Name": name, "Namespace": namespace},
        "Chart": {"Name": meta.get("name"), "Version": meta.get("version"), "AppVersion": meta.get("appVersion")},
    }
    if previous is None:
        crds = [apply(base, crd, namespace) for crd in manifests(os.path.join(chart_dir, "crds"), context)]
        if not wait_until(deadline, lambda: all(established(base, p) for p in crds)):
            fail("INSTALLATION FAILED: timed out waiting for CRDs to be established")
    applied = []
    for obj in manifests(os.path.join(chart_dir, "templates"), context):
        md = obj.setdefault("metadata", {})
        md.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
        md.setdefault("annotations", {}).update(
            {"meta.helm.sh/release-name": name, "meta.helm.sh/release-namespace": namespace}
        )
        applied.append(apply(base, obj, namespace))
    for path in (previous or {}).get("objects", []):
        if path not in applied:
            http(base, "DELETE", path)

    rel = {
        "name": name,
        "namespace": namespace,
        "revision": (previous or {}).get("revision", 0) + 1,
        "status": "deployed",
        "description": "Upgrade complete" if previous else "Install complete",
        "chart": meta.get("name"),
        "version": meta.get("version"),
        "app_version": meta.get("appVersion", ""),
        "values": user_values,
        "objects": applied,
        "first_deployed": (previous or {}).get("first_deployed", now()),
        "last_deployed": now(),
    }
    if flags.get("--wait") is True:
        deployments = [p for p in applied if "/deployments/" in p]
        if not wait_until(deadline, lambda: all(available(base, p) for p in deployments)):
            rel["status"] = "failed"
            rel["description"] = "context deadline exceeded"
            state[key] = rel
            save_state(state)
            fail(("UPGRADE" if previous else "INSTALLATION") + " FAILED: context deadline exceeded")
    state[key] = rel
    save_state(state)
    if flags.get("--output") == "json":
        print(json.dumps(release_json(rel, True)))
    else:
        print('Release "%s" has been upgraded. Happy Helming!' % name)


def find(positional_name, flags):
    # Real helm reads releases from the cluster (its Secrets): it fails the
    # same way when the cluster cannot be reached.
    http(server(flags), "GET", "/version")
    rel = load_state().get(flags.get("--namespace", "default") + "/" + positional_name)
    if rel is None:
        fail("release: not found")
    return rel


def get(positional, flags):
    if len(positional) != 3 or positional[1] not in ("values", "metadata"):
        fail("the fake helm only supports get values|metadata NAME")
    rel = find(positional[2], flags)
    if positional[1] == "values":
        print(json.dumps(rel["values"] or None))
    else:
        print(json.dumps({
            "name": rel["name"],
            "chart": rel["chart"],
            "version": rel["version"],
            "appVersion": rel["app_version"],
            "namespace": rel["namespace"],
            "revision": rel["revision"],
            "status": rel["status"],
            "deployedAt": rel["last_deployed"],
        }))


def uninstall(positional, flags):
    if len(positional) != 2:
        fail('"helm uninstall" requires 1 argument')
    name = positional[1]
    namespace = flags.get("--namespace", "default")
    base = server(flags)
    state = load_state()
    rel = state.get(namespace + "/" + name)
    if rel is None:
        fail("uninstall: Release not loaded: %s: release: not found" % name)
    for path in rel["objects"]:
        http(base, "DELETE", path)
    if flags.get("--wait") is True:
        deadline = time.time() + seconds(flags.get("--timeout"))
        if not wait_until(deadline, lambda: all(http(base, "GET", p)[0] == 404 for p in rel["objects"])):
            fail("uninstall: timed out waiting for the release's resources to be deleted")
    del state[namespace + "/" + name]
    save_state(state)
    print('release "%s" uninstalled' % name)


def main():
    argv = sys.argv[1:]
    positional, flags = parse(argv)
    record(argv, flags)
    command = positional[0] if positional else ""
    if command == "upgrade":
        upgrade(positional, flags)
    elif command == "get":
        get(positional, flags)
    elif command == "status":
        if len(positional) != 2:
            fail('"helm status" requires 1 argument')
        print(json.dumps(release_json(find(positional[1], flags), False)))
    elif command == "uninstall":
        uninstall(positional, flags)
    elif command == "version":
        print("v3.16.0+fake")
    else:
        fail('unknown command "%s" for "helm"' % command)


main()
