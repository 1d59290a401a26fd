#!/usr/bin/env bash
# bench-lrc-backends.sh — the LRC workloads of bench-lrc.sh on the catalog's
# backends, side by side in one run on one machine:
#   pebble   rlsd with the embedded Pebble catalog (DATA/catalog)
#   pg-rlsd  rlsd with --catalog-dsn: the PostgreSQL backend behind gRPC
#   pgcat    the PostgreSQL backend in process (catalog/pgcatalog), no gRPC
#   plain    plain SQL through pgx on the same schema (the tables pgcatalog
#            creates): COPY of the mappings and their feed records; prepared
#            SELECT pfn FROM rls_map WHERE lfn = $1; single-row INSERTs
# Workloads: a. bulk load of N_LOAD mappings (rlsctl lrc bulk create, chunks
# of 10,000, INFLIGHT of them in flight; pgcat: BulkWrite in the same
# chunks, as many in flight; pgcat-base: as its build sends them; plain:
# one COPY transaction), b. single-LFN queries at c=CONC, c. durable single creates at
# c=CONC. Everything is durable (rlsd without --no-sync, PostgreSQL fsync=on,
# synchronous_commit=on), and talks to 127.0.0.1 only.
#
# Servers (PostgreSQL, rlsd) run on SERVER_CPUS, clients on CLIENT_CPUS
# (taskset). Server CPU seconds per run are read from /proc (the postmaster
# with its backends, reaped and live; rlsd), the figure that holds on a busy
# machine. The PostgreSQL backend's target: ≥ 80% of plain pgx for queries
# and bulk.
#
# Knobs (environment): N_LOAD (1000000), N_QUERY (50000), N_CREATE (3000),
# CONC (32), INFLIGHT (1), SERVER_CPUS (1), CLIENT_CPUS (0), MAX_SECS (900), NO_BUILD=1,
# KEEP=1, BACKENDS (the columns to run, default "pebble pgrlsd pgcat plain"),
# PGB_BASE (a pgbench-lrc built from another commit, say main: adds the
# column pgcat-base, that build's PostgreSQL backend in process on a
# database of its own schema, for before/after in the same run). Needs Go,
# jq, awk and PostgreSQL server binaries.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N_LOAD="${N_LOAD:-1000000}" N_QUERY="${N_QUERY:-50000}" N_CREATE="${N_CREATE:-3000}" CONC="${CONC:-32}" INFLIGHT="${INFLIGHT:-1}"
SERVER_CPUS="${SERVER_CPUS:-1}" CLIENT_CPUS="${CLIENT_CPUS:-0}" MAX_SECS="${MAX_SECS:-900}"
BACKENDS="${BACKENDS:-pebble pgrlsd pgcat plain}" PGB_BASE="${PGB_BASE:-}"
[ -n "$PGB_BASE" ] && BACKENDS="$BACKENDS pgcatbase"
has() { [[ " $BACKENDS " == *" $1 "* ]]; }
BASE=100000000 CREATE_BASE=300000000

die() { printf 'bench-lrc-backends: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf '\n== %s\n' "$*" >&2; }
command -v jq >/dev/null || die "jq is required"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/scripts/out/backends-$STAMP"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rls-backends.XXXXXX")"
PIDS=()
cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || continue 2; sleep 0.1; done
		echo "bench-lrc-backends: pid $p ignored SIGINT for 30 s; killing" >&2
		kill -KILL "$p" 2>/dev/null || true
	done
	[ "$rc" -ne 0 ] && echo "bench-lrc-backends: FAILED (exit $rc); raw outputs in $OUT" >&2
	if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${NO_BUILD:-}" != 1 ]; then
	say build
	make --no-print-directory build >&2
	go build -trimpath -o bin/pgbench-lrc ./scripts/pgbench-lrc
fi
RLSD="$ROOT/bin/rlsd" RLSCTL="$ROOT/bin/rlsctl" PGB="$ROOT/bin/pgbench-lrc"
# SRV runs a server on SERVER_CPUS; not a function, so that $! of a server
# started in the background is its pid (taskset execs it), which cleanup
# signals.
SRV=(taskset -c "$SERVER_CPUS")
cli() { printf '$ %s\n' "$*" >>"$OUT/commands.txt"; timeout "$MAX_SECS" taskset -c "$CLIENT_CPUS" "$@"; }

{
	echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "host:     $(uname -srm), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "rls:      $(git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "postgres: $("$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)/postgres" --version)"
	echo "load:     N_LOAD=$N_LOAD N_QUERY=$N_QUERY N_CREATE=$N_CREATE CONC=$CONC INFLIGHT=$INFLIGHT; servers on CPU $SERVER_CPUS, clients on CPU $CLIENT_CPUS"
	echo "backends: $BACKENDS${PGB_BASE:+ (pgcatbase: $PGB_BASE)}"
	echo "loadavg:  $(cut -d' ' -f1-3 /proc/loadavg) (before the run)"
} | tee "$OUT/machine.txt" >&2

say "generate $N_LOAD mappings"
FILE="$WORK/mappings.tsv"
awk -v n="$N_LOAD" -v base="$BASE" 'BEGIN { for (i = 0; i < n; i++) { s = base + i; printf "%d\t/SUM%d/D%d\n", s, i % 64, s } }' >"$FILE"

say "start PostgreSQL and two rlsd"
"${SRV[@]}" "$PGB" serve --dsn-file "$WORK/pg.dsn" >"$OUT/pg-serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 600); do [ -s "$WORK/pg.dsn" ] && break; sleep 0.1; done
[ -s "$WORK/pg.dsn" ] || die "PostgreSQL not ready in 60 s"
DSN="$(cat "$WORK/pg.dsn")"
PORT="$(sed -E 's/.*:([0-9]+)\/.*/\1/' <<<"$DSN")"
PM="$(pgrep -f "postgres -D .*port=$PORT" | head -n1)"
[ -n "$PM" ] || die "no postmaster on port $PORT"
dsn_for() { sed -E "s#/postgres\?#/$1?#" <<<"$DSN"; }
for db in plain pgcat pgrlsd pgcatbase; do
	has "$db" || continue
	"$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)/psql" -q "$DSN" -c "CREATE DATABASE $db" >&2
	if [ "$db" = pgcatbase ]; then "$PGB_BASE" rls-schema --dsn "$(dsn_for "$db")" 2>/dev/null; else "$PGB" rls-schema --dsn "$(dsn_for "$db")" 2>/dev/null; fi
done
start_rlsd() { # NAME ARGS...
	local name=$1; shift
	"${SRV[@]}" "$RLSD" --site "$name" --data "$WORK/$name" --listen 127.0.0.1:0 --roles lrc "$@" >"$OUT/rlsd-$name.log" 2>&1 &
	PIDS+=($!)
	eval "PID_$name=$!"
	local addr=""
	for _ in $(seq 300); do
		addr="$(grep -oE 'addr="?127\.0\.0\.1:[0-9]+' "$OUT/rlsd-$name.log" | head -n1 | sed -E 's/^addr="?//')" || true
		[ -n "$addr" ] && break
		sleep 0.1
	done
	[ -n "$addr" ] || die "rlsd $name did not start: $(tail -n 5 "$OUT/rlsd-$name.log")"
	eval "ADDR_$name=$addr"
}
if has pebble; then start_rlsd pebble; fi
if has pgrlsd; then start_rlsd pgrlsd --catalog-dsn "$(dsn_for pgrlsd)"; fi

# CPU seconds of a process (with its reaped children) and its live children.
cpu_of() {
	local pid=$1 tck; tck=$(getconf CLK_TCK)
	{ awk '{print $14+$15+$16+$17}' "/proc/$pid/stat"; for c in $(ps -o pid= --ppid "$pid"); do awk '{print $14+$15}' "/proc/$c/stat" 2>/dev/null || true; done; } |
		awk -v t="$tck" '{s += $1} END {printf "%.3f", s / t}'
}
# measure NAME SERVERPIDS CMD...: run a client command, keep its JSON (or
# its wall time), and the servers' CPU seconds during it.
declare -A RATE SCPU
measure() {
	local name=$1 pids=$2; shift 2
	local c0=0 c1=0 p t0 t1
	for p in $pids; do c0=$(awk -v a="$c0" -v b="$(cpu_of "$p")" 'BEGIN{print a+b}'); done
	t0=$(date +%s.%N)
	cli "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || die "$name: $(tail -n 3 "$OUT/$name.err")"
	t1=$(date +%s.%N)
	for p in $pids; do c1=$(awk -v a="$c1" -v b="$(cpu_of "$p")" 'BEGIN{print a+b}'); done
	SCPU[$name]=$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b-a}')
	if jq -e .rate_per_s "$OUT/$name.out" >/dev/null 2>&1; then
		RATE[$name]=$(jq .rate_per_s "$OUT/$name.out")
		[ "$(jq .errors "$OUT/$name.out")" -eq 0 ] || die "$name: $(jq -r .first_error "$OUT/$name.out")"
	else
		RATE[$name]=$(awk -v a="$t0" -v b="$t1" -v n="$N_LOAD" 'BEGIN{print n/(b-a)}')
	fi
	echo "$name: $(printf '%.0f' "${RATE[$name]}")/s, server CPU ${SCPU[$name]} s" >&2
}

# run_workload W ARGS...: workload W (bulk, query, create) on every backend.
run_workload() {
	local w=$1 b; shift
	for b in $BACKENDS; do
		case "$w/$b" in
		bulk/pebble) measure bulk-pebble "$PID_pebble" "$RLSCTL" --server "$ADDR_pebble" lrc bulk create -f "$FILE" --inflight "$INFLIGHT" ;;
		bulk/pgrlsd) measure bulk-pgrlsd "$PID_pgrlsd $PM" "$RLSCTL" --server "$ADDR_pgrlsd" lrc bulk create -f "$FILE" --inflight "$INFLIGHT" ;;
		bulk/pgcat) measure bulk-pgcat "$PM" "$PGB" pgcat-bulk --dsn "$(dsn_for pgcat)" -f "$FILE" --inflight "$INFLIGHT" ;;
		bulk/pgcatbase) measure bulk-pgcatbase "$PM" "$PGB_BASE" pgcat-bulk --dsn "$(dsn_for pgcatbase)" -f "$FILE" ;;
		bulk/plain) measure bulk-plain "$PM" "$PGB" copy-rls --dsn "$(dsn_for plain)" -f "$FILE" ;;
		*/pebble) measure "$w-pebble" "$PID_pebble" "$PGB" "rls-$w" --addr "$ADDR_pebble" "$@" ;;
		*/pgrlsd) measure "$w-pgrlsd" "$PID_pgrlsd $PM" "$PGB" "rls-$w" --addr "$ADDR_pgrlsd" "$@" ;;
		*/pgcat) measure "$w-pgcat" "$PM" "$PGB" "pgcat-$w" --dsn "$(dsn_for pgcat)" "$@" ;;
		*/pgcatbase) measure "$w-pgcatbase" "$PM" "$PGB_BASE" "pgcat-$w" --dsn "$(dsn_for pgcatbase)" "$@" ;;
		query/plain) measure query-plain "$PM" "$PGB" query --table rls_map --dsn "$(dsn_for plain)" "$@" ;;
		create/plain) measure create-plain "$PM" "$PGB" insert --table rls_map --dsn "$(dsn_for plain)" "$@" ;;
		esac
	done
}

say "a. bulk load of $N_LOAD mappings"
run_workload bulk

say "b. single-LFN queries, c=$CONC, n=$N_QUERY"
run_workload query -n "$N_QUERY" -c "$CONC" --lfn-base "$BASE" --lfn-count "$N_LOAD"

say "c. durable single creates, c=$CONC, n=$N_CREATE"
run_workload create -n "$N_CREATE" -c "$CONC" --lfn-base "$CREATE_BASE"

say results
r() { if [ -n "${RATE[$1]:-}" ]; then printf '%.0f' "${RATE[$1]}"; else printf -- '-'; fi; }
per() { if [ -n "${SCPU[$1]:-}" ]; then awk -v c="${SCPU[$1]}" -v n="$2" 'BEGIN { printf " (%.1f)", c * 1e6 / n }'; fi; }
ratio() { awk -v a="${RATE[$1]}" -v b="${RATE[$2]}" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
cpuratio() { awk -v a="${SCPU[$1]}" -v b="${SCPU[$2]}" 'BEGIN { printf "%.0f%%", 100 * b / a }'; }
vs() { # A B: A's wall rate and server CPU efficiency as shares of B's
	if [ -n "${RATE[$1]:-}" ] && [ -n "${RATE[$2]:-}" ]; then printf '%s; CPU %s' "$(ratio "$1" "$2")" "$(cpuratio "$1" "$2")"; else printf -- '-'; fi
}
{
	echo "## catalog backends, $STAMP"
	echo
	sed 's/^/    /' "$OUT/machine.txt"
	echo
	echo "Rates per second (server CPU µs per operation: PostgreSQL's postmaster and backends, plus rlsd where it runs)."
	echo "X / plain: X's rate as a share of plain pgx (wall; server CPU efficiency: plain's CPU per operation over X's)."
	echo
	echo "| workload | pebble (rlsd) | pg-rlsd (rlsd + PostgreSQL) | pgcat (in process) | pgcat-base (in process) | plain pgx | pgcat / plain | pgcat-base / plain |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for w in bulk query create; do
		n=$N_LOAD; [ $w = query ] && n=$N_QUERY; [ $w = create ] && n=$N_CREATE
		row="| $w"
		for b in pebble pgrlsd pgcat pgcatbase plain; do row="$row | $(r "$w-$b")$(per "$w-$b" "$n")"; done
		echo "$row | $(vs "$w-pgcat" "$w-plain") | $(vs "$w-pgcatbase" "$w-plain") |"
	done
	echo
	echo "loadavg after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "Raw outputs: scripts/out/backends-$STAMP/"
} | tee "$OUT/results.md"
