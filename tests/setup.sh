#!/usr/bin/env bash
# Installs what the test suite needs besides Rust, and only what is missing: redis-server (the
# Redis store's tests start their own, replicas and a Sentinel too: `redis-server --sentinel`,
# so Debian's separate redis-sentinel package is not needed), a Secret Service for the keyring
# store's tests (gnome-keyring, started by the tests themselves in a private D-Bus session, and
# secret-tool to look at what it holds), iproute2 for the fleet fault harness, the interop
# suite's npm packages, Chromium and ChromeDriver. Needs root (or sudo) for apt-get the first
# time. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing redis-server"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
fi

missing=()
# The fleet fault harness (tests/fleet_faults/): network namespaces and links with `ip`, faults
# with `tc` (both from iproute2), redis-cli to see that its Redis host is up.
{ command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1; } || missing+=(iproute2)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v dbus-run-session >/dev/null 2>&1 || missing+=(dbus)
command -v gnome-keyring-daemon >/dev/null 2>&1 || missing+=(gnome-keyring)
command -v secret-tool >/dev/null 2>&1 || missing+=(libsecret-tools)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

bash tests/interop/install.sh
