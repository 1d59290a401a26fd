#!/usr/bin/env bash
# demo.sh — a local replica catalog and its index in one minute, with no
# outside service.
#
# Builds rlsd and rlsctl, starts a replica location index (site "rli", role
# rli) and a site's catalog (site "demo", role lrc, sending it a Bloom filter
# and deltas) in a temporary directory on free loopback ports, loads 100,000
# sunum mappings in bulk, defines and sets typed attributes, runs a few
# queries, sends the index an update and locates sunums through it (a new
# one arrives by delta), prints figures, and stops both daemons with SIGTERM,
# expecting exit status 0.
#
# Everything runs over mutual TLS: "rlsctl cert" makes a CA and certificates
# for both sites and for the operator (rlsctl, through RLS_CERT, RLS_KEY and
# RLS_CA), and the catalog's ACL gives a "guest" identity read access only,
# which the demo shows refused a write.
#
# Environment: N (mappings, default 100000), KEEP=1 keeps the temporary
# directory, NO_BUILD=1 uses the binaries already in bin/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${N:-100000}"
BASE=100000000 # first sunum

say() { printf '\n== %s\n' "$*"; }
die() { printf 'demo: FAILED: %s\n' "$*" >&2; exit 1; }
# run echoes a command, then runs it.
run() { printf '$ %s\n' "$*"; "$@"; }

if [ "${NO_BUILD:-}" != 1 ]; then
	say "build"
	make --no-print-directory build
fi
RLSD="$ROOT/bin/rlsd"
RLSCTL="$ROOT/bin/rlsctl"
[ -x "$RLSD" ] && [ -x "$RLSCTL" ] || die "bin/rlsd and bin/rlsctl missing (run make build)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/rls-demo.XXXXXX")"
CERTS="$WORK/certs"
PIDS=()
cleanup() {
	local rc=$?
	for pid in "${PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	if [ "$rc" -ne 0 ]; then
		for log in "$WORK"/*.log; do
			[ -f "$log" ] || continue
			echo "--- last lines of $log" >&2
			tail -n 30 "$log" >&2 || true
		done
	fi
	if [ "${KEEP:-}" = 1 ]; then
		echo "kept $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME ARGS...: runs rlsd --site NAME in $WORK/NAME on a free loopback
# port (port 0: rlsd logs addr=HOST:PORT), waits until it answers, and sets
# ADDR and PID.
start() {
	local name=$1
	shift
	mkdir -p "$WORK/$name"
	local tls=(--tls-cert "$CERTS/$name.pem" --tls-key "$CERTS/$name-key.pem" --tls-client-ca "$CERTS/ca.pem")
	echo "\$ $RLSD --site $name --data $WORK/$name --listen 127.0.0.1:0 ${tls[*]} $*"
	"$RLSD" --site "$name" --data "$WORK/$name" --listen 127.0.0.1:0 "${tls[@]}" "$@" >"$WORK/$name.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	ADDR=""
	for _ in $(seq 300); do # 30 s
		kill -0 "$PID" 2>/dev/null || die "rlsd $name exited during start-up"
		ADDR="$(grep -oE 'addr="?127\.0\.0\.1:[0-9]+' "$WORK/$name.log" | head -n1 | sed -E 's/^addr="?//')" || true
		[ -n "$ADDR" ] && break
		sleep 0.1
	done
	[ -n "$ADDR" ] || die "rlsd $name logged no addr=127.0.0.1:PORT within 30s"
	local ok=""
	for _ in $(seq 100); do # 10 s
		if "$RLSCTL" --server "$ADDR" admin ping >/dev/null 2>&1; then ok=1; break; fi
		sleep 0.1
	done
	[ -n "$ok" ] || die "rlsd $name at $ADDR did not answer admin ping within 10s"
}

# stop PID NAME: SIGTERM, a bounded wait, and exit status 0 expected.
stop() {
	kill -TERM "$1"
	for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$1" 2>/dev/null && { kill -KILL "$1"; die "rlsd $2 still running 30s after SIGTERM; killed"; }
	set +e
	wait "$1"
	local rc=$?
	set -e
	[ "$rc" -eq 0 ] || die "rlsd $2 exited with status $rc after SIGTERM, want 0"
	echo "rlsd $2 exited 0"
}

say "certificates: a local CA, the two sites, the operator and a guest (ECDSA P-256)"
run "$RLSCTL" cert ca --dir "$CERTS"
for who in rli demo operator guest; do
	run "$RLSCTL" cert issue "$who" --dir "$CERTS"
done
export RLS_CERT="$CERTS/operator.pem" RLS_KEY="$CERTS/operator-key.pem" RLS_CA="$CERTS/ca.pem"
# The catalog's ACL: first matching rule wins; the sites and the operator
# may do everything (a site sends soft state only in its own name, its
# certificate's CN), the guest may only read.
cat >"$WORK/demo.yaml" <<'YAML'
acl:
  - identity: "CN=guest,O=rls"
    permissions: [lrc_read]
  - identity: "CN=(operator|rli|demo),O=rls"
    permissions: [all]
YAML

say "start an index (site rli) and a catalog (site demo) that sends it soft state, over mutual TLS, in $WORK"
start rli --roles rli
RLI_ADDR=$ADDR
RLI_PID=$PID
start demo --roles lrc --config "$WORK/demo.yaml" --update-to "$RLI_ADDR" --update-mode bloom --update-deltas --update-delta-delay 100ms
RLSD_PID=$PID
ctl() { "$RLSCTL" --server "$ADDR" "$@"; }
run "$RLSCTL" --server "$ADDR" admin ping

say "generate $N sunum mappings"
# One "<sunum><TAB>/SUM<n>/D<sunum>" per line, sunums from $BASE.
awk -v n="$N" -v base="$BASE" 'BEGIN { for (i = 0; i < n; i++) { s = base + i; printf "%d\t/SUM%d/D%d\n", s, i % 64, s } }' \
	>"$WORK/mappings.tsv"
head -n 3 "$WORK/mappings.tsv"
echo "... ($(wc -l <"$WORK/mappings.tsv") lines)"

say "bulk load"
t0=$(date +%s.%N)
run "$RLSCTL" --server "$ADDR" lrc bulk create -f "$WORK/mappings.tsv"
t1=$(date +%s.%N)
LOAD_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
LOAD_RATE=$(awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.0f", n / (b - a) }')

say "attributes"
run "$RLSCTL" --server "$ADDR" lrc attr define size --object lfn --type int
run "$RLSCTL" --server "$ADDR" lrc attr define series --object lfn --type string
i=0
for s in $((BASE)) $((BASE + 1)) $((BASE + 2)) $((BASE + 100)) $((BASE + 4242)); do
	i=$((i + 1))
	run "$RLSCTL" --server "$ADDR" lrc attr set "$s" size $((i * 1048576)) --object lfn
	run "$RLSCTL" --server "$ADDR" lrc attr set "$s" series hmi.M_45s --object lfn
done

say "queries"
run "$RLSCTL" --server "$ADDR" lrc query lfn "$BASE" "$((BASE + N - 1))"
run "$RLSCTL" --server "$ADDR" lrc query wildcard '1000001*' --limit 5
run "$RLSCTL" --server "$ADDR" lrc attr search size '>' 2097152 --object lfn
run "$RLSCTL" --server "$ADDR" -o json lrc query lfn $((BASE + 4242))
set +e
"$RLSCTL" --server "$ADDR" lrc query lfn 999999999 2>&1
rc=$?
set -e
echo "(query of an unknown sunum: exit status $rc, expected 3)"
[ "$rc" -eq 3 ] || die "query of an unknown sunum exited $rc, want 3"

say "the index: send a Bloom filter of the catalog now, then locate through it"
run "$RLSCTL" --server "$ADDR" admin update
run "$RLSCTL" --server "$RLI_ADDR" rli sites
set +e
run "$RLSCTL" --server "$RLI_ADDR" locate "$((BASE + 4242))" 999999999
rc=$?
set -e
echo "(locate with an unknown sunum: exit status $rc, expected 3)"
[ "$rc" -eq 3 ] || die "locate of an unknown sunum exited $rc, want 3"
run "$RLSCTL" --server "$RLI_ADDR" locate "$((BASE + 4242))" --verify
NEW=$((BASE + N + 1))
run "$RLSCTL" --server "$ADDR" lrc create "$NEW" "/SUM7/D$NEW"
t0=$(date +%s.%N)
found=""
for _ in $(seq 100); do # 10 s
	# known by delta, not a Bloom false positive
	if "$RLSCTL" --server "$RLI_ADDR" -o json locate "$NEW" 2>/dev/null | grep -q '"known_by": "delta"'; then found=1; break; fi
	sleep 0.02
done
[ -n "$found" ] || die "the index did not learn of sunum $NEW within 10s"
DELTA_MS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
run "$RLSCTL" --server "$RLI_ADDR" locate "$NEW"

say "security: a guest cannot write, and no one gets in without a certificate from the CA"
set +e
run "$RLSCTL" --server "$ADDR" --cert "$CERTS/guest.pem" --key "$CERTS/guest-key.pem" lrc create guest-was-here /tmp/x
rc=$?
set -e
echo "(a write as guest: exit status $rc, expected 6, permission denied)"
[ "$rc" -eq 6 ] || die "a guest's write exited $rc, want 6"
run "$RLSCTL" --server "$ADDR" --cert "$CERTS/guest.pem" --key "$CERTS/guest-key.pem" lrc query lfn "$BASE"
set +e
RLS_CERT= RLS_KEY= run "$RLSCTL" --server "$ADDR" --timeout 3s admin ping
rc=$?
set -e
echo "(without a client certificate: exit status $rc, expected 5, the handshake is refused)"
[ "$rc" -eq 5 ] || die "a call without a client certificate exited $rc, want 5"

say "figures"
run "$RLSCTL" --server "$ADDR" admin stats
run "$RLSCTL" --server "$RLI_ADDR" admin stats
STATS_JSON="$(ctl -o json admin stats)"
MAPPINGS="$(printf '%s' "$STATS_JSON" | grep -oE '"mappings": *"?[0-9]+' | grep -oE '[0-9]+$' | head -n1)"
[ "${MAPPINGS:-}" = "$((N + 1))" ] || die "admin stats reports ${MAPPINGS:-?} mappings, want $((N + 1))"
echo "bulk load: $N mappings in ${LOAD_SECS}s = ${LOAD_RATE} mappings/s (durable)"
echo "catalog:   $MAPPINGS mappings; data directory $(du -sh "$WORK/demo" | cut -f1)"
echo "index:     a new sunum was locatable ${DELTA_MS} ms after its create (by delta)"

say "stop both daemons with SIGTERM"
stop "$RLSD_PID" demo
stop "$RLI_PID" rli
PIDS=()
say "demo OK"
