#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs moto server into .venv/
# and real kubectl and helm into .tools/, Debian's prometheus if missing
# (the tests start and stop their
# own servers), checks formatting and lints,
# then runs every unit and integration test, every test binary even when one
# fails. Always ends with the line `tests: N passed, M failed`, and exits
# non-zero if a check, a build or a test failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# moto listens on loopback only; keep it out of any proxy.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

scripts/moto.sh install
# Real kubectl and helm for the tests against the fake API server.
scripts/kube-tools.sh install
# A real Prometheus (Debian's package) for the shift gate tests.
scripts/prometheus.sh install

# What failed besides individual tests (a check, a build, a crashed binary).
problems=()
cargo fmt --all -- --check || problems+=("cargo fmt --check failed")
cargo clippy --workspace --all-targets --quiet -- -D warnings || problems+=("cargo clippy failed")

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# One closing line for the whole suite.
read -r passed failed < <(awk '/^test result:/ { p += $4; f += $6 } END { printf "%d %d\n", p, f }' "$log")
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  problems+=("cargo test exited with status $status without a failed test (a build error or a test binary that crashed)")
fi
for p in ${problems[@]+"${problems[@]}"}; do
  echo "error: $p"
done
echo "tests: $passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ "$status" -ne 0 ] || [ "${#problems[@]}" -ne 0 ]; then
  exit 1
fi
