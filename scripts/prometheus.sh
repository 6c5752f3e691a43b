#!/usr/bin/env bash
# A real Prometheus server for the shift gate tests: Debian's `prometheus`
# package. The tests start their own server (temporary directory, a free
# port on 127.0.0.1, a 1s scrape of an endpoint they serve); this script
# only makes sure the binary is there.
#
#   scripts/prometheus.sh install   apt-get install prometheus if the binary is missing (idempotent)
#   scripts/prometheus.sh path      print the binary the tests use
#
# MESHFORM_PROMETHEUS=<path> points the tests at another binary.
set -euo pipefail

binary() {
  if [ -n "${MESHFORM_PROMETHEUS:-}" ]; then
    echo "$MESHFORM_PROMETHEUS"
  else
    command -v prometheus || true
  fi
}

install() {
  if [ -n "$(binary)" ] && [ -x "$(binary)" ]; then return 0; fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  echo "installing Debian's prometheus package" >&2
  export DEBIAN_FRONTEND=noninteractive
  # A fresh image may have no package lists yet.
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends prometheus >&2; then
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" apt-get install -y --no-install-recommends prometheus >&2
  fi
  # The package's service (if an init system started one) is not what the
  # tests use; they run their own server.
  [ -x "$(binary)" ]
}

case "${1:-}" in
  install) install ;;
  path) binary ;;
  *)
    echo "usage: $0 install|path" >&2
    exit 2
    ;;
esac
