#!/usr/bin/env bash
# Prints an APNs provider token (JWS ES256, raw R||S signature) made with the
# openssl CLI only, independent of the C code that checks it.
# Usage: make-jwt.sh KEY.p8 TEAM_ID KEY_ID [IAT] [ALG]
#   IAT defaults to now; ALG (header "alg") defaults to ES256.
set -euo pipefail

key=${1:?usage: make-jwt.sh KEY.p8 TEAM_ID KEY_ID [IAT] [ALG]}
team=${2:?team id}
kid=${3:?key id}
iat=${4:-$(date +%s)}
alg=${5:-ES256}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# An ASN.1 INTEGER's hex as exactly 32 bytes: drop the sign byte, left-pad.
fixed32() {
	local h=${1#"${1%%[!0]*}"}
	while [ ${#h} -gt 64 ]; do h=${h:2}; done
	while [ ${#h} -lt 64 ]; do h="0$h"; done
	echo "$h"
}

input="$(printf '{"alg":"%s","kid":"%s"}' "$alg" "$kid" | b64url).$(printf '{"iss":"%s","iat":%s}' "$team" "$iat" | b64url)"
ints=$(printf %s "$input" | openssl dgst -sha256 -sign "$key" -binary |
	openssl asn1parse -inform DER | awk -F: '/INTEGER/ { print $NF }')
r=$(fixed32 "$(echo "$ints" | sed -n 1p)")
s=$(fixed32 "$(echo "$ints" | sed -n 2p)")
sig=$(printf "$(echo "$r$s" | sed 's/../\\x&/g')" | b64url)
echo "$input.$sig"
