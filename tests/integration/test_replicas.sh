#!/usr/bin/env bash
# Two pushgw replicas, A and B, sharing one PostgreSQL registry (a throw-away
# server from scripts/pg-test-cluster.sh): what one registers the other
# wakes, a prune on one is seen by the next wake on the other, 2 x 500
# conflicting registrations through both end in one consistent state, and
# with the database stopped registry calls and /readyz answer 503 while
# explicit-device wakes still go out — until it is back, same processes.
# First the whole single-gateway registry suite runs on PostgreSQL too.
source tests/integration/lib.sh

# Not under $WORK: as root the server runs as "postgres", which cannot
# enter a private mktemp folder.
PGDIR=$(mktemp -d "${TMPDIR:-/tmp}/pushgw-pg.XXXXXX")
chmod 755 "$PGDIR"
trap 'scripts/pg-test-cluster.sh destroy "$PGDIR/pg" >/dev/null 2>&1; rm -rf "$PGDIR"; cleanup' EXIT
if ! PGURL=$(scripts/pg-test-cluster.sh start "$PGDIR/pg"); then
	bad "scripts/pg-test-cluster.sh could not start a PostgreSQL server"
	summary
	exit 1
fi

start_sim S
write_config "$WORK/a.json" S ".registry = {url: \"$PGURL\"}"
write_config "$WORK/b.json" S ".registry = {url: \"$PGURL\"}"
start_gw A "$WORK/a.json" || exit 1
start_gw B "$WORK/b.json" || exit 1

put_dev() { # put_dev GW EXT DEVICE_ID TOKEN_NUMBER
	api "$1" PUT "/v1/extensions/$2/devices/$3" \
		"{\"provider\":\"apns\",\"token\":\"$(tok "$4")\",\"app\":\"phone\"}" "$KEY_REG"
}
targets() { # targets GW EXT: the redacted targets of EXT, sorted, comma-joined
	api "$1" GET "/v1/extensions/$2/devices" "" "$KEY_REG"
	jqb '[.devices[] | .device_id + "=" + .target] | sort | join(",")'
}
wake_ext() { # wake_ext GW EXT CALL_ID
	api "$1" POST /v1/wake "{\"extension\":\"$2\",\"call\":{\"id\":\"$3\"}}"
}
readyz() { # readyz GW: the status /readyz answers
	local port="GW_PORT_$1"
	curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${!port}/readyz"
}

t_register_on_a_wake_on_b() {
	begin "a device registered on A is woken through B"
	put_dev A 1001 iphone 8001
	expect_eq "PUT on A: created" "$STATUS" 201
	put_dev A 1001 ipad 8002
	expect_eq "B lists what A stored" "$(targets B 1001)" "$(targets A 1001)"
	sim_ctl S POST /reset >/dev/null
	wake_ext B 1001 call-ab
	expect_eq "wake by extension on B" "$STATUS" 200
	expect_eq "both devices sent" "$(jqb '[.results[].status] | join(",")')" "sent,sent"
	expect_eq "both tokens reached APNs" \
		"$(sim_ctl S GET /requests | jq -r '[.[].token] | sort | join(",")')" "$(tok 8001),$(tok 8002)"
}

t_prune_on_b_is_seen_by_a() {
	begin "a dead token pruned by a wake on B is gone for the next wake on A"
	put_dev A 2001 dead 8101
	put_dev A 2001 live 8102
	sim_ctl S POST /script "{\"$(tok 8101)\":[{\"status\":410,\"reason\":\"Unregistered\",\"timestamp\":$(( $(date +%s) * 1000 + 60000 ))}]}" >/dev/null
	wake_ext B 2001 call-prune
	expect_eq "B: the dead device was removed" \
		"$(jqb '[.results[] | select(.status == "invalid_token") | .removed] | join(",")')" true
	expect_eq "A no longer lists it" "$(targets A 2001 | sed 's/=.*//')" live
	sim_ctl S POST /reset >/dev/null
	wake_ext A 2001 call-after
	expect_eq "the next wake on A: one device" "$(jqb '.results | length')" 1
	expect_eq "nothing pushed to the dead token" \
		"$(sim_ctl S GET /requests | jq --arg t "$(tok 8101)" '[.[] | select(.token == $t)] | length')" 0
}

# curl config: N PUTs to GW drawn from small pools (4 extensions, 6 device
# ids, 10 tokens), so that A and B keep moving the same tokens at once.
race_config() { # race_config GW SEED FILE
	local port="GW_PORT_$1" i ext id t
	RANDOM=$2
	: >"$3"
	for i in $(seq 1 500); do
		ext=r$((RANDOM % 4)); id=d$((RANDOM % 6)); t=$((8200 + RANDOM % 10))
		[ "$i" = 1 ] || echo next >>"$3"
		printf 'url = "http://127.0.0.1:%s/v1/extensions/%s/devices/%s"\nrequest = "PUT"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "{\\"provider\\":\\"apns\\",\\"token\\":\\"%s\\",\\"app\\":\\"phone\\"}"\nwrite-out = "%%{http_code}\\n"\noutput = "/dev/null"\n' \
			"${!port}" "$ext" "$id" "$KEY_REG" "$(tok "$t")" >>"$3"
	done
}

t_conflicting_registrations_end_consistent() {
	begin "2 x 500 concurrent conflicting registrations through A and B end in one state"
	race_config A 11 "$WORK/race-a.txt"
	race_config B 22 "$WORK/race-b.txt"
	curl -sS --no-progress-meter --parallel --parallel-max 8 --config "$WORK/race-a.txt" >"$WORK/race-a.codes" &
	local pa=$!
	curl -sS --no-progress-meter --parallel --parallel-max 8 --config "$WORK/race-b.txt" >"$WORK/race-b.codes"
	wait $pa
	expect_eq "every PUT answered 200 or 201" \
		"$(cat "$WORK/race-a.codes" "$WORK/race-b.codes" | grep -cE '^20[01]$')" 1000
	local e all_a="" all_b=""
	for e in r0 r1 r2 r3; do
		all_a+="$(targets A $e);"
		all_b+="$(targets B $e);"
	done
	expect_eq "A and B see the same devices" "$all_a" "$all_b"
	local held; held=$(tr ';,' '\n\n' <<<"$all_a" | sed -n 's/.*=//p')
	expect_eq "no token is held by two devices" "$(sort <<<"$held" | uniq -d | wc -l)" 0
	check "at most one device per token" test "$(wc -l <<<"$held")" -le 10
	check "some tokens did move" test "$(wc -l <<<"$held")" -ge 4
	sim_ctl S POST /reset >/dev/null
	wake_ext B r0 call-race
	expect_eq "a wake on B reaches each listed device once" \
		"$(jqb '.results | length')" "$(tr ',' '\n' <<<"${all_a%%;*}" | grep -c .)"
}

t_database_outage() {
	begin "database down: registry 503 and not ready, explicit wakes still sent; back: same processes recover"
	scripts/pg-test-cluster.sh stop "$PGDIR/pg" || bad "could not stop the server"
	put_dev A 3001 phone 8301
	expect_eq "PUT on A: 503" "$STATUS" 503
	expect_eq "PUT: code" "$(jqb .error.code)" registry_unavailable
	check "PUT: the message says why" grep -q "registry" <<<"$(jqb .error.message)"
	api B GET /v1/extensions/1001/devices "" "$KEY_REG"
	expect_eq "GET on B: 503" "$STATUS" 503
	wake_ext B 1001 call-down
	expect_eq "wake by extension on B: 503" "$STATUS" 503
	expect_eq "wake by extension: code" "$(jqb .error.code)" registry_unavailable
	expect_eq "/readyz on A: 503" "$(readyz A)" 503
	expect_eq "/readyz on B: 503" "$(readyz B)" 503
	api A POST /v1/wake "$(wake_body "$(tok 8302)" call-explicit-a)"
	expect_eq "explicit-device wake on A: 200" "$STATUS" 200
	expect_eq "explicit-device wake on A: sent" "$(jqb '.results[0].status')" sent
	api B POST /v1/wake "$(wake_body "$(tok 8303)" call-explicit-b)"
	expect_eq "explicit-device wake on B: sent" "$(jqb '.results[0].status')" sent
	check "A logged the outage once" test "$(grep -c '"registry: database unreachable"' "$WORK/gw-A.log")" = 1

	scripts/pg-test-cluster.sh start "$PGDIR/pg" >/dev/null || bad "could not restart the server"
	local i
	for i in $(seq 1 100); do
		put_dev A 3001 phone 8301
		[ "$STATUS" = 201 ] && break
		sleep 0.1
	done
	expect_eq "PUT on A succeeds again" "$STATUS" 201
	expect_eq "/readyz on A: 200" "$(readyz A)" 200
	# B may still be inside its pause between connection attempts (0.5 s).
	for i in $(seq 1 50); do [ "$(readyz B)" = 200 ] && break; sleep 0.1; done
	expect_eq "/readyz on B: 200" "$(readyz B)" 200
	expect_eq "B reads what A wrote after the outage" "$(targets B 3001 | sed 's/=.*//')" phone
	sim_ctl S POST /reset >/dev/null
	wake_ext B 1001 call-back
	expect_eq "wake by extension on B works again" "$(jqb '[.results[].status] | join(",")')" "sent,sent"
	check "A is the same process" gw_alive A
	check "B is the same process" gw_alive B
	check "A logged the recovery" grep -q '"registry: database reachable again"' "$WORK/gw-A.log"
}

t_registry_suite_on_postgresql() {
	begin "the whole registry suite (test_registry.sh) on PostgreSQL"
	local url out line p f
	url=$(scripts/pg-test-cluster.sh createdb "$PGDIR/pg" registry_suite) ||
		{ bad "cannot create a database for the suite"; return; }
	out=$(PUSHGW_TEST_REGISTRY_URL=$url bash tests/integration/test_registry.sh 2>&1)
	grep '^FAIL' <<<"$out" | sed 's/^FAIL/FAIL (registry suite on PostgreSQL)/' >&2
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n1)
	p=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line"); f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
	[ -n "$line" ] || { bad "the registry suite printed no summary: $(tail -n5 <<<"$out")"; return; }
	PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
	echo "  registry suite on PostgreSQL: $p passed, $f failed"
}

t_registry_suite_on_postgresql
t_register_on_a_wake_on_b
t_prune_on_b_is_seen_by_a
t_conflicting_registrations_end_consistent
t_database_outage
stop_gw A
expect_eq "A stops cleanly" "$GW_EXIT" 0
stop_gw B
expect_eq "B stops cleanly" "$GW_EXIT" 0
summary
