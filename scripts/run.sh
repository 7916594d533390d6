#!/usr/bin/env bash
# `make run`: start pushgw. With a config ($PUSHGW_CONFIG or ./pushgw.json)
# it runs that; without one it runs a demo against the bundled local APNs
# simulator so a wake can be tried with curl at once.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PUSHGW_CONFIG:-}" ] || [ -f pushgw.json ]; then
	exec build/pushgw -c "${PUSHGW_CONFIG:-pushgw.json}"
fi

demo=demo
listen=${PUSHGW_LISTEN:-127.0.0.1:8080}
mkdir -p "$demo"
bash tests/sim/gen-certs.sh "$demo/certs" >/dev/null
build/pushsim --listen 127.0.0.1:0 --control 127.0.0.1:0 \
	--cert "$demo/certs/server.pem" --key "$demo/certs/server.key" \
	--team-id TEAM123456 --key-id KEY1234567 --apns-key-pub "$demo/certs/apns_pub.pem" \
	--bundle-id com.example.phone >"$demo/sim.out" 2>"$demo/sim.log" &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null' EXIT
for _ in $(seq 1 100); do grep -q control "$demo/sim.out" 2>/dev/null && break; sleep 0.05; done
sim_port=$(jq -r .listen "$demo/sim.out")
ctl_port=$(jq -r .control "$demo/sim.out")

[ -f "$demo/api-key" ] || { echo "demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$demo/api-key"; chmod 600 "$demo/api-key"; }
key=$(cat "$demo/api-key")
cat >"$demo/pushgw.json" <<JSON
{
  "listen": "$listen",
  "api_keys": [ { "name": "demo", "key": "$(build/pushgw hash-key "$key")", "scopes": ["wake", "register"] } ],
  "apps": {
    "phone": {
      "apns": {
        "team_id": "TEAM123456", "key_id": "KEY1234567", "key_file": "certs/AuthKey_KEY1234567.p8",
        "bundle_id": "com.example.phone", "environment": "production",
        "url": "https://127.0.0.1:$sim_port"
      }
    }
  },
  "upstream": { "ca_file": "certs/ca.pem", "connections": 2 },
  "registry": { "path": "pushgw.db" },
  "log": { "level": "info", "format": "text" }
}
JSON

token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat <<TXT

  pushgw demo — no credentials configured, so pushes go to the bundled local
  APNs simulator (https://127.0.0.1:$sim_port), which checks them like Apple.

  Wake a phone (paste into another terminal):

    curl -s http://$listen/v1/wake \\
      -H 'Authorization: Bearer $key' -H 'Content-Type: application/json' \\
      -d '{"devices":[{"provider":"apns","token":"$token"}],
           "call":{"id":"call-1@pbx","from":"+15551234567","from_name":"Alice","to":"1001"}}'

  See what reached "Apple":   curl -s http://127.0.0.1:$ctl_port/requests
  Metrics:                    curl -s http://$listen/metrics
  Stop: Ctrl-C. To use real credentials, write pushgw.json (see README.md).

TXT
build/pushgw -c "$demo/pushgw.json"
