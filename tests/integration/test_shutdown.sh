#!/usr/bin/env bash
# SIGTERM in the middle of things: every request in progress gets an HTTP
# answer, the process exits 0 and leaves no sanitizer report (this suite
# runs under ASan+UBSan in `make test` too). Covered: bodies still arriving
# when SIGTERM comes (and completing after the grace period), wakes whose
# registry lookup hangs past the grace period or answers inside it (the
# drain then waits for their pushes), async wakes whose result is
# being made out of a hung registry, and probes: 64 clients scraping
# /metrics and /readyz from another address never take the capacity that
# wakes by extension need, on SQLite and on PostgreSQL, and cost the
# database a few statements a second however many there are.
source tests/integration/lib.sh

pg_start
start_sim S

# gw_exit_within NAME SECONDS: wait for the gateway (already signalled) to
# exit; sets GW_EXIT (124 when it did not).
gw_exit_within() {
	local pid="GW_PID_$1" i
	for i in $(seq 1 $(($2 * 10))); do gw_running "${!pid}" || break; sleep 0.1; done
	if gw_running "${!pid}"; then GW_EXIT=124; return; fi
	wait "${!pid}"; GW_EXIT=$?
}
# bg_wake_ext PORT EXTENSION TIMEOUT_MS OUT: a wake by extension in the
# background; its status into OUT.status, its body into OUT.body.
bg_wake_ext() {
	curl -sS -o "$4.body" -w '%{http_code}' --max-time 30 \
		-H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' \
		--data-binary "{\"extension\":\"$2\",\"call\":{\"id\":\"$(basename "$4")\"},\"timeout_ms\":$3}" \
		"http://127.0.0.1:$1/v1/wake" >"$4.status" 2>/dev/null &
}
no_sanitizer_report() { ! grep -Eq "$SANITIZER_REPORT" "$WORK/gw-$1.log"; }

t_bodies_arriving_across_sigterm() {
	begin "SIGTERM while request bodies are still arriving: every client gets an answer, exit 0"
	write_config "$WORK/body.json" S '.shutdown_grace_s = 1'
	start_gw B "$WORK/body.json" || return
	wake_body "$(tok 2101)" call-partial >"$WORK/partial.json"
	# 0–500 ms: inside the grace period; 1500 ms: after it, while the
	# gateway stops (the request was in progress, so it is still answered)
	python3 tests/integration/partial_body.py "$GW_PORT_B" "$KEY_WAKE" "$GW_PID_B" \
		"$WORK/partial.json" 0,40,80,200,500,1500 >"$WORK/partial.out"
	expect_eq "six answers" "$(jq -s 'length' "$WORK/partial.out")" 6
	# a body that beat the gateway's handling of the signal (0-80 ms on a
	# busy machine) is served as usual; every other one gets the drain's 503
	expect_eq "each one 503 shutting_down, or served" \
		"$(jq -r 'select(.status != 200 and (.status != 503 or .code != "shutting_down"))' "$WORK/partial.out")" ""
	expect_eq "those from 200 ms on: 503 shutting_down" \
		"$(jq -r 'select(.delay_ms >= 200) | "\(.status) \(.code)"' "$WORK/partial.out" | sort -u)" "503 shutting_down"
	gw_exit_within B 20
	expect_eq "exit status" "$GW_EXIT" 0
	check "no sanitizer report" no_sanitizer_report B
	expect_eq "pushed only for the requests served" \
		"$(sim_ctl S GET /requests | jq --arg t "$(tok 2101)" '[.[] | select(.token == $t)] | length')" \
		"$(jq -s '[.[] | select(.status == 200)] | length' "$WORK/partial.out")"
}

t_lookup_hung_past_the_grace_period() {
	begin "SIGTERM while wakes by extension wait for a hung registry: answered, exit 0 once it is back"
	write_config "$WORK/hung.json" S ".registry = {url: \"$PGURL\"} | .shutdown_grace_s = 1"
	start_gw H "$WORK/hung.json" || return
	api H PUT /v1/extensions/4001/devices/phone \
		"{\"provider\":\"apns\",\"token\":\"$(tok 2201)\",\"app\":\"phone\"}" "$KEY_REG"
	expect_eq "registered" "$STATUS" 201
	kill -STOP $(pg_pids)
	local i
	for i in 1 2 3 4; do bg_wake_ext "$GW_PORT_H" 4001 8000 "$WORK/hung-$i"; done
	sleep 0.5
	kill -TERM "$GW_PID_H"
	# the registry answers again after the grace period, while the gateway
	# is stopping: lookups that finish now must not reach a stopped loop
	sleep 1.3
	kill -CONT $(pg_pids)
	wait_clients
	local answered=0 s
	for i in 1 2 3 4; do
		s=$(cat "$WORK/hung-$i.status")
		case "$s" in 200|503) answered=$((answered + 1));; esac
	done
	expect_eq "all four answered (200 or 503)" "$answered" 4
	check "the 503s are JSON errors" test -z "$(for i in 1 2 3 4; do [ "$(cat "$WORK/hung-$i.status")" = 503 ] && jq -e .error.code "$WORK/hung-$i.body" >/dev/null || true; done)"
	gw_exit_within H 30
	expect_eq "exit status" "$GW_EXIT" 0
	check "no sanitizer report" no_sanitizer_report H
}

t_lookup_then_pushes_inside_the_grace_period() {
	begin "SIGTERM while wakes wait for their registry lookup, which answers inside the grace period: the drain waits for their pushes too"
	write_config "$WORK/trans.json" S ".registry = {url: \"$PGURL\"} | .shutdown_grace_s = 8"
	start_gw T "$WORK/trans.json" || return
	api T PUT /v1/extensions/4101/devices/phone \
		"{\"provider\":\"apns\",\"token\":\"$(tok 2251)\",\"app\":\"phone\"}" "$KEY_REG"
	expect_eq "registered" "$STATUS" 201
	sim_ctl S POST '/delay?ms=800' >/dev/null
	kill -STOP $(pg_pids)
	local i
	for i in 1 2 3 4; do bg_wake_ext "$GW_PORT_T" 4101 6000 "$WORK/trans-$i"; done
	sleep 0.5
	kill -TERM "$GW_PID_T"
	sleep 0.5
	# the lookups answer now, and their pushes take 800 ms at APNs: the
	# drain must not end in the moment a wake goes from one to the other
	kill -CONT $(pg_pids)
	wait_clients
	local sent=0
	for i in 1 2 3 4; do
		[ "$(cat "$WORK/trans-$i.status")" = 200 ] &&
			[ "$(jq -r '.results[0].status' "$WORK/trans-$i.body")" = sent ] && sent=$((sent + 1))
	done
	expect_eq "all four: 200, sent" "$sent" 4
	gw_exit_within T 30
	expect_eq "exit status" "$GW_EXIT" 0
	check "no sanitizer report" no_sanitizer_report T
	sim_ctl S POST '/delay?ms=0' >/dev/null
}

t_database_stays_hung() {
	begin "SIGTERM while PostgreSQL hangs and stays hung: registry threads are cut loose, exit 0 within the grace period and a few seconds"
	write_config "$WORK/stuck.json" S ".registry = {url: \"$PGURL\"} | .shutdown_grace_s = 1"
	start_gw K "$WORK/stuck.json" || return
	api K PUT /v1/extensions/4201/devices/phone \
		"{\"provider\":\"apns\",\"token\":\"$(tok 2261)\",\"app\":\"phone\"}" "$KEY_REG"
	expect_eq "registered" "$STATUS" 201
	kill -STOP $(pg_pids)
	bg_wake_ext "$GW_PORT_K" 4201 8000 "$WORK/stuck-1"
	sleep 1 # the registry watch is waiting on the database by now too
	local t0; t0=$(date +%s%N)
	kill -TERM "$GW_PID_K"
	gw_exit_within K 30
	local took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	kill -CONT $(pg_pids)
	wait_clients
	expect_eq "exit status" "$GW_EXIT" 0
	check "stopped in ${took_ms} ms: within the grace period (1 s) and 6 s" test "$took_ms" -le 7000
	check "the waiting wake was answered ($(cat "$WORK/stuck-1.status"))" grep -Eq '^(200|503)$' "$WORK/stuck-1.status"
	check "no sanitizer report" no_sanitizer_report K
}

t_reload_then_sigterm_while_an_old_ring_retries() {
	begin "SIGHUP, then SIGTERM while the old config's ring repetition waits to retry: exit 0, no hang"
	write_config "$WORK/ring.json" S '.apps.phone.ring_repeat_s = 1 | .shutdown_grace_s = 2'
	local off t t0 now ok=0
	for off in 2.0 2.2 2.4; do
		start_gw G "$WORK/ring.json" || return
		t=$(tok $((2270 + ${off/./})))
		# the first alert is accepted (ringing starts), every repeat gets 503
		sim_ctl S POST /script "{\"$t\": [{\"status\":200}, {\"status\":503,\"reason\":\"ServiceUnavailable\"}]}" >/dev/null
		t0=$(date +%s%N)
		api G POST /v1/wake "$(jq -cn --arg t "$t" '{devices:[{provider:"apns",remote_token:$t,app:"phone"}],call:{id:"ring-reload",from:"+1"},ttl:3}')"
		kill -HUP "$GW_PID_G"
		now=$(date +%s%N)
		sleep "$(awk -v o="$off" -v e="$(( (now - t0) / 1000000 ))" 'BEGIN { d = o - e / 1000; print (d > 0 ? d : 0) }')"
		kill -TERM "$GW_PID_G"
		gw_exit_within G 15
		[ "$GW_EXIT" = 0 ] && ok=$((ok + 1))
		check "no sanitizer report (SIGTERM at ${off} s)" no_sanitizer_report G
	done
	expect_eq "all three stopped with exit 0" "$ok" 3
	sim_ctl S POST /reset >/dev/null
}

wait_clients() { local j; for j in $(jobs -p); do case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j";; esac; done; }

t_async_results_made_from_a_hung_registry() {
	begin "SIGTERM while async results wait on a hung registry to drop dead tokens: exit 0, no use after free"
	local rcv="$WORK/rcv-async.jsonl"; : >"$rcv"
	python3 tests/integration/callback_receiver.py "$rcv" 200 >"$WORK/rcv-async.out" &
	PIDS+=($!)
	local i; for i in $(seq 1 100); do grep -q port "$WORK/rcv-async.out" 2>/dev/null && break; sleep 0.05; done
	local rport; rport=$(jq -r .port "$WORK/rcv-async.out")
	write_config "$WORK/async.json" S ".registry = {url: \"$PGURL\"} | .shutdown_grace_s = 1"
	start_gw Y "$WORK/async.json" || return
	# the tokens are dead (410 after their registration): each result
	# first drops its token from the registry, which hangs
	local later=$(( ($(date +%s) + 60) * 1000 )) script="{"
	for i in 1 2 3 4 5 6; do
		script+="\"$(tok $((2300 + i)))\":[{\"status\":410,\"reason\":\"Unregistered\",\"timestamp\":$later}]"
		[ "$i" = 6 ] || script+=","
	done
	sim_ctl S POST /script "$script}" >/dev/null
	kill -STOP $(pg_pids)
	local accepted=0
	for i in 1 2 3 4 5 6; do
		api Y POST /v1/wake "$(wake_body "$(tok $((2300 + i)))" "async-$i" ".callback_url = \"http://127.0.0.1:$rport/r\"")"
		[ "$STATUS" = 202 ] && accepted=$((accepted + 1))
	done
	expect_eq "six async wakes accepted" "$accepted" 6
	for i in $(seq 1 100); do
		[ "$(sim_ctl S GET /requests | jq '[.[] | select(.status == 410)] | length')" -ge 6 ] && break
		sleep 0.05
	done
	sleep 0.3
	kill -TERM "$GW_PID_Y"
	# well past the grace period (1 s) and the teardown's own wait for
	# answers (2 s): the gateway is taking itself down while a result is
	# still being made; then the registry comes back and that result is
	# finished out of what the gateway holds
	sleep 4
	kill -CONT $(pg_pids)
	gw_exit_within Y 30
	expect_eq "exit status" "$GW_EXIT" 0
	check "no sanitizer report" no_sanitizer_report Y
}

# scrape_flood PORT N FILE: N probes (alternately /metrics and /readyz),
# 64 at a time, from 127.0.0.2; statuses into FILE.
scrape_flood() {
	local i cfg="$WORK/scrape.cfg"
	: >"$cfg"
	for i in $(seq 1 "$2"); do
		[ "$i" = 1 ] || echo next >>"$cfg"
		if [ $((i % 2)) = 0 ]; then
			printf 'url = "http://127.0.0.1:%s/metrics"\n' "$1" >>"$cfg"
		else
			printf 'url = "http://127.0.0.1:%s/readyz"\n' "$1" >>"$cfg"
		fi
		printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nmax-time = 30\n' >>"$cfg"
	done
	curl -sS --no-progress-meter --interface 127.0.0.2 --parallel --parallel-max 64 \
		--config "$cfg" >"$3" 2>/dev/null
}

# wakes_by_extension PORT N FILE: N wakes of extension 5001, 8 at a time.
wakes_by_extension() {
	local i cfg="$WORK/wakes.cfg"
	: >"$cfg"
	for i in $(seq 1 "$2"); do
		[ "$i" = 1 ] || echo next >>"$cfg"
		printf 'url = "http://127.0.0.1:%s/v1/wake"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "{\\"extension\\":\\"5001\\",\\"call\\":{\\"id\\":\\"flood-%d\\"}}"\noutput = "%s.%d.json"\nwrite-out = "%%{http_code}\\n"\nmax-time = 30\n' \
			"$1" "$KEY_WAKE" "$i" "$3" "$i" >>"$cfg"
	done
	curl -sS --no-progress-meter --parallel --parallel-max 8 --config "$cfg" >"$3" 2>/dev/null
}

# pg_mark WORD: a line in the server log to count between.
pg_mark() { psql "$PGURL" -Atc "SELECT '$1'" >/dev/null; }
# pg_statements_between A B: statements the server logged between two marks
# (the marks themselves and psql's own left out).
pg_statements_between() {
	awk -v a="'$1'" -v b="'$2'" 'index($0, a) { on = 1; next } index($0, b) { on = 0 }
		on && /LOG:  (statement|execute)/ { n++ } END { print n + 0 }' "$PGDIR/pg/server.log"
}

t_probes_never_take_wake_capacity() { # t_probes_never_take_wake_capacity BACKEND
	begin "64 clients scraping /metrics and /readyz from another address: wakes by extension never 503 ($1)"
	local filter='.'
	[ "$1" = postgresql ] && filter=".registry = {url: \"$PGURL\"}"
	filter+=" | .limits.wakes_per_second_per_key = 100000"
	write_config "$WORK/probe-$1.json" S "$filter"
	# the gateway's sessions log every statement they run
	[ "$1" = postgresql ] && psql "$PGURL" -qc "ALTER DATABASE pushgw SET log_statement = 'all'"
	start_gw P "$WORK/probe-$1.json" || return
	[ "$1" = postgresql ] && pg_mark probe-flood-start
	api P PUT /v1/extensions/5001/devices/phone \
		"{\"provider\":\"apns\",\"token\":\"$(tok 2401)\",\"app\":\"phone\"}" "$KEY_REG"
	check "registered" test "$STATUS" = 201 -o "$STATUS" = 200
	if [ "$1" = postgresql ]; then
		# what probes cost the database: the statements it ran during 3000
		# of them (cached figures: a few a second, however many probes)
		scrape_flood "$GW_PORT_P" 3000 "$WORK/scrapes-alone.out"
		sleep 0.2
		pg_mark probe-flood-end
		local n; n=$(pg_statements_between probe-flood-start probe-flood-end)
		expect_eq "3000 probes answered 200" "$(grep -c '^200$' "$WORK/scrapes-alone.out")" 3000
		check "3000 probes cost the database $n statements (at most 100)" test "$n" -le 100
		psql "$PGURL" -qc "ALTER DATABASE pushgw RESET log_statement"
	fi
	scrape_flood "$GW_PORT_P" 6000 "$WORK/scrapes-$1.out" &
	local flood=$!
	sleep 0.3
	wakes_by_extension "$GW_PORT_P" 300 "$WORK/wakes-$1.out"
	local flood_running=no
	kill -0 "$flood" 2>/dev/null && flood_running=yes
	wait "$flood"
	expect_eq "the scrapes were still running when the wakes ended" "$flood_running" yes
	expect_eq "300 wakes by extension: all 200" "$(grep -c '^200$' "$WORK/wakes-$1.out")" 300
	expect_eq "each one sent" "$(cat "$WORK"/wakes-$1.out.*.json | jq -r '.results[0].status' | grep -c '^sent$')" 300
	expect_eq "6000 probes answered 200" "$(grep -c '^200$' "$WORK/scrapes-$1.out")" 6000
	stop_gw P
	expect_eq "exit status" "$GW_EXIT" 0
}

t_readyz_follows_the_registry() {
	begin "/readyz reads the cached registry health: 503 while PostgreSQL is stopped, 200 once it is back"
	write_config "$WORK/ready.json" S ".registry = {url: \"$PGURL\"}"
	start_gw R "$WORK/ready.json" || return
	api R GET /readyz "" ""
	expect_eq "ready" "$STATUS" 200
	kill -STOP $(pg_pids)
	local i s=""
	for i in $(seq 1 50); do
		s=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$GW_PORT_R/readyz")
		[ "$s" = 503 ] && break
		sleep 0.1
	done
	expect_eq "not ready within 5 s of the database hanging" "$s" 503
	STATUS=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$GW_PORT_R/metrics")
	expect_eq "/metrics still answers" "$STATUS" 200
	kill -CONT $(pg_pids)
	for i in $(seq 1 50); do
		s=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$GW_PORT_R/readyz")
		[ "$s" = 200 ] && break
		sleep 0.1
	done
	expect_eq "ready again" "$s" 200
	stop_gw R
	expect_eq "exit status" "$GW_EXIT" 0
}

t_bodies_arriving_across_sigterm
t_lookup_hung_past_the_grace_period
t_lookup_then_pushes_inside_the_grace_period
t_async_results_made_from_a_hung_registry
t_probes_never_take_wake_capacity sqlite
t_probes_never_take_wake_capacity postgresql
t_readyz_follows_the_registry
t_database_stays_hung
t_reload_then_sigterm_while_an_old_ring_retries
summary
