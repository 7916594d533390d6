#!/usr/bin/env bash
# Retries never amplify an outage: with APNs answering 503 to everything, the
# requests that reach it stay within the first attempts plus the retry budget
# (about a fifth more), and every wake still ends in time with a final status
# per device. A project-wide FCM quota answer (429 with Retry-After) pauses
# sends to that project: pushes during the pause never reach Google; they
# wait when the pause ends before their deadline, else fail at once. Real
# pushgw, real simulator, real curl.
source tests/integration/lib.sh

PROJECT=pushgw-test
make_certs
start_sim A --sa-pub "pushgw-test@$PROJECT.iam.gserviceaccount.com=$WORK/certs/sa_pub.pem" \
	--fcm-project "$PROJECT"
bash tests/sim/make-sa.sh "$WORK/certs" "https://127.0.0.1:$SIM_PORT_A/token" "$PROJECT" >/dev/null
write_config "$WORK/limits.json" A ".apps.phone.fcm = {service_account_file: \"$WORK/certs/service-account.json\", url: \"https://127.0.0.1:$SIM_PORT_A\"}
	| .limits.wakes_per_second_per_key = 0"
start_gw L "$WORK/limits.json" || exit 1

metric() { curl -s "http://127.0.0.1:$GW_PORT_L/metrics" | awk -v s="$1" 'index($0, s) == 1 {print $2}'; }
wait_jobs() { local j; for j in $(jobs -p); do case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j";; esac; done; }

t_503_storm_stays_within_the_retry_budget() {
	begin "APNs answers 503 to everything: upstream requests <= 1.2 x first attempts + the bucket + its refill; every wake ends in time"
	local wakes=50 per=3 timeout=3000 i j
	api L POST /v1/wake "$(wake_body "$(tok 9000)" warm)" # APNs allows more streams after one success
	expect_eq "warm-up sent" "$(jqb '.results[0].status')" sent
	sim_ctl A POST /reset >/dev/null
	sim_ctl A POST /script '{"*": [{"status": 503, "reason": "ServiceUnavailable"}]}' >/dev/null
	for i in $(seq 1 $wakes); do
		local devs="[]"
		for j in $(seq 1 $per); do
			devs=$(jq -c --arg t "$(tok $((10000 + i * 10 + j)))" '. + [{provider: "apns", token: $t, app: "phone"}]' <<<"$devs")
		done
		jq -cn --argjson d "$devs" --arg c "storm-$i" --argjson to $timeout \
			'{devices: $d, call: {id: $c}, timeout_ms: $to}' >"$WORK/storm$i.body"
	done
	local start; start=$(date +%s%N)
	for i in $(seq 1 $wakes); do
		curl -sS -o "$WORK/storm$i.json" -w '%{time_total}\n' -H "Authorization: Bearer $KEY_WAKE" \
			-H 'Content-Type: application/json' --data-binary "@$WORK/storm$i.body" \
			"http://127.0.0.1:$GW_PORT_L/v1/wake" >"$WORK/storm$i.time" &
	done
	wait_jobs
	local secs=$((($(date +%s%N) - start + 999999999) / 1000000000))
	local firsts=$((wakes * per)) got
	got=$(sim_ctl A GET /stats | jq .requests)
	# a fifth of the first attempts, the bucket (10) and its refill (2 a second)
	local bound=$((firsts * 12 / 10 + 10 + 2 * secs + 2))
	echo "  503 storm: $got upstream requests for $firsts first attempts in ${secs} s (bound $bound; up to 5 attempts each would be $((firsts * 5)))" >&2
	check "upstream requests ($got) <= 1.2 x $firsts + 10 + 2/s x ${secs} s" test "$got" -le "$bound"
	check "every push got its first attempt ($got >= $firsts)" test "$got" -ge "$firsts"
	local answered final slow
	answered=$(cat "$WORK"/storm*.json | jq -s '[.[] | select(.results | length == 3)] | length')
	expect_eq "every wake answered with a result per device" "$answered" $wakes
	final=$(cat "$WORK"/storm*.json | jq -r '.results[] | .status + "/" + .reason' | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')
	expect_eq "every device: failed with APNs' reason" "$final" "failed/ServiceUnavailable=$firsts "
	slow=$(cat "$WORK"/storm*.time | awk -v lim=$(((timeout + 1000) / 1000)) '$1 > lim' | wc -l)
	expect_eq "no wake took longer than timeout_ms + 1 s" "$slow" 0
	local exhausted retried
	exhausted=$(metric 'pushgw_upstream_retries_total{provider="apns",result="budget_exhausted"}')
	retried=$(metric 'pushgw_upstream_retries_total{provider="apns",result="retried"}')
	check "retries refused by the budget are counted (${exhausted:-none})" test "${exhausted:-0}" -gt 0
	expect_eq "retries counted as sent match the extra requests" "${retried:-0}" $((got - firsts))
	sim_ctl A POST /script '{"*": []}' >/dev/null
	rm -f "$WORK"/storm*
	sleep 1.5 # the budget refills with time: a lone failure may retry again
	local t; t=$(tok 9001)
	sim_ctl A POST /script "{\"$t\": [{\"status\":503,\"reason\":\"ServiceUnavailable\"},{\"status\":200}]}" >/dev/null
	api L POST /v1/wake "$(wake_body "$t" after-storm)"
	expect_eq "after the storm a lone 503 is retried again" "$(jqb '.results[0].status'),$(jqb '.results[0].attempts')" sent,2
}

FTOK="dGVzdDpxdW90YQ:APA91bH-quota_$(tok 1 | cut -c1-20)"
fcm_reqs() { sim_ctl A GET /requests | jq --arg t "$1" '[.[] | select(.kind == "fcm" and .token == $t)] | length'; }
fcm_wake() { # fcm_wake TOKEN CALL_ID TIMEOUT_MS [extra devices filter]
	jq -cn --arg t "$1" --arg c "$2" --argjson to "$3" '{devices: [{provider: "fcm", token: $t, app: "phone"}],
	  call: {id: $c}, timeout_ms: $to} | '"${4:-.}"
}

t_fcm_quota_pauses_the_project() {
	begin "FCM 429 QUOTA_EXCEEDED with Retry-After pauses the project: nothing reaches Google until it ends"
	api L POST /v1/wake "$(fcm_wake "$FTOK-w" q-warm 5000)"
	expect_eq "warm-up sent" "$(jqb '.results[0].status')" sent
	sim_ctl A POST /reset >/dev/null
	sim_ctl A POST /script "{\"$FTOK-q\": [{\"status\":429,\"fcm\":\"QUOTA_EXCEEDED\",\"retry_after\":\"4\"}]}" >/dev/null
	local start; start=$(date +%s%N)
	api L POST /v1/wake "$(fcm_wake "$FTOK-q" q-1 1000)"
	expect_eq "the push that met the 429: failed at once, one attempt" \
		"$(jqb '.results[0] | [.status, .reason, (.attempts | tostring)] | join(",")')" "failed,QUOTA_EXCEEDED,1"
	local i
	for i in 1 2 3 4 5; do
		curl -sS -o "$WORK/q$i.json" -H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' \
			--data-binary "$(fcm_wake "$FTOK-p$i" "q-p$i" 1000)" "http://127.0.0.1:$GW_PORT_L/v1/wake" &
	done
	wait_jobs
	local took=$((($(date +%s%N) - start) / 1000000))
	expect_eq "five pushes during the pause: failed QUOTA_EXCEEDED" \
		"$(cat "$WORK"/q[1-5].json | jq -r '.results[0] | .status + "/" + .reason' | sort -u)" failed/QUOTA_EXCEEDED
	expect_eq "none of them was sent" "$(cat "$WORK"/q[1-5].json | jq -r '.results[0].attempts' | sort -u)" 0
	check "the hint says why ($(jq -r '.results[0].hint' "$WORK/q1.json"))" \
		grep -q "paused.*Retry-After.*past this push's deadline" <<<"$(jq -r '.results[0].hint' "$WORK/q1.json")"
	check "they finished at once, not at their deadline (all in ${took} ms)" test "$took" -lt 1000
	expect_eq "Google saw only the first push" \
		"$(for i in 1 2 3 4 5; do fcm_reqs "$FTOK-p$i"; done | tr '\n' ,)$(fcm_reqs "$FTOK-q")" "0,0,0,0,0,1"
	api L POST /v1/wake "$(fcm_wake "$FTOK-a" q-apns 1000 ".devices += [{provider: \"apns\", token: \"$(tok 9100)\", app: \"phone\"}]")"
	expect_eq "APNs is not paused by an FCM quota" "$(jqb '[.results[].status] | join(",")')" failed,sent
	# a push whose deadline lies past the pause waits for it, then goes
	api L POST /v1/wake "$(fcm_wake "$FTOK-late" q-late 8000)"
	took=$((($(date +%s%N) - start) / 1000000))
	expect_eq "a push that can wait: sent after the pause, at its first attempt" \
		"$(jqb '.results[0] | [.status, (.attempts // 1 | tostring)] | join(",")')" "sent,1"
	check "it went after the 4 s pause (${took} ms after the 429)" test "$took" -ge 3900
	expect_eq "reached Google once" "$(fcm_reqs "$FTOK-late")" 1
	expect_eq "the pause is logged once" "$(grep -c '"fcm: project over its quota' "$WORK/gw-L.log")" 1
	rm -f "$WORK"/q[1-5].json
}

t_503_storm_stays_within_the_retry_budget
t_fcm_quota_pauses_the_project
stop_gw L
summary
