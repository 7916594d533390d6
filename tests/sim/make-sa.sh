#!/usr/bin/env bash
# Writes DIR/service-account.json in Google's format for the key DIR/sa_key.pem
# (made by gen-certs.sh), with token_uri pointing wherever the test wants,
# e.g. at pushsim's token endpoint. The file is readable by its owner only.
# Usage: make-sa.sh DIR TOKEN_URI PROJECT_ID [CLIENT_EMAIL]
#   CLIENT_EMAIL defaults to pushgw-test@PROJECT_ID.iam.gserviceaccount.com
set -euo pipefail

dir=${1:?usage: make-sa.sh DIR TOKEN_URI PROJECT_ID [CLIENT_EMAIL]}
token_uri=${2:?token uri}
project=${3:?project id}
email=${4:-pushgw-test@$project.iam.gserviceaccount.com}
key=$dir/sa_key.pem
out=$dir/service-account.json

[ -s "$key" ] || { echo "make-sa.sh: no $key (run gen-certs.sh $dir first)" >&2; exit 1; }

# Google derives private_key_id from the key; a digest of the public half
# has the same shape (40 hex digits) and is stable per key.
key_id=$(openssl pkey -in "$key" -pubout -outform DER 2>/dev/null | openssl dgst -sha1 -r | cut -c1-40)
client_id=$(printf '1%020d' "$((0x$(printf %s "$email" | openssl dgst -sha1 -r | cut -c1-12) % 100000000000000))")

umask 077
jq -n --arg project "$project" --arg key_id "$key_id" --rawfile key "$key" --arg email "$email" \
	--arg client_id "$client_id" --arg token_uri "$token_uri" '{
	type: "service_account",
	project_id: $project,
	private_key_id: $key_id,
	private_key: $key,
	client_email: $email,
	client_id: $client_id,
	auth_uri: "https://accounts.google.com/o/oauth2/auth",
	token_uri: $token_uri,
	auth_provider_x509_cert_url: "https://www.googleapis.com/oauth2/v1/certs",
	client_x509_cert_url: ("https://www.googleapis.com/robot/v1/metadata/x509/" + ($email | @uri)),
	universe_domain: "googleapis.com"
}' >"$out.tmp"
chmod 600 "$out.tmp"
mv "$out.tmp" "$out"
