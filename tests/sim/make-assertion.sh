#!/usr/bin/env bash
# Prints a Google OAuth assertion (JWS RS256, RFC 7523) made with the openssl
# CLI only, independent of the C code that checks it.
# Usage: make-assertion.sh KEY.pem ISS AUD [IAT] [LIFETIME] [SCOPE] [ALG]
#   IAT defaults to now, LIFETIME (exp - iat) to 3600, SCOPE to the FCM
#   scope; ALG (header "alg") defaults to RS256.
set -euo pipefail

key=${1:?usage: make-assertion.sh KEY.pem ISS AUD [IAT] [LIFETIME] [SCOPE] [ALG]}
iss=${2:?iss}
aud=${3:?aud}
iat=${4:-$(date +%s)}
lifetime=${5:-3600}
scope=${6:-https://www.googleapis.com/auth/firebase.messaging}
alg=${7:-RS256}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

header=$(printf '{"alg":"%s","typ":"JWT"}' "$alg" | b64url)
claims=$(printf '{"iss":"%s","scope":"%s","aud":"%s","iat":%s,"exp":%s}' \
	"$iss" "$scope" "$aud" "$iat" "$((iat + lifetime))" | b64url)
sig=$(printf %s "$header.$claims" | openssl dgst -sha256 -sign "$key" -binary | b64url)
echo "$header.$claims.$sig"
