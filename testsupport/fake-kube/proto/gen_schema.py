#!/usr/bin/env python3
"""Generates k8s-schema.txt: the table fake-kube's protobuf decoder reads
(src/protobuf/schema.rs) to turn a Kubernetes Protobuf body into the JSON a
JSON client would have sent for the same object.

Reads, with `git show HEAD:<path>` (no work tree needed):
  * the `generated.proto` of each API group below and of every package they
    import, from a clone of https://github.com/kubernetes/api (K8S_API_GIT,
    default /work/.mirror/kubernetes+api/repo) and
    https://github.com/kubernetes/apimachinery (K8S_APIMACHINERY_GIT,
    default /work/.mirror/kubernetes+apimachinery/repo): messages, field
    numbers, field names (the JSON names), types, repeated and map fields;
  * the Go structs next to them (`types.go` and friends): the `json` and
    `protobuf` struct tags, for what the .proto does not say but Go's JSON
    encoding depends on: whether a field is a pointer (a present zero value
    is kept), `omitempty` (a zero value is left out), and embedded structs
    whose fields JSON inlines (`json:""`, e.g. Volume's VolumeSource);
  * each group's `register.go` for its API group name.

Rerun after bumping those clones:
  python3 testsupport/fake-kube/proto/gen_schema.py > testsupport/fake-kube/proto/k8s-schema.txt

Output format (one record a line, fields separated by single spaces):
  P <alias> <proto package>      a package and the short alias used below
  G <apiVersion> <alias>         an API group/version and its package
  M <alias>.<Message> <field>... a message; each field is
      <number>:<json name>:<type>:<flags>
    type:  a scalar (string, bytes, bool, int32, int64, ...), a message
           <alias>.<Message>, or for a map <key type>,<value type>
    flags: r repeated, m map, p Go pointer, o omitempty, i inlined into the
           parent's JSON (json name then empty)
"""
import os
import re
import subprocess
import sys

API = os.environ.get("K8S_API_GIT", "/work/.mirror/kubernetes+api/repo")
MACHINERY = os.environ.get("K8S_APIMACHINERY_GIT", "/work/.mirror/kubernetes+apimachinery/repo")

# The groups the fake serves or will serve; meta/v1 for DeleteOptions etc.
SERVED = [
    (API, "core/v1"),
    (API, "apps/v1"),
    (API, "batch/v1"),
    (API, "policy/v1"),
    (API, "autoscaling/v2"),
    (API, "rbac/v1"),
    (API, "admissionregistration/v1"),
    (API, "networking/v1"),
    (API, "coordination/v1"),
    (MACHINERY, "pkg/apis/meta/v1"),
]

SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double", "float"}


def git_show(repo, path):
    return subprocess.run(
        ["git", "-C", repo, "show", f"HEAD:{path}"], check=True, capture_output=True, text=True
    ).stdout


def git_ls(repo, directory):
    out = subprocess.run(
        ["git", "-C", repo, "ls-tree", "--name-only", "HEAD", directory + "/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()


def alias_of(repo, directory):
    """core/v1 for k8s.io/api; meta/v1, api/resource, util/intstr, runtime for apimachinery."""
    if repo == API:
        return directory
    d = directory.removeprefix("pkg/")
    return d.removeprefix("apis/")


def locate_import(imp):
    """'k8s.io/api/core/v1/generated.proto' -> (repo, 'core/v1')."""
    d = imp.rsplit("/", 1)[0]
    if d.startswith("k8s.io/api/"):
        return API, d.removeprefix("k8s.io/api/")
    if d.startswith("k8s.io/apimachinery/"):
        return MACHINERY, d.removeprefix("k8s.io/apimachinery/")
    raise SystemExit(f"unknown import {imp}")


FIELD = re.compile(r"^\s*(optional|repeated|required)\s+(\S+)\s+(\w+)\s*=\s*(\d+)\s*;")
MAP = re.compile(r"^\s*map<\s*(\S+)\s*,\s*(\S+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")


def parse_proto(text):
    package = re.search(r"^package\s+([\w.]+);", text, re.M).group(1)
    imports = re.findall(r'^import\s+"([^"]+)";', text, re.M)
    messages = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^message\s+(\w+)\s*\{", line)
        if m:
            current = messages.setdefault(m.group(1), [])
            continue
        if line.startswith("}"):
            current = None
            continue
        if current is None:
            continue
        m = MAP.match(line)
        if m:
            current.append({"label": "map", "key": m.group(1), "type": m.group(2), "name": m.group(3), "num": int(m.group(4))})
            continue
        m = FIELD.match(line)
        if m:
            current.append({"label": m.group(1), "type": m.group(2), "name": m.group(3), "num": int(m.group(4))})
    return package, imports, messages


GO_FIELD = re.compile(r"^\s*(?:(\w+)\s+)?(\S+)\s+`([^`]*)`")


def parse_go_structs(repo, directory):
    """{struct: {proto number: {'pointer', 'omitempty', 'inline'}}} from struct tags."""
    structs = {}
    for path in git_ls(repo, directory):
        if not path.endswith(".go") or path.endswith("_test.go") or path.endswith(".pb.go"):
            continue
        name = None
        for line in git_show(repo, path).splitlines():
            m = re.match(r"^type\s+(\w+)\s+struct\s*\{", line)
            if m:
                name = m.group(1)
                structs.setdefault(name, {})
                continue
            if line.startswith("}"):
                name = None
                continue
            if name is None:
                continue
            m = GO_FIELD.match(line)
            if not m or 'protobuf:"' not in m.group(3):
                continue
            field_name, go_type, tags = m.groups()
            proto = re.search(r'protobuf:"([^"]*)"', tags).group(1).split(",")
            if len(proto) < 2:
                continue  # protobuf:"-": not on the wire (Time's time.Time)
            js = re.search(r'json:"([^"]*)"', tags)
            js_parts = js.group(1).split(",") if js else [""]
            structs[name][int(proto[1])] = {
                "pointer": go_type.startswith("*"),
                "omitempty": "omitempty" in js_parts[1:],
                # An anonymous field without a JSON name: Go inlines it.
                "inline": field_name is None and js_parts[0] == "",
            }
    return structs


def main():
    packages = {}  # proto package -> dict(alias, repo, dir, messages, go)
    pending = [(repo, d) for repo, d in SERVED]
    seen = set()
    while pending:
        repo, d = pending.pop(0)
        if (repo, d) in seen:
            continue
        seen.add((repo, d))
        package, imports, messages = parse_proto(git_show(repo, f"{d}/generated.proto"))
        packages[package] = {
            "alias": alias_of(repo, d),
            "repo": repo,
            "dir": d,
            "messages": messages,
            "go": parse_go_structs(repo, d),
        }
        pending.extend(locate_import(i) for i in imports)

    def resolve(package, t):
        if t in SCALARS:
            return t
        if t.startswith("."):
            pkg, _, msg = t[1:].rpartition(".")
        elif t in packages[package]["messages"]:
            pkg, msg = package, t
        else:
            pkg, _, msg = t.rpartition(".")
        if pkg not in packages or msg not in packages[pkg]["messages"]:
            raise SystemExit(f"cannot resolve type {t} in {package}")
        return (pkg, msg)

    def name(ref):
        return ref if isinstance(ref, str) else f"{packages[ref[0]]['alias']}.{ref[1]}"

    # Every message of a served package, and what they reach elsewhere.
    served = {packages_key for packages_key, p in packages.items() if (p["repo"], p["dir"]) in SERVED}
    todo = [(pkg, m) for pkg in served for m in packages[pkg]["messages"]]
    reached = set()
    while todo:
        ref = todo.pop()
        if ref in reached:
            continue
        reached.add(ref)
        for f in packages[ref[0]]["messages"][ref[1]]:
            for t in (f["type"], f.get("key", "string")):
                r = resolve(ref[0], t)
                if not isinstance(r, str):
                    todo.append(r)

    out = [
        "# GENERATED by testsupport/fake-kube/proto/gen_schema.py (read it for the format and how to",
        "# rerun it); do not edit. From kubernetes/api " + commit(API) + " and kubernetes/apimachinery " + commit(MACHINERY) + ".",
    ]
    used = sorted({pkg for pkg, _ in reached}, key=lambda p: packages[p]["alias"])
    for pkg in used:
        out.append(f"P {packages[pkg]['alias']} {pkg}")
    for repo, d in SERVED:
        group = re.search(r'^const GroupName = "([^"]*)"', git_show(repo, f"{d}/register.go"), re.M).group(1)
        version = d.rsplit("/", 1)[1]
        out.append(f"G {group + '/' if group else ''}{version} {alias_of(repo, d)}")
    missing = []
    for pkg, msg in sorted(reached, key=lambda r: (packages[r[0]]["alias"], r[1])):
        p = packages[pkg]
        go = p["go"].get(msg)
        fields = []
        for f in p["messages"][msg]:
            tags = (go or {}).get(f["num"])
            if go is not None and tags is None:
                missing.append(f"{p['alias']}.{msg}.{f['name']}")
            tags = tags or {"pointer": False, "omitempty": True, "inline": False}
            flags = ""
            if f["label"] == "repeated":
                flags += "r"
            if f["label"] == "map":
                flags += "m"
                ty = f"{name(resolve(pkg, f['key']))},{name(resolve(pkg, f['type']))}"
            else:
                ty = name(resolve(pkg, f["type"]))
            if tags["pointer"]:
                flags += "p"
            if tags["omitempty"]:
                flags += "o"
            if tags["inline"]:
                flags += "i"
            js = "" if tags["inline"] else f["name"]
            fields.append(f"{f['num']}:{js}:{ty}:{flags}")
        if go is None:
            # No Go struct: a type with its own JSON form (Time, Quantity,
            # IntOrString, ...) the decoder knows by name, or a wrapper.
            print(f"note: no Go struct for {p['alias']}.{msg}", file=sys.stderr)
        out.append(" ".join([f"M {p['alias']}.{msg}"] + fields))
    for m in missing:
        print(f"warning: no Go struct tag for field {m}", file=sys.stderr)
    print("\n".join(out))


def commit(repo):
    return subprocess.run(
        ["git", "-C", repo, "rev-parse", "--short=12", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


if __name__ == "__main__":
    main()
