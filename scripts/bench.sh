#!/usr/bin/env bash
# meshform's benchmark: figures the team runs by hand and reports (not a
# test; nothing here asserts a time). One run prints Markdown tables:
#
#   scripts/bench.sh                      # sizes 500 and 2000, latency run on 200
#   BENCH_SIZES=500,1000 scripts/bench.sh # other synthetic sizes
#
# Environment: BENCH_SIZES (default 500,2000), BENCH_LATENCY_SIZES (synthetic
# sizes also applied through the delaying proxy, default 200; empty for the
# baseline only), BENCH_LATENCY_MS (default 150), BENCH_PARALLELISM (default
# 10, meshform's default), BENCH_JSON (also write the raw figures there),
# BENCH_SKIP_BUILD=1 (use target/release/meshform as it is), BENCH_MESHFORM
# (another binary, such as a debug build, when trying the script itself).
#
# What it does: builds meshform in release, starts its own moto server on a
# free port (its own pid and log, apart from scripts/moto.sh's) and, in front
# of it, scripts/bench_proxy.py, which counts every AWS call by
# service:operation and can delay each one. Then scripts/bench.py runs, for
# stacks/baseline.toml and for synthetic stacks of scripts/bench_stack.py
# (one VPC plus equal numbers of subnets, security groups, IAM policies and
# ECR repositories): apply, a no-op plan, destroy, each timed (wall clock of
# the command), the calls of each counted, and each command's peak RSS taken
# from wait4(2)'s rusage, with its CPU time and the moto server's over it.
#
# The latency figure: the baseline (and the BENCH_LATENCY_SIZES stacks) are
# applied with every call delayed BENCH_LATENCY_MS. The makespan (first step
# started to last step finished, read from apply's progress lines,
# timestamped as they arrive) is divided by the critical-path bound: the
# longest chain of dependent steps, where the chain follows the dependencies
# of `meshform plan --json` (a fresh apply is one create per resource,
# ordered by exactly those dependencies) and each step costs its own
# measured duration (its "creating..." line to its "created" line). No
# schedule can finish before its critical path, so the ratio is >= 1 and
# the excess is time steps spent waiting to start after their dependencies
# finished (scheduling, and the --parallelism limit). With more ready steps
# than --parallelism the sum of durations / parallelism (W/P) is a second
# lower bound; the table also divides by the larger of the two (any greedy
# schedule finishes within W/P + critical path, so up to ~2 is expected
# when the two bounds are close). Because steps are costed at their measured
# durations, a step that is slow in itself (more calls than needed, a slow
# state write) lengthens the bound, not the ratio: the last column shows
# that, the sum of step durations over (the steps' calls x the delay), where
# the steps' calls are the apply's calls less those of the plan it starts
# with (counted on a `plan --json` of the same stack and state).
#
# Timings on a shared machine are noisy: compare the ratios measured within
# one run, not absolute seconds across runs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"

if [ -n "${BENCH_MESHFORM:-}" ]; then
  meshform="$BENCH_MESHFORM"
else
  if [ "${BENCH_SKIP_BUILD:-}" != 1 ]; then
    echo "[bench] cargo build --release --bin meshform" >&2
    cargo build --release --quiet --bin meshform
  fi
  meshform="$root/target/release/meshform"
fi
scripts/moto.sh install
python="$venv/bin/python"

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "[bench] nothing listens on 127.0.0.1:$1; see $2" >&2
  return 1
}

scratch="$(mktemp -d -t meshform-bench-XXXXXX)"
moto_pid=""
proxy_pid=""
cleanup() {
  for pid in $proxy_pid $moto_pid; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $proxy_pid $moto_pid; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$scratch"
}
trap cleanup EXIT

moto_port="$(free_port)"
MOTO_IAM_LOAD_MANAGED_POLICIES=true "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" \
  >"$scratch/moto.log" 2>&1 &
moto_pid=$!
wait_port "$moto_port" "$scratch/moto.log"

proxy_port="$(free_port)"
"$python" scripts/bench_proxy.py "$proxy_port" "$moto_port" >"$scratch/proxy.log" 2>&1 &
proxy_pid=$!
wait_port "$proxy_port" "$scratch/proxy.log"
echo "[bench] moto on 127.0.0.1:$moto_port (pid $moto_pid), proxy on 127.0.0.1:$proxy_port (pid $proxy_pid)" >&2

args=(--meshform "$meshform" --proxy-port "$proxy_port" --work "$scratch/work" --moto-pid "$moto_pid"
  --sizes "${BENCH_SIZES:-500,2000}"
  --latency-sizes "${BENCH_LATENCY_SIZES-200}"
  --latency-ms "${BENCH_LATENCY_MS:-150}"
  --parallelism "${BENCH_PARALLELISM:-10}")
if [ -n "${BENCH_JSON:-}" ]; then args+=(--json "$BENCH_JSON"); fi
"$python" scripts/bench.py "${args[@]}"
