#!/bin/bash
# Container HEALTHCHECK: GET /healthz on the port of $PUSHGW_LISTEN using bash
# alone, so the runtime image needs no HTTP client. Exit 0 only on a 200.
set -u
listen=${PUSHGW_LISTEN:-127.0.0.1:8080}
port=${listen##*:}
{ exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
read -r -t 3 _ status _ <&3 || exit 1
[ "$status" = 200 ]
