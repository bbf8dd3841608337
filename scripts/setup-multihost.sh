#!/usr/bin/env bash
# nginx and socat for the multi-host test (tests/multihost), from Debian's packages; quiet when
# both are there. The test itself skips without them (fails under PERMEABILITY_REQUIRE_SERVICES=1).
set -euo pipefail
missing=()
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v socat >/dev/null 2>&1 || missing+=(socat)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "${missing[*]} missing: install Debian's packages to run the multi-host test" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The package's own nginx service is not wanted: the test runs nginx from a private prefix.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now nginx >/dev/null 2>&1 || true
fi
# Without systemd the package's scripts may have started the system nginx on port 80: stop it.
if [ -s /run/nginx.pid ]; then
  /usr/sbin/nginx -s quit >/dev/null 2>&1 || true
fi
