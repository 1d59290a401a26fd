#!/usr/bin/env bash
# demo.sh — a local replica catalog in one minute, with no outside service.
#
# Builds rlsd and rlsctl, starts rlsd (site "demo", role lrc) in a temporary
# directory on a free loopback port, loads 100,000 sunum mappings in bulk,
# defines and sets typed attributes, runs a few queries, prints figures, and
# stops the daemon with SIGTERM, expecting exit status 0.
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
RLSD_PID=""
cleanup() {
	local rc=$?
	if [ -n "$RLSD_PID" ] && kill -0 "$RLSD_PID" 2>/dev/null; then
		kill -TERM "$RLSD_PID" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$RLSD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$RLSD_PID" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] && [ -f "$WORK/rlsd.log" ]; then
		echo "--- last lines of rlsd.log" >&2
		tail -n 30 "$WORK/rlsd.log" >&2 || true
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

say "start rlsd (site demo) in $WORK"
mkdir -p "$WORK/data"
# Port 0: the kernel picks a free loopback port; rlsd logs addr=HOST:PORT.
echo "\$ $RLSD --site demo --data $WORK/data --listen 127.0.0.1:0 --roles lrc"
"$RLSD" --site demo --data "$WORK/data" --listen 127.0.0.1:0 --roles lrc >"$WORK/rlsd.log" 2>&1 &
RLSD_PID=$!

ADDR=""
for _ in $(seq 300); do # 30 s
	kill -0 "$RLSD_PID" 2>/dev/null || die "rlsd exited during start-up"
	ADDR="$(grep -oE 'addr="?127\.0\.0\.1:[0-9]+' "$WORK/rlsd.log" | head -n1 | sed -E 's/^addr="?//')" || true
	[ -n "$ADDR" ] && break
	sleep 0.1
done
[ -n "$ADDR" ] || die "rlsd logged no addr=127.0.0.1:PORT within 30s"
ctl() { "$RLSCTL" --server "$ADDR" "$@"; }

ok=""
for _ in $(seq 100); do # 10 s
	if ctl admin ping >/dev/null 2>&1; then ok=1; break; fi
	sleep 0.1
done
[ -n "$ok" ] || die "rlsd at $ADDR did not answer admin ping within 10s"
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

say "figures"
run "$RLSCTL" --server "$ADDR" admin stats
STATS_JSON="$(ctl -o json admin stats)"
MAPPINGS="$(printf '%s' "$STATS_JSON" | grep -oE '"mappings": *"?[0-9]+' | grep -oE '[0-9]+$' | head -n1)"
[ "${MAPPINGS:-}" = "$N" ] || die "admin stats reports ${MAPPINGS:-?} mappings, want $N"
echo "bulk load: $N mappings in ${LOAD_SECS}s = ${LOAD_RATE} mappings/s (durable)"
echo "catalog:   $MAPPINGS mappings; data directory $(du -sh "$WORK/data" | cut -f1)"

say "stop rlsd with SIGTERM"
kill -TERM "$RLSD_PID"
# Bounded wait: rlsd gets 30s to drain and close its catalog.
for _ in $(seq 300); do kill -0 "$RLSD_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$RLSD_PID" 2>/dev/null && { kill -KILL "$RLSD_PID"; die "rlsd still running 30s after SIGTERM; killed"; }
set +e
wait "$RLSD_PID"
rc=$?
set -e
RLSD_PID=""
[ "$rc" -eq 0 ] || die "rlsd exited with status $rc after SIGTERM, want 0"
echo "rlsd exited 0"
say "demo OK"
