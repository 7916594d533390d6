#!/usr/bin/env bash
# Two pushgw replicas, A and B, sharing one PostgreSQL registry (a throw-away
# server from scripts/pg-test-cluster.sh): what one registers the other
# wakes, a prune on one is seen by the next wake on the other, 2 x 500
# conflicting registrations through both end in one consistent state, and
# with the database stopped registry calls and /readyz answer 503 while
# explicit-device wakes still go out — until it is back, same processes.
# Then the database hangs (its processes SIGSTOPped): registry calls wait
# off the request threads and get 503 in bounded time, while explicit
# wakes, /healthz and /metrics answer; SIGCONT, and everything recovers.
# First the whole single-gateway registry suite runs on PostgreSQL too.
source tests/integration/lib.sh

pg_start
pg_frozen() { # the postmaster is stopped (state T)
	local pm; pm=$(head -n1 "$PGDIR/pg/data/postmaster.pid")
	[ "$(ps -o stat= -p "$pm" | cut -c1)" = T ]
}

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
	curl -s -o /dev/null -w '%{http_code}' --max-time 15 "http://127.0.0.1:${!port}/readyz"
}
# readyz_becomes GW STATUS: /readyz answers STATUS within 5 s. It reads the
# registry's health as a watch thread last saw it (probes never queue
# registry work), so it follows an outage by up to a couple of seconds.
readyz_becomes() {
	local i s=""
	for i in $(seq 1 50); do s=$(readyz "$1"); [ "$s" = "$2" ] && break; sleep 0.1; done
	echo "$s"
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
race_config() { # race_config GW SEED FILE [EXTENSION_PREFIX]
	local port="GW_PORT_$1" i ext id t
	RANDOM=$2
	: >"$3"
	for i in $(seq 1 500); do
		ext=${4:-r}$((RANDOM % 4)); id=d$((RANDOM % 6)); t=$((8200 + RANDOM % 10))
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
	expect_eq "/readyz on A: 503" "$(readyz_becomes A 503)" 503
	expect_eq "/readyz on B: 503" "$(readyz_becomes B 503)" 503
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
	expect_eq "/readyz on A: 200" "$(readyz_becomes A 200)" 200
	# B may still be inside its pause between connection attempts (0.5 s).
	expect_eq "/readyz on B: 200" "$(readyz_becomes B 200)" 200
	expect_eq "B reads what A wrote after the outage" "$(targets B 3001 | sed 's/=.*//')" phone
	sim_ctl S POST /reset >/dev/null
	wake_ext B 1001 call-back
	expect_eq "wake by extension on B works again" "$(jqb '[.results[].status] | join(",")')" "sent,sent"
	check "A is the same process" gw_alive A
	check "B is the same process" gw_alive B
	check "A logged the recovery" grep -q '"registry: database reachable again"' "$WORK/gw-A.log"
}

# curl config: N GETs of an extension's devices on GW, bodies into
# FILE.N.json.
burst_config() { # burst_config GW N FILE
	local port="GW_PORT_$1" i
	: >"$3"
	for i in $(seq 1 "$2"); do
		[ "$i" = 1 ] || echo next >>"$3"
		printf 'url = "http://127.0.0.1:%s/v1/extensions/6001/devices"\nheader = "Authorization: Bearer %s"\nwrite-out = "%%{http_code}\\n"\noutput = "%s.%d.json"\nmax-time = 60\n' \
			"${!port}" "$KEY_REG" "$3" "$i" >>"$3"
	done
}
# bg_call NAME METHOD PATH [BODY]: a call to A in the background, its
# status and body into $WORK/bg-NAME.{status,body}.
bg_call() {
	local args=(-sS -o "$WORK/bg-$1.body" -w '%{http_code}' --max-time 60 -X "$2"
		-H "Authorization: Bearer $KEY_WAKE")
	[ -n "${4:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
	curl "${args[@]}" "http://127.0.0.1:$GW_PORT_A$3" >"$WORK/bg-$1.status" 2>/dev/null &
	BG_PIDS+=($!)
}
pushgw_sessions() {
	psql "$PGURL" -Atc "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pushgw'" 2>/dev/null
}

t_database_hangs() {
	begin "database hung: registry calls wait off the request threads, 503 in bounded time; explicit wakes, /healthz, /metrics answer; SIGCONT recovers"
	put_dev A 6001 phone 8601
	expect_eq "registered before the hang" "$STATUS" 201
	# Every pooled session open, so that the registry threads block on them
	# rather than on connecting: writes (which share at most two sessions,
	# batched) and reads at once are concurrent enough to open all four.
	local i
	burst_config A 200 "$WORK/warm-reads.txt"
	for i in $(seq 1 20); do
		race_config A $((100 + i)) "$WORK/warm.txt" warm
		curl -sS --no-progress-meter --parallel --parallel-max 32 --config "$WORK/warm.txt" >/dev/null &
		curl -sS --no-progress-meter --parallel --parallel-max 32 --config "$WORK/warm-reads.txt" >/dev/null
		wait $!
		[ "$(pushgw_sessions)" = 4 ] && break
	done
	expect_eq "A holds its 4 database sessions" "$(pushgw_sessions)" 4

	kill -STOP $(pg_pids) || bad "could not stop the server's processes"
	BG_PIDS=()
	bg_call put PUT /v1/extensions/6001/devices/tablet \
		"{\"provider\":\"apns\",\"token\":\"$(tok 8602)\",\"app\":\"phone\"}"
	bg_call get GET /v1/extensions/6001/devices/phone
	bg_call list GET /v1/extensions/6001/devices
	bg_call del DELETE /v1/extensions/6001/devices/ghost
	bg_call wake POST /v1/wake '{"extension":"6001","call":{"id":"call-hung"}}'
	burst_config A 200 "$WORK/burst.txt"
	curl -sS --no-progress-meter --parallel --parallel-max 200 --config "$WORK/burst.txt" \
		>"$WORK/burst.out" 2>/dev/null &
	BG_PIDS+=($!)
	sleep 1 # let them all reach the gateway; the checks below do not time it

	local ok_wakes=0 ok_health=0
	for i in 1 2 3 4 5 6; do
		STATUS=$(curl -sS -o "$WORK/body" -w '%{http_code}' --max-time 15 \
			-H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' \
			--data-binary "$(wake_body "$(tok $((8610 + i)))" "call-explicit-$i")" \
			"http://127.0.0.1:$GW_PORT_A/v1/wake")
		[ "$STATUS" = 200 ] && [ "$(jq -r '.results[0].status' "$WORK/body")" = sent ] &&
			ok_wakes=$((ok_wakes + 1))
		[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 "http://127.0.0.1:$GW_PORT_A/healthz")" = 200 ] &&
			ok_health=$((ok_health + 1))
	done
	expect_eq "explicit-device wakes answered, sent" "$ok_wakes" 6
	expect_eq "/healthz answered" "$ok_health" 6
	expect_eq "/readyz: 503 while the registry does not answer" "$(readyz_becomes A 503)" 503
	STATUS=$(curl -s -o "$WORK/body" -w '%{http_code}' --max-time 15 "http://127.0.0.1:$GW_PORT_A/metrics")
	expect_eq "/metrics answered" "$STATUS" 200
	check "/metrics still has the wake counters" grep -q '^pushgw_wakes_total' "$WORK/body"
	check "all of that while the database was still stopped" pg_frozen

	for i in "${BG_PIDS[@]}"; do wait "$i"; done
	check "the registry calls ended while the database was still stopped" pg_frozen
	local name
	for name in put get list del wake; do
		expect_eq "$name during the hang: 503" "$(cat "$WORK/bg-$name.status")" 503
		expect_eq "$name during the hang: code" "$(jq -r .error.code "$WORK/bg-$name.body")" registry_unavailable
	done
	check "the message says the registry did not answer" grep -q "did not answer in time" "$WORK/bg-put.body"
	check "the wake's message names the extension" grep -q "^extension: " <<<"$(jq -r .error.message "$WORK/bg-wake.body")"
	expect_eq "200 parallel registry calls: every one answered 503" "$(grep -c '^503$' "$WORK/burst.out")" 200
	local msgs; msgs=$(cat "$WORK"/burst.txt.*.json | jq -r '.error.code + ": " + .error.message')
	expect_eq "all registry_unavailable" "$(grep -vc '^registry_unavailable: ' <<<"$msgs")" 0
	check "past the queue's bound, refused at once" grep -q "too many registry calls are waiting" <<<"$msgs"
	check "the queued ones, at their deadline" grep -q "did not answer in time" <<<"$msgs"

	kill -CONT $(pg_pids) || bad "could not resume the server's processes"
	# (the calls stuck in the database finish now; they change nothing
	# the checks below depend on)
	for i in $(seq 1 100); do
		put_dev A 6001 tablet 8602
		[ "$STATUS" = 201 ] || [ "$STATUS" = 200 ] && break
		sleep 0.2
	done
	check "PUT works again" test "$STATUS" = 201 -o "$STATUS" = 200
	expect_eq "GET sees both devices" "$(targets A 6001 | sed 's/=[^,]*//g')" phone,tablet
	expect_eq "/readyz: 200 again" "$(readyz_becomes A 200)" 200
	sim_ctl S POST /reset >/dev/null
	wake_ext A 6001 call-after-hang
	expect_eq "wake by extension works again" "$(jqb '[.results[].status] | join(",")')" "sent,sent"
	check "A is the same process" gw_alive A
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
# B stops first: every database session left is then A's
stop_gw B
expect_eq "B stops cleanly" "$GW_EXIT" 0
t_database_hangs
stop_gw A
expect_eq "A stops cleanly" "$GW_EXIT" 0
summary
