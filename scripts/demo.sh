#!/usr/bin/env bash
# The main job on the local emulator: start moto server (installing it into
# .venv/ if needed), then validate, plan, apply, plan again (no changes),
# print the outputs, write a kubeconfig entry for the cluster, and destroy
# the walkthrough's whole AWS part: stacks/eks.toml (the baseline network,
# IAM policy and ECR repository, the cluster and node group roles, the EKS
# cluster, its node group of three t3.large, and the destroy-time network
# drain). The in-cluster layers need a Kubernetes API server, which the
# emulator has not: see README (the tests run them against the fake API
# server). Another stack: scripts/demo.sh stacks/baseline.toml. The server
# is stopped at the end, whatever happens.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
port="${MOTO_PORT:-5055}"
stack="${1:-stacks/eks.toml}"

cargo build --quiet --bin meshform
meshform="$root/target/debug/meshform"

scripts/moto.sh start "$port"
trap '"$root/scripts/moto.sh" stop' EXIT
eval "$(scripts/moto.sh env "$port")"

# A scratch directory keeps the demo's state apart from yours.
work="$(mktemp -d)"
trap '"$root/scripts/moto.sh" stop; rm -rf "$work"' EXIT
cd "$work"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step "$meshform" validate "$root/$stack"
step "$meshform" plan "$root/$stack"
step "$meshform" apply "$root/$stack" --auto-approve
echo; echo "# a second plan right after apply: exit code 0 means no changes"
step "$meshform" plan "$root/$stack" --detailed-exitcode
step "$meshform" output "$root/$stack"
if "$meshform" state list "$root/$stack" | grep -q 'aws.eks.cluster'; then
  echo; echo "# what aws eks update-kubeconfig did, into a scratch file (tokens come from meshform eks-token)"
  step "$meshform" kubeconfig "$root/$stack" --file "$work/kubeconfig"
fi
step "$meshform" destroy "$root/$stack" --auto-approve
echo; echo "demo complete: the stack was created, verified unchanged, and destroyed on moto at 127.0.0.1:$port"
