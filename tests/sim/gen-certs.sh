#!/usr/bin/env bash
# Creates the TLS and provider-key material the simulator and the tests use:
#   ca.pem/ca.key             test CA
#   server.pem/server.key     server cert from the CA (localhost, 127.0.0.1)
#   untrusted.pem/.key        self-signed server cert with the same names
#   client.pem/client.key     client cert from the CA (certificate auth)
#   AuthKey_KEY1234567.p8     EC P-256 provider key, PKCS#8 PEM like Apple's
#   apns_pub.pem              its public key
#   other.p8                  a second EC key ("wrong key" tests)
#   sa_key.pem                RSA 2048 service-account key, PKCS#8 PEM like Google's
#   sa_pub.pem                its public key (pushsim --sa-pub)
#   sa_other.pem              a second RSA key ("wrong key" tests)
# Usage: gen-certs.sh DIR. Leaves a complete, valid set alone (idempotent).
set -euo pipefail

dir=${1:?usage: gen-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

files=(ca.pem ca.key server.pem server.key untrusted.pem untrusted.key client.pem client.key
       AuthKey_KEY1234567.p8 apns_pub.pem other.p8 sa_key.pem sa_pub.pem sa_other.pem)

complete() {
	local f
	for f in "${files[@]}"; do [ -s "$f" ] || return 1; done
	openssl verify -CAfile ca.pem server.pem client.pem >/dev/null 2>&1 || return 1
	openssl x509 -in server.pem -noout -checkend 86400 >/dev/null 2>&1
}

# Private keys readable by the owner only (pushgw refuses others), also for
# a set copied or restored with looser modes.
private_modes() { chmod 600 ./*.key ./*.p8 sa_key.pem sa_other.pem; }

complete && { private_modes; exit 0; }

umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
serial() { echo "0x$(openssl rand -hex 16)"; }

san="subjectAltName=DNS:localhost,IP:127.0.0.1"

# The CA.
ec_key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 3650 -subj "/CN=pushgw test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# A leaf certificate signed by the CA: sign_leaf NAME CN EXTENDED_KEY_USAGE [SAN]
sign_leaf() {
	local name=$1 cn=$2 eku=$3 ext=$tmp/$1.ext
	ec_key "$name.key"
	openssl req -new -key "$name.key" -out "$tmp/$name.csr" -subj "/CN=$cn" 2>/dev/null
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature"
		echo "extendedKeyUsage=$eku"
		[ -z "${4:-}" ] || echo "$4"
	} >"$ext"
	openssl x509 -req -in "$tmp/$name.csr" -CA ca.pem -CAkey ca.key -set_serial "$(serial)" \
		-days 825 -extfile "$ext" -out "$name.pem" 2>/dev/null
}

sign_leaf server localhost serverAuth "$san"
sign_leaf client "pushgw test client" clientAuth

# Same names, but nobody vouches for it.
ec_key untrusted.key
openssl req -x509 -new -key untrusted.key -out untrusted.pem -days 825 -subj "/CN=localhost" \
	-addext "$san" -addext "extendedKeyUsage=serverAuth" 2>/dev/null

# Provider keys, PKCS#8 PEM ("BEGIN PRIVATE KEY") like Apple's download.
ec_key AuthKey_KEY1234567.p8
openssl pkey -in AuthKey_KEY1234567.p8 -pubout -out apns_pub.pem 2>/dev/null
ec_key other.p8

# Service-account keys, PKCS#8 PEM ("BEGIN PRIVATE KEY") as in Google's JSON.
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
rsa_key sa_key.pem
openssl pkey -in sa_key.pem -pubout -out sa_pub.pem 2>/dev/null
rsa_key sa_other.pem

chmod 644 ./*.pem
private_modes
