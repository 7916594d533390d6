#!/usr/bin/env bash
# A throw-away PostgreSQL server for the tests: initdb + pg_ctl in a folder
# the caller owns, listening only on a Unix socket in that folder (no TCP
# port, no system service). Installs Debian's postgresql when it is missing.
#   scripts/pg-test-cluster.sh start DIR    create on first use, start, print the URL
#   scripts/pg-test-cluster.sh stop DIR     stop (the data stays: start resumes it)
#   scripts/pg-test-cluster.sh destroy DIR  stop and delete DIR
#   scripts/pg-test-cluster.sh url DIR      print the URL
#   scripts/pg-test-cluster.sh createdb DIR NAME  a new empty database; print its URL
# DIR may be new or empty (e.g. from mktemp -d). Run as root, the server runs
# as the "postgres" user (initdb refuses root), so DIR's parent must let
# that user through (/tmp does; a private mktemp folder does not).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
port=5432
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,12p' "$0" >&2; exit 2; }
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac

pg_bin() {
	ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1
}

# Commands run as the server's owner.
as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

url() { # url [DATABASE]
	echo "postgresql:///${1:-pushgw}?host=$dir&port=$port&user=pushgw"
}

ensure_installed() {
	[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] && return 0
	"$(dirname "$0")/deps.sh" --quiet test >&2
	[ -n "$(pg_bin)" ] || { echo "pg-test-cluster: PostgreSQL is not installed" >&2; exit 1; }
}

create() {
	local bin="$1"
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	chmod 700 "$dir"
	as_owner test -w "$dir" ||
		{ echo "pg-test-cluster: the server's user cannot reach $dir" >&2; exit 1; }
	as_owner "$bin/initdb" -D "$dir/data" -U pushgw --auth=trust -E UTF8 --no-locale \
		--no-sync >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; exit 1; }
	# Socket only, in the folder; small, because tests open few sessions.
	as_owner tee -a "$dir/data/postgresql.conf" >/dev/null <<-EOF
		listen_addresses = ''
		unix_socket_directories = '$dir'
		port = $port
		max_connections = 60
		deadlock_timeout = 100ms
		shared_buffers = 32MB
	EOF
}

start() {
	local bin
	ensure_installed
	bin=$(pg_bin)
	local fresh=0
	[ -f "$dir/data/PG_VERSION" ] || { create "$bin"; fresh=1; }
	if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null ||
			{ tail -n 20 "$dir/server.log" >&2; exit 1; }
	fi
	if [ $fresh = 1 ]; then
		as_owner "$bin/createdb" -h "$dir" -p "$port" -U pushgw pushgw
	fi
	url
}

stop() {
	local bin; bin=$(pg_bin)
	[ -n "$bin" ] && [ -f "$dir/data/PG_VERSION" ] || return 0
	if as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
	fi
}

createdb() { # createdb NAME
	local bin; bin=$(pg_bin)
	[[ "$1" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "pg-test-cluster: bad database name '$1'" >&2; exit 2; }
	as_owner "$bin/createdb" -h "$dir" -p "$port" -U pushgw "$1"
	url "$1"
}

case "$cmd" in
start) start ;;
createdb) createdb "${3:?database name}" ;;
stop) stop ;;
destroy) stop; rm -rf "$dir" ;;
url) url ;;
*) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
