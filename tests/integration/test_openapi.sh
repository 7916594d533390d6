#!/usr/bin/env bash
# docs/openapi.yaml against the real gateway: the document is valid OpenAPI
# 3.0, every operation in it is exercised, and every answer (path, method,
# status, content type, required headers, JSON body) is one it documents.
source tests/integration/lib.sh

SPEC_FILE=docs/openapi.yaml
OBSERVED="$WORK/observed.jsonl"
: >"$OBSERVED"

# A Python with PyYAML and jsonschema (Debian: python3-yaml, python3-jsonschema).
PY=""
for p in python3 /usr/bin/python3; do
	if "$p" -c 'import yaml, jsonschema' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "test_openapi: needs python3 with yaml and jsonschema (scripts/deps.sh)" >&2; exit 1; }

cat >"$WORK/openapi_check.py" <<'PYEOF'
"""Checks an OpenAPI 3.0 document, and HTTP exchanges against it.
  lint SPEC                  structural checks an OpenAPI 3.0 reader relies on
  answers SPEC OBSERVED      every exchange is documented; every operation seen
  metrics SPEC METRICS_FILE  every route/status pair the gateway counted is documented
Prints one line per problem; exits 1 when there is any."""
import json
import os
import re
import sys

import yaml
from jsonschema import Draft4Validator

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
NOT_IN_3_0 = {"const", "examples", "$schema", "prefixItems", "if", "then", "else",
              "dependentRequired", "dependentSchemas", "unevaluatedProperties", "$defs"}
problems = []


def problem(msg):
    problems.append(msg)


def pointer(doc, ref):
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def deref(doc, node):
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        node = pointer(doc, node["$ref"])
        seen += 1
        if seen > 20:
            raise ValueError("$ref loop")
    return node


def walk(node, where, visit):
    visit(node, where)
    if isinstance(node, dict):
        for k, v in node.items():
            walk(v, where + "/" + str(k), visit)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, where + "/" + str(i), visit)


def check_refs(doc):
    def visit(node, where):
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if not ref.startswith("#/"):
                problem(f"{where}: only local $refs are used here, got {ref}")
                return
            try:
                pointer(doc, ref)
            except (KeyError, IndexError, TypeError):
                problem(f"{where}: $ref {ref} does not resolve")
    walk(doc, "#", visit)


def check_schema(schema, where):
    def visit(node, w):
        if not isinstance(node, dict) or "$ref" in node:
            return
        for k in NOT_IN_3_0 & set(node):
            if not w.endswith("/properties"):
                problem(f"{w}: '{k}' is not an OpenAPI 3.0 schema keyword")
        if "type" in node and not isinstance(node["type"], str) and not w.endswith("/properties"):
            problem(f"{w}: OpenAPI 3.0 'type' is one string")
    walk(schema, where, visit)
    try:
        Draft4Validator.check_schema(schema)
    except Exception as e:  # the schema itself is malformed
        problem(f"{where}: not a valid schema: {str(e).splitlines()[0]}")


def path_params(doc, item, op):
    names = {}
    for p in list(item.get("parameters", [])) + list(op.get("parameters", [])):
        p = deref(doc, p)
        if p.get("in") == "path":
            names[p["name"]] = p
    return names


def lint(doc):
    if not re.fullmatch(r"3\.0\.\d+", str(doc.get("openapi", ""))):
        problem("openapi: expected 3.0.x")
    info = doc.get("info") or {}
    for k in ("title", "version"):
        if not isinstance(info.get(k), str):
            problem(f"info.{k}: required string")
    unknown_info = set(info) - {"title", "description", "termsOfService", "contact", "license", "version"}
    for k in unknown_info:
        if not k.startswith("x-"):
            problem(f"info.{k}: not an OpenAPI 3.0 field")
    check_refs(doc)
    schemes = (doc.get("components") or {}).get("securitySchemes") or {}
    op_ids = set()
    paths = doc.get("paths") or {}
    if not paths:
        problem("paths: empty")
    for tmpl, item in paths.items():
        if not tmpl.startswith("/"):
            problem(f"paths: '{tmpl}' must start with /")
        in_tmpl = set(re.findall(r"{([^}]+)}", tmpl))
        ops = {m: o for m, o in item.items() if m in METHODS}
        if not ops:
            problem(f"{tmpl}: no operations")
        for m, op in ops.items():
            where = f"{m.upper()} {tmpl}"
            oid = op.get("operationId")
            if oid in op_ids:
                problem(f"{where}: operationId {oid} is not unique")
            op_ids.add(oid)
            declared = path_params(doc, item, op)
            for n in in_tmpl - set(declared):
                problem(f"{where}: path parameter {{{n}}} is not declared")
            for n, p in declared.items():
                if n not in in_tmpl:
                    problem(f"{where}: parameter {n} is not in the path")
                if p.get("required") is not True:
                    problem(f"{where}: path parameter {n} must be required: true")
            for sec in op.get("security", doc.get("security", [])):
                for name in sec:
                    if name not in schemes:
                        problem(f"{where}: security scheme {name} is not defined")
            responses = op.get("responses") or {}
            if not responses:
                problem(f"{where}: no responses")
            for code, resp in responses.items():
                if not re.fullmatch(r"[1-5](\d\d|XX)|default", str(code)):
                    problem(f"{where}: response key '{code}' is not a status")
                if not isinstance(deref(doc, resp).get("description"), str):
                    problem(f"{where} {code}: response needs a description")
    for name, schema in ((doc.get("components") or {}).get("schemas") or {}).items():
        check_schema(schema, f"#/components/schemas/{name}")


def template_regex(tmpl):
    parts = re.split(r"({[^}]+})", tmpl)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


def find_template(doc, path):
    path = path.split("?", 1)[0]
    literal = [t for t in doc["paths"] if "{" not in t]
    for t in literal + [t for t in doc["paths"] if "{" in t]:
        if template_regex(t).match(path):
            return t
    return None


def last_header_block(raw):
    blocks = [b for b in re.split(r"\r?\n\r?\n", raw.strip()) if b.startswith("HTTP/")]
    headers = {}
    for line in (blocks[-1] if blocks else "").splitlines()[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return headers


def validate(doc, schema, value, where):
    # Draft 4 ignores a $ref's siblings, so the document itself can be the
    # root that "#/components/..." references resolve against.
    root = dict(doc, **{"$ref": "#/x-check", "x-check": schema})
    v = Draft4Validator(root)
    for e in sorted(v.iter_errors(value), key=lambda e: list(e.path)):
        loc = "/".join(str(p) for p in e.path) or "(body)"
        problem(f"{where}: body {loc}: {e.message[:200]}")


def check_answer(doc, ex, seen):
    method, path, status = ex["method"].upper(), ex["path"], ex["status"]
    headers = last_header_block(ex.get("headers", ""))
    where = f"{method} {path} -> {status}"
    error_schema = {"$ref": "#/components/schemas/Error"}
    tmpl = find_template(doc, path)
    if tmpl is None:
        if status != 404:
            problem(f"{where}: undocumented path answered {status} (expected 404 not_found)")
        else:
            validate(doc, error_schema, json.loads(ex["body"] or "null"), where)
        return
    item = doc["paths"][tmpl]
    op_method = "get" if method == "HEAD" and "get" in item else method.lower()
    if op_method not in item:
        documented = sorted(m.upper() for m in item if m in METHODS)
        allow = sorted(a.strip() for a in headers.get("allow", "").split(",") if a.strip())
        if status != 405:
            problem(f"{where}: {method} is not documented for {tmpl}, expected 405")
        elif allow != documented:
            problem(f"{where}: Allow is {allow}, the document has {documented} for {tmpl}")
        seen.add((tmpl, "*", 405))
        return
    op = item[op_method]
    seen.add((tmpl, op_method, status))
    responses = op["responses"]
    key = str(status) if str(status) in responses else f"{str(status)[0]}XX"
    if key not in responses:
        key = "default" if "default" in responses else None
    if key is None:
        problem(f"{where}: status {status} is not documented for {op_method.upper()} {tmpl}")
        return
    resp = deref(doc, responses[key])
    for name, h in (resp.get("headers") or {}).items():
        if deref(doc, h).get("required") and name.lower() not in headers:
            problem(f"{where}: documented header {name} is missing")
    content = resp.get("content")
    body = ex.get("body", "")
    if method == "HEAD":
        return
    if not content:
        if body:
            problem(f"{where}: the document has no body for {status}, got {len(body)} bytes")
        return
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in content:
        problem(f"{where}: Content-Type {ctype or '(none)'} is not one of {sorted(content)}")
        return
    schema = content[ctype].get("schema")
    if ctype == "application/json" and schema is not None:
        try:
            value = json.loads(body)
        except ValueError:
            problem(f"{where}: body is not JSON: {body[:80]!r}")
            return
        validate(doc, schema, value, where)


def answers(doc, observed_file):
    seen = set()
    n = 0
    with open(observed_file) as f:
        for line in f:
            if line.strip():
                check_answer(doc, json.loads(line), seen)
                n += 1
    if n == 0:
        problem("no exchanges were recorded")
    for tmpl, item in doc["paths"].items():
        for m in item:
            if m in METHODS and not any(t == tmpl and om == m for t, om, _ in seen):
                problem(f"{m.upper()} {tmpl}: documented but never exercised")
    untested = []
    for tmpl, item in doc["paths"].items():
        for m, op in item.items():
            if m in METHODS:
                for code in op["responses"]:
                    if code.isdigit() and (tmpl, m, int(code)) not in seen:
                        untested.append(f"{m.upper()} {tmpl} {code}")
    print(f"{n} exchanges checked; {len(untested)} documented statuses not exercised")
    if os.environ.get("VERBOSE"):
        print("not exercised: " + ", ".join(untested))


def metrics(doc, metrics_file):
    pat = re.compile(r'^pushgw_http_requests_total\{(.*)\}\s+\S+$')
    pairs = 0
    with open(metrics_file) as f:
        for line in f:
            m = pat.match(line.strip())
            if not m:
                continue
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
            route, status = labels.get("route"), labels.get("status", "")
            pairs += 1
            if route == "other":
                if status != "404":
                    problem(f"metrics: unknown routes answered {status}, the document says 404")
                continue
            item = doc["paths"].get(route)
            if item is None:
                problem(f"metrics: route {route} is not a path of the document")
                continue
            codes = {c for m, op in item.items() if m in METHODS for c in op["responses"]}
            if status not in codes and f"{status[:1]}XX" not in codes:
                problem(f"metrics: {route} answered {status}, which no operation of it documents")
    if pairs == 0:
        problem("metrics: no pushgw_http_requests_total series")


def main():
    mode, spec = sys.argv[1], sys.argv[2]
    with open(spec) as f:
        doc = yaml.safe_load(f)
    if mode == "lint":
        lint(doc)
    elif mode == "answers":
        answers(doc, sys.argv[3])
    elif mode == "metrics":
        metrics(doc, sys.argv[3])
    for p in problems:
        print("problem:", p)
    sys.exit(1 if problems else 0)


main()
PYEOF

spec_tool() { "$PY" "$WORK/openapi_check.py" "$@"; }

# record METHOD PATH: append the last exchange (STATUS, HEADERS, body file).
record() {
	jq -cn --arg m "$1" --arg p "$2" --arg s "$STATUS" --arg h "$HEADERS" --rawfile b "$WORK/body" \
		'{method: $m, path: $p, status: ($s | tonumber), headers: $h, body: $b}' >>"$OBSERVED"
}
# call NAME METHOD PATH [BODY] [KEY]: lib.sh's api, recorded.
call() { api "$@"; record "$2" "$3"; }
# call_ctype NAME METHOD PATH CONTENT_TYPE BODY: a body of another media type.
call_ctype() {
	local port="GW_PORT_$1"
	STATUS=$(curl -sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -X "$2" \
		-H "Authorization: Bearer $KEY_WAKE" -H "Content-Type: $4" --data-binary "$5" \
		"http://127.0.0.1:${!port}$3")
	BODY=$(cat "$WORK/body"); HEADERS=$(cat "$WORK/headers")
	record "$2" "$3"
}

start_sim A
write_config "$WORK/gw.json" A
start_gw G "$WORK/gw.json" || exit 1

contact_of() { # contact_of TOKEN
	echo "<sip:1001@203.0.113.5:5060;pn-provider=apns;pn-param=TEAM123456.com.example.phone.voip;pn-prid=$1>"
}

t_document_is_valid_openapi_3_0() {
	begin "docs/openapi.yaml is a valid OpenAPI 3.0 document"
	local out; out=$(spec_tool lint "$SPEC_FILE" 2>&1)
	check "lint: ${out:-clean}" test -z "$out"
}

t_registry_answers() {
	begin "registry calls answer as documented"
	local d1 d2; d1=$(tok 7001); d2=$(tok 7002)
	call G PUT /v1/extensions/3001/devices/urn%3Auuid%3Aa1 "$(jq -cn --arg c "$(contact_of "$d1")" '{contact: $c}')"
	expect_eq "PUT new" "$STATUS" 201
	call G PUT /v1/extensions/3001/devices/urn%3Auuid%3Aa1 "$(jq -cn --arg c "$(contact_of "$d1")" '{contact: $c}')"
	expect_eq "PUT again" "$STATUS" 200
	call G PUT /v1/extensions/3001/devices/b2 "$(jq -cn --arg t "$d2" \
		'{"pn-provider": "apns.dev", "pn-param": "TEAM123456.com.example.phone.remote&voip", "pn-prid": ($t + ":voip&" + $t[0:62] + "ff:remote")}')"
	expect_eq "PUT RFC 8599 fields" "$STATUS" 201
	call G PUT /v1/extensions/3001/devices/c3 "$(jq -cn --arg t "$(tok 7003)" '{provider: "apns", token: $t, app: "phone", environment: "sandbox"}')"
	expect_eq "PUT token form" "$STATUS" 201
	call G GET /v1/extensions/3001/devices
	expect_eq "GET list" "$STATUS" 200
	expect_eq "three devices listed" "$(jqb '.devices | length')" 3
	call G GET /v1/extensions/3001/devices "" "$KEY_OTHER"
	expect_eq "GET list for a key of another app" "$STATUS" 200
	expect_eq "it sees none of them" "$(jqb '.devices | length')" 0
	call G GET /v1/extensions/3001/devices/c3
	expect_eq "GET one device" "$STATUS" 200
	call G GET /v1/extensions/3001/devices/c3 "" "$KEY_OTHER"
	expect_eq "GET one device for a key of another app" "$STATUS" 404
	call G GET /v1/extensions/3001/devices/c3 "" "$KEY_WAKEONLY"
	expect_eq "GET one device without register scope" "$STATUS" 403
	call G PUT '/v1/extensions/bad%20ext/devices/x' '{"provider": "apns", "token": "00"}'
	expect_eq "PUT bad path id" "$STATUS" 400
	call G PUT /v1/extensions/3001/devices/d4 '{"provider": "apns", "token": '
	expect_eq "PUT malformed JSON" "$STATUS" 400
	call G PUT /v1/extensions/3001/devices/d4 '{"provider": "apns", "token": "00"}' ""
	expect_eq "PUT without key" "$STATUS" 401
	call G PUT /v1/extensions/3001/devices/d4 '{"provider": "apns", "token": "00"}' "$KEY_WAKEONLY"
	expect_eq "PUT without register scope" "$STATUS" 403
	call_ctype G PUT /v1/extensions/3001/devices/d4 text/plain '{"provider": "apns"}'
	expect_eq "PUT text/plain" "$STATUS" 415
	call G PUT /v1/extensions/3001/devices/d4 "$(head -c 70000 /dev/zero | tr '\0' ' ')"
	expect_eq "PUT oversized" "$STATUS" 413
	call G PUT /v1/extensions/3001/devices
	expect_eq "PUT on the list" "$STATUS" 405
	call G POST /v1/extensions/3001
	expect_eq "POST on an extension" "$STATUS" 405
	call G DELETE /v1/extensions/3001/devices/b2 "" "$KEY_OTHER"
	expect_eq "DELETE another app's device" "$STATUS" 403
	call G DELETE /v1/extensions/3001/devices/b2
	expect_eq "DELETE device" "$STATUS" 204
	call G DELETE /v1/extensions/3001/devices/b2
	expect_eq "DELETE it again" "$STATUS" 404
	call G DELETE /v1/extensions/3001
	expect_eq "DELETE extension" "$STATUS" 204
	call G DELETE /v1/extensions/3001
	expect_eq "DELETE it again" "$STATUS" 404
}

t_wake_and_cancel_answers() {
	begin "wake and cancel answer as documented, per-device outcomes included"
	local ok bad cfg topic; ok=$(tok 7101); bad=$(tok 7102); cfg=$(tok 7103); topic=$(tok 7104)
	call G PUT /v1/extensions/3101/devices/phone1 "$(jq -cn --arg c "$(contact_of "$ok")" '{contact: $c}')"
	sim_ctl A POST /script "{\"$bad\": [{\"status\": 410, \"reason\": \"Unregistered\"}],
		\"$cfg\": [{\"status\": 400, \"reason\": \"BadTopic\"}],
		\"$topic\": [{\"status\": 400, \"reason\": \"DeviceTokenNotForTopic\"}]}" >/dev/null
	local body; body=$(jq -cn --arg b "$bad" --arg c "$cfg" --arg t "$topic" '{
	  extension: "3101",
	  devices: [{provider: "apns", token: $b, app: "phone", environment: "production"},
	            {provider: "apns", token: $c, app: "phone", environment: "production"},
	            {provider: "apns", token: $t, app: "phone", environment: "production"}],
	  call: {id: "oa-1@pbx", from: "+15551234567", from_name: "Alice", to: "3101", video: true, data: {k: "v"}},
	  ttl: 20, timeout_ms: 3000}')
	call G POST /v1/wake "$body"
	expect_eq "wake" "$STATUS" 200
	expect_eq "per-device statuses" "$(jqb '[.results[].status] | sort | join(",")')" "failed,invalid_token,invalid_token,sent"
	expect_eq "a configuration mistake: kept, with a hint" "$(jqb '[.results[] | select(.hint) | .removed] | join(",")')" false
	call G POST /v1/cancel "$(jq -cn '{extension: "3101", call: {id: "oa-1@pbx"}, reason: "answered_elsewhere"}')"
	expect_eq "cancel" "$STATUS" 200
	expect_eq "cancel to a VoIP-only device: skipped" "$(jqb '[.results[] | .status + "/" + .reason] | join(",")')" skipped/voip_only
	call G POST /v1/wake "$(wake_body "$ok" oa-3@pbx ".call.data = {pad: \"$(head -c 6144 /dev/zero | tr '\0' x)\"}")"
	expect_eq "a payload over Apple's limit" "$STATUS" 400
	call G POST /v1/wake "$(wake_body "$ok" oa-2@pbx '.callback_url = "http://127.0.0.1:9/results" | .ttl = 1')"
	expect_eq "wake with callback_url" "$STATUS" 202
	call G POST /v1/wake '{"call": '
	expect_eq "malformed JSON" "$STATUS" 400
	call G POST /v1/wake "$(wake_body "$ok" c '.call.id = 5')"
	expect_eq "wrong type" "$STATUS" 400
	call G POST /v1/cancel "$(wake_body "$ok" c '.reason = "bored"')"
	expect_eq "bad cancel reason" "$STATUS" 400
	call G POST /v1/wake "$(wake_body "$ok")" "not-a-key"
	expect_eq "unknown key" "$STATUS" 401
	call G POST /v1/wake "$(wake_body "$ok")" "$KEY_REG"
	expect_eq "key without wake scope" "$STATUS" 403
	call G POST /v1/wake '{"extension": "nobody-here", "call": {"id": "x"}}'
	expect_eq "no devices" "$STATUS" 404
	call G POST /v1/cancel '{"devices": [], "call": {"id": "x"}}'
	expect_eq "cancel with no devices" "$STATUS" 404
	call G GET /v1/wake
	expect_eq "GET on wake" "$STATUS" 405
	call G DELETE /v1/cancel
	expect_eq "DELETE on cancel" "$STATUS" 405
	call G POST /v1/wake "$(head -c 70000 /dev/zero | tr '\0' ' ')"
	expect_eq "oversized" "$STATUS" 413
	call_ctype G POST /v1/wake text/plain "$(wake_body "$ok")"
	expect_eq "text/plain" "$STATUS" 415
	call G GET /v1/nothing
	expect_eq "unknown route" "$STATUS" 404
}

t_operations_answers() {
	begin "probes and metrics answer as documented"
	call G GET /healthz "" ""
	expect_eq "healthz" "$STATUS" 200
	STATUS=$(curl -sS --head -o /dev/null -D "$WORK/headers" -w '%{http_code}' "http://127.0.0.1:$GW_PORT_G/healthz")
	HEADERS=$(cat "$WORK/headers"); : >"$WORK/body"; record HEAD /healthz
	expect_eq "HEAD healthz" "$STATUS" 200
	call G GET /readyz "" ""
	expect_eq "readyz" "$STATUS" 200
	call G POST /readyz "" ""
	expect_eq "POST readyz" "$STATUS" 405
	call G GET /metrics "" ""
	expect_eq "metrics" "$STATUS" 200
	cp "$WORK/body" "$WORK/metrics-G.txt"
}

t_rate_limit_and_draining_answers() {
	begin "429 with Retry-After, and 503 while draining, as documented"
	write_config "$WORK/drain.json" A '.limits.wakes_per_second_per_key = 1'
	start_gw D "$WORK/drain.json" || { bad "gateway D did not start"; return; }
	local i seen429=0
	for i in 1 2 3; do
		call D POST /v1/wake "$(wake_body "$(tok $((7200 + i)))" "rl-$i")"
		[ "$STATUS" = 429 ] && seen429=1
	done
	expect_eq "a burst over the limit gets 429" "$seen429" 1
	sleep 1.2
	sim_ctl A POST '/delay?ms=1500' >/dev/null
	curl -sS -o /dev/null -H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' \
		--data-binary "$(wake_body "$(tok 7210)" slow)" "http://127.0.0.1:$GW_PORT_D/v1/wake" &
	local slow=$!
	sleep 0.4
	kill -TERM "$GW_PID_D"
	sleep 0.2
	call D GET /readyz "" ""
	expect_eq "readyz while draining" "$STATUS" 503
	call D POST /v1/wake "$(wake_body "$(tok 7211)")"
	expect_eq "wake while draining" "$STATUS" 503
	expect_eq "its code" "$(jqb .error.code)" shutting_down
	wait "$slow"
	gw_term_wait "$GW_PID_D"; expect_eq "drained gateway exits 0" "$GW_EXIT" 0
	sim_ctl A POST '/delay?ms=0' >/dev/null
}

t_every_answer_is_documented() {
	begin "every answer above matches docs/openapi.yaml, and every operation was exercised"
	local out; out=$(spec_tool answers "$SPEC_FILE" "$OBSERVED" 2>&1)
	echo "$out" | grep -v '^problem:' | sed 's/^/  /'
	check "answers: $(grep '^problem:' <<<"$out" | head -20)" bash -c "! grep -q '^problem:' <<<\"\$1\"" _ "$out"
}

t_counted_routes_are_documented() {
	begin "every route/status pair the gateway counted in /metrics is documented"
	local out; out=$(spec_tool metrics "$SPEC_FILE" "$WORK/metrics-G.txt" 2>&1)
	check "metrics routes: ${out:-clean}" test -z "$out"
}

t_document_is_valid_openapi_3_0
t_registry_answers
t_wake_and_cancel_answers
t_operations_answers
t_rate_limit_and_draining_answers
t_every_answer_is_documented
t_counted_routes_are_documented
summary
