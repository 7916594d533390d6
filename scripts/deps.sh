#!/usr/bin/env bash
# Install the Debian packages pushgw needs, when they are missing.
#   scripts/deps.sh [--quiet] [build|test]   (default: test = build + test tools)
# Runs apt-get only as root and only when something is missing.
set -euo pipefail
quiet=0; [ "${1:-}" = "--quiet" ] && { quiet=1; shift; }
what=${1:-test}
pkgs=(build-essential pkg-config libmicrohttpd-dev libnghttp2-dev libssl-dev
      libjansson-dev libjwt-dev libsqlite3-dev libcurl4-openssl-dev libgnutls28-dev libpq-dev
      libsofia-sip-ua-dev)
[ "$what" = test ] && pkgs+=(curl openssl jq python3 valgrind nghttp2-server nghttp2-client prometheus python3-yaml python3-jsonschema clang libclang-rt-14-dev postgresql linphone-cli)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { [ $quiet = 1 ] || echo "deps: all present"; exit 0; }
echo "deps: installing ${missing[*]}" >&2
if [ "$(id -u)" != 0 ]; then
	echo "deps: not root; run as root or: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
