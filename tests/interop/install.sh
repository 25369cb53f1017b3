#!/usr/bin/env bash
# Installs what the interop suites (tests/interop.rs, tests/interop_fapi.rs,
# tests/interop_workload.rs) need, and only what is missing:
# - the npm packages of tests/interop (`npm ci`, from the committed package-lock.json), when
#   node_modules is missing or older than the lockfile;
# - Chromium and chromedriver from Debian, when either is missing (needs root).
# Prints what it did. Safe to run again.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "interop: node and npm are required (Node.js >= 20); install them first" >&2
    exit 1
fi

# npm ci leaves node_modules/.package-lock.json behind; it must be newer than the lockfile
# and name the pinned oidc-provider.
stamp="$here/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$here/package-lock.json" -nt "$stamp" || ! -f "$here/node_modules/oidc-provider/package.json" ]]; then
    echo "interop: npm ci in tests/interop (node $(node --version))"
    (cd "$here" && npm ci --no-audit --no-fund)
else
    echo "interop: npm packages up to date ($(node -p "require('$here/node_modules/oidc-provider/package.json').version" 2>/dev/null || echo '?'))"
fi

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if ((${#missing[@]})); then
    echo "interop: apt-get install ${missing[*]}"
    sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -q
    "${sudo_cmd[@]}" apt-get install -y -q chromium chromium-driver
else
    echo "interop: chromium and chromedriver present ($(chromedriver --version 2>/dev/null | cut -d' ' -f1-2))"
fi
