#!/usr/bin/env bash
# A FAKE Kubernetes API server (testsupport/fake-kube) for trying meshform,
# kubectl and helm by hand. It is not Kubernetes: no nodes, no pods that
# run, no real controllers; Deployments and LoadBalancer Services complete
# by themselves. Read testsupport/fake-kube/src/lib.rs for what it does.
#
#   scripts/fake-kube.sh start [PORT]   build and start it on 127.0.0.1:PORT (default 6443)
#   scripts/fake-kube.sh stop           stop it
#   scripts/fake-kube.sh env            print the KUBECONFIG a shell needs to reach it
#
# Everything lives under the project: .fake-kube/ (or $FAKE_KUBE_DIR) for the
# pid, log and kubeconfig.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${FAKE_KUBE_DIR:-$root/.fake-kube}"

start() {
  local port="${1:-6443}"
  mkdir -p "$state"
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    echo "fake kube server already running (pid $(cat "$state/pid"))" >&2
    return 0
  fi
  (cd "$root" && cargo build --quiet -p fake-kube)
  rm -f "$state/kubeconfig"
  nohup "$root/target/debug/fake-kube" --port "$port" --kubeconfig "$state/kubeconfig" \
    >"$state/server.log" 2>&1 &
  echo $! >"$state/pid"
  for _ in $(seq 1 100); do
    if [ -s "$state/kubeconfig" ]; then
      echo "FAKE kube API server on 127.0.0.1:$port (pid $(cat "$state/pid"), log $state/server.log)" >&2
      return 0
    fi
    sleep 0.1
  done
  echo "fake kube server did not start; see $state/server.log" >&2
  return 1
}

stop() {
  if [ -f "$state/pid" ]; then
    local pid
    pid="$(cat "$state/pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$state/pid"
  fi
}

case "${1:-}" in
  start) start "${2:-6443}" ;;
  stop) stop ;;
  env)
    echo "export KUBECONFIG=$state/kubeconfig"
    echo "export NO_PROXY=127.0.0.1,localhost\${NO_PROXY:+,\$NO_PROXY}"
    ;;
  *) echo "usage: $0 start [PORT]|stop|env" >&2; exit 2 ;;
esac
