#!/usr/bin/env bash
# Local AWS emulator (moto server) for meshform's examples and tests.
#
#   scripts/moto.sh install        create .venv/ and install moto server into it
#   scripts/moto.sh start [PORT]   install if needed, start on 127.0.0.1:PORT (default 5000)
#   scripts/moto.sh stop           stop the server started by `start`
#   scripts/moto.sh env [PORT]     print the environment a shell needs to reach it
#
# Everything lives under the project: .venv/ for Python, .moto/ for the pid and log.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
state="$root/.moto"
moto_version="5.2.5"

install() {
  if [ -x "$venv/bin/moto_server" ]; then return 0; fi
  echo "installing moto[server]==$moto_version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
}

print_env() {
  local port="${1:-5000}"
  cat <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-west-2
export NO_PROXY=127.0.0.1,localhost\${NO_PROXY:+,\$NO_PROXY}
ENV
}

start() {
  local port="${1:-5000}"
  install
  mkdir -p "$state"
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    echo "moto server already running (pid $(cat "$state/pid"))" >&2
    return 0
  fi
  MOTO_IAM_LOAD_MANAGED_POLICIES=true nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" \
    >"$state/server.log" 2>&1 &
  echo $! >"$state/pid"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "moto server listening on 127.0.0.1:$port (pid $(cat "$state/pid"), log $state/server.log)" >&2
      return 0
    fi
    sleep 0.2
  done
  echo "moto server did not start; see $state/server.log" >&2
  return 1
}

stop() {
  if [ -f "$state/pid" ]; then
    local pid
    pid="$(cat "$state/pid")"
    kill "$pid" 2>/dev/null || true
    # Wait for it to go; a server that ignores the request is killed.
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$state/pid"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-5000}" ;;
  stop) stop ;;
  env) print_env "${2:-5000}" ;;
  *) echo "usage: $0 install|start [PORT]|stop|env [PORT]" >&2; exit 2 ;;
esac
