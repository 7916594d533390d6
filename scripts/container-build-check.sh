#!/usr/bin/env bash
# The container build, without a container engine.
#   scripts/container-build-check.sh stage   the Dockerfile's build stage: install
#                                            the build packages, build, run --version
#   scripts/container-build-check.sh         check the Dockerfile from the repository:
#     copy what its build stage COPYs (files git tracks or would track) into an
#     empty folder, run "stage" there, then check the runtime stage: its
#     packages exist and provide every library the binary links, its files
#     exist, it runs as non-root with a working HEALTHCHECK.
# Prints "container-build-check: N passed, M failed" last; exits 1 on a failure.
set -u

stage() {
	scripts/deps.sh --quiet build || return 1
	make -j"$(nproc 2>/dev/null || echo 2)" build/pushgw || return 1
	build/pushgw --version
}

if [ "${1:-}" = stage ]; then
	stage
	exit
fi
[ $# -eq 0 ] || { echo "usage: $0 [stage]" >&2; exit 2; }

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
DOCKERFILE=$ROOT/Dockerfile
PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); }
bad() { FAILED=$((FAILED + 1)); echo "FAIL $*" >&2; }
check() { local what="$1"; shift; if "$@"; then ok; else bad "$what"; fi; }
finish() {
	echo "container-build-check: $PASSED passed, $FAILED failed"
	[ "$FAILED" = 0 ]
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pushgw-container.XXXXXX")
GW_PID=""
cleanup() {
	[ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

# Dockerfile instructions, continuation lines joined, one per line as
# "<stage index> <INSTRUCTION> <arguments>".
instructions() {
	awk '
		/^[[:space:]]*#/ { next }
		{ line = cont line $0 }
		/\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, "", line); cont = line " "; line = ""; next }
		{ cont = "" }
		line ~ /^[[:space:]]*$/ { line = ""; next }
		{
			sub(/^[[:space:]]+/, "", line)
			split(line, w, /[[:space:]]+/)
			op = toupper(w[1])
			if (op == "FROM") stage++
			print stage + 0, op, substr(line, length(w[1]) + 2)
			line = ""
		}' "$DOCKERFILE"
}
INSTR=$(instructions)
in_stage() { awk -v s="$1" -v op="$2" '$1 == s && $2 == op { $1 = ""; $2 = ""; sub(/^  /, ""); print }' <<<"$INSTR"; }

# ---- the Dockerfile's shape ----
check "Dockerfile: two stages (build, runtime)" test "$(in_stage 1 FROM | wc -l)$(in_stage 2 FROM | wc -l)" = 11
base=$(sed -n 's/^ARG DEBIAN_IMAGE=//p' "$DOCKERFILE")
check "Dockerfile: both stages on Debian bookworm ($base)" grep -q '^debian:bookworm' <<<"$base"
check "Dockerfile: the build stage runs this script's stage" \
	test "$(in_stage 1 RUN)" = "scripts/container-build-check.sh stage"
workdir=$(in_stage 1 WORKDIR | tail -n1)
check "Dockerfile: the build stage has a WORKDIR" test -n "$workdir"
user=$(in_stage 2 USER | tail -n1)
check "Dockerfile: runs as a non-root user ($user)" bash -c '[ -n "$1" ] && ! grep -qE "^(root|0)(:|$)" <<<"$1"' _ "$user"
for op in HEALTHCHECK EXPOSE STOPSIGNAL ENTRYPOINT; do
	check "Dockerfile: runtime stage has $op" test -n "$(in_stage 2 "$op")"
done

# ---- build stage on a clean copy ----
# copy_sources DEST SRC…: what docker would copy from this checkout.
copy_sources() {
	local dest="$1" src f; shift
	for src in "$@"; do
		src=${src%/}
		if [ -d "$ROOT/.git" ] || git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
			git -C "$ROOT" ls-files -co --exclude-standard -- "$src"
		else
			(cd "$ROOT" && find "$src" -type f)
		fi | while IFS= read -r f; do
			[ -f "$ROOT/$f" ] || continue   # deleted but still tracked
			local rel=$f
			if [ -d "$ROOT/$src" ]; then rel=${f#"$src"/}; else rel=$(basename "$f"); fi
			mkdir -p "$(dirname "$dest/$rel")"
			cp -p "$ROOT/$f" "$dest/$rel"
		done
	done
}
CTX=$TMP/ctx
mkdir -p "$CTX"
copied=1
while read -r line; do
	case "$line" in --*) continue ;; esac   # COPY --from/--chmod are runtime-stage matters
	read -ra args <<<"$line"
	n=${#args[@]}
	dest=${args[$((n - 1))]}
	case "$dest" in /*) ;; *) dest="$workdir/$dest" ;; esac
	copy_sources "$CTX$dest" "${args[@]:0:$((n - 1))}" || copied=0
done < <(in_stage 1 COPY)
check "build context: copied what the build stage COPYs" test "$copied" = 1 -a -f "$CTX$workdir/Makefile"

start=$(date +%s)
if (cd "$CTX$workdir" && env -u MAKEFLAGS -u MAKELEVEL scripts/container-build-check.sh stage) >"$TMP/stage.log" 2>&1; then
	ok
else
	bad "build stage failed on a clean copy; its last lines:"
	tail -n 30 "$TMP/stage.log" >&2
	finish
	exit 1
fi
BIN=$CTX$workdir/build/pushgw
version=$("$BIN" --version 2>&1)
check "the built binary runs: pushgw --version ($version, built in $(($(date +%s) - start)) s)" test -n "$version"

# ---- runtime stage ----
runtime_pkgs=$(in_stage 2 ARG | sed -n 's/^RUNTIME_PACKAGES="\(.*\)"$/\1/p')
check "Dockerfile: RUNTIME_PACKAGES is set" test -n "$runtime_pkgs"
check "Dockerfile: the runtime stage installs \${RUNTIME_PACKAGES}" grep -qF '${RUNTIME_PACKAGES}' <<<"$(in_stage 2 RUN)"
for p in $runtime_pkgs; do
	check "runtime package $p exists in Debian" bash -c 'apt-cache show --no-all-versions "$1" >/dev/null 2>&1' _ "$p"
	case "$p" in *-dev | build-essential | gcc* | make) bad "runtime package $p is a build tool" ;; esac
done

# package_of LIBRARY_PATH: the Debian package that ships it (usr-merge aware).
package_of() {
	local p="$1" alt
	dpkg -S "$p" 2>/dev/null && return
	alt=$(readlink -f "$p"); dpkg -S "$alt" 2>/dev/null && return
	case "$alt" in /usr/*) dpkg -S "${alt#/usr}" 2>/dev/null ;; *) dpkg -S "/usr$alt" 2>/dev/null ;; esac
}
while read -r soname; do
	path=$(ldd "$BIN" | awk -v s="$soname" '$1 == s { print $3 }')
	pkg=$(package_of "$path" | head -n1 | cut -d: -f1)
	if [ -z "$pkg" ]; then
		bad "cannot tell which package ships $soname ($path)"
	elif [ "$pkg" = libc6 ]; then
		ok # in every Debian image
	else
		check "RUNTIME_PACKAGES has $pkg (for $soname)" grep -qw -- "$pkg" <<<"$runtime_pkgs"
	fi
done < <(readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')

while read -r line; do
	case "$line" in --from=*) continue ;; esac
	read -ra args <<<"$line"
	for src in "${args[@]:0:$((${#args[@]} - 1))}"; do
		case "$src" in --*) continue ;; esac
		check "runtime COPY source $src is in the tree" test -e "$ROOT/$src"
	done
done < <(in_stage 2 COPY)

# ---- the image's entry point and HEALTHCHECK, run here ----
hc_src=$(in_stage 2 COPY | awk '/healthcheck/ { print $(NF - 1) }')
HC=$ROOT/$hc_src
check "HEALTHCHECK script is executable" test -x "$HC"
mkdir -p "$TMP/etc"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/etc/AuthKey_KEY1234567.p8" 2>/dev/null
chmod 600 "$TMP/etc/AuthKey_KEY1234567.p8"
cat >"$TMP/etc/pushgw.json" <<EOF
{
  "api_keys": [{"name": "pbx", "key": "$("$BIN" hash-key container-check-key)", "scopes": ["wake"]}],
  "apps": {"phone": {"apns": {"team_id": "TEAM123456", "key_id": "KEY1234567",
    "key_file": "AuthKey_KEY1234567.p8", "bundle_id": "com.example.phone", "url": "https://127.0.0.1:9"}}},
  "shutdown_grace_s": 2
}
EOF
# As the image runs it: config from PUSHGW_CONFIG, listen and registry from the environment.
PUSHGW_CONFIG=$TMP/etc/pushgw.json PUSHGW_LISTEN=127.0.0.1:0 PUSHGW_REGISTRY_PATH=$TMP/pushgw.db \
	"$BIN" 2>"$TMP/gw.log" &
GW_PID=$!
port=""
for _ in $(seq 1 100); do
	port=$(grep -m1 '"pushgw listening"' "$TMP/gw.log" 2>/dev/null | sed -n 's/.*"addr":"[^"]*:\([0-9]*\)".*/\1/p')
	[ -n "$port" ] && break
	kill -0 "$GW_PID" 2>/dev/null || break
	sleep 0.05
done
check "pushgw starts with the image's environment (config, listen, registry)" test -n "$port"
if [ -n "$port" ]; then
	check "HEALTHCHECK passes against the running gateway" env PUSHGW_LISTEN="0.0.0.0:$port" "$HC"
	kill -TERM "$GW_PID"
	wait "$GW_PID"; rc=$?
	GW_PID=""
	check "STOPSIGNAL SIGTERM stops it with exit 0 (got $rc)" test "$rc" = 0
	check "HEALTHCHECK fails once it is gone" bash -c '! env PUSHGW_LISTEN="0.0.0.0:$1" "$2"' _ "$port" "$HC"
else
	tail -n 5 "$TMP/gw.log" >&2
fi
finish
