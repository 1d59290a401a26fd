#!/usr/bin/env bash
# bench-lrc.sh — rls's local replica catalog side by side with PostgreSQL on
# the same machine, holding the same mappings in the class of schema Globus
# RLS used on a relational backend (table (lfn text, pfn text), UNIQUE (lfn,
# pfn), INDEX (pfn, lfn)). Both sides are durable: rlsd runs without
# --no-sync, PostgreSQL with fsync=on and synchronous_commit=on.
#
# In one run it measures
#   a. bulk load of N mappings       rls: rlsctl lrc bulk create -f FILE
#                                    pg:  COPY (pgx CopyFrom), indexes present
#   b. single-LFN queries, c=32      rls: ghz on rls.v1.Catalog/QueryLFN, then at
#                                         half the measured rate for p99
#                                    pg:  prepared SELECT through pgx, same c, count
#                                         and half rate
#                                    control: the same QueryLFN calls from the Go
#                                         harness that drives PostgreSQL
#   c. durable single creates, c=32  rls: ghz on rls.v1.Catalog/Create, unique LFNs
#                                    pg:  single-row autocommit INSERTs
# and prints a markdown table. Raw outputs go to scripts/out/<timestamp>/.
#
# Requirements: Go, PostgreSQL server binaries (/usr/lib/postgresql/*/bin;
# `apt-get install -y postgresql`), jq, awk. Everything talks to 127.0.0.1
# only. ghz is built from the version pinned in tools/bench/go.mod.
#
# Knobs (environment): N_LOAD (1000000), N_QUERY (200000), N_CREATE (100000),
# CONC (32), HALF_SECS (20: length of the half-rate run), MAX_SECS (600: bound
# of every single measurement), NO_BUILD=1, KEEP=1 (keep the temp dir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

N_LOAD="${N_LOAD:-1000000}"
N_QUERY="${N_QUERY:-200000}"
N_CREATE="${N_CREATE:-100000}"
CONC="${CONC:-32}"
HALF_SECS="${HALF_SECS:-20}"
MAX_SECS="${MAX_SECS:-600}"
BASE=100000000        # first loaded sunum
CREATE_BASE=300000000 # first sunum of part c (not in the loaded range)

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench-lrc: FAILED: %s\n' "$*" >&2; exit 1; }
# run prints a command to stderr and to the command log, then runs it.
run() { printf '$ %s\n' "$*" | tee -a "$OUT/commands.txt" >&2; "$@"; }

command -v jq >/dev/null || die "jq is required (apt-get install -y jq)"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${PGTEST_BINDIR:-}" ] ||
	die "no PostgreSQL server binaries (apt-get install -y postgresql)"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/scripts/out/$STAMP"
mkdir -p "$OUT"
: >"$OUT/commands.txt"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rls-bench.XXXXXX")"

RLSD_PID=""
PG_PID=""
# stop_pid PID NAME: SIGTERM (rlsd) or SIGINT (pgbench-lrc serve stops its
# server on it), bounded wait, then SIGKILL.
stop_pid() {
	local pid=$1 sig=$2
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	echo "bench-lrc: pid $pid ignored SIG$sig for 30s; killing" >&2
	kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
	local rc=$?
	stop_pid "$RLSD_PID" TERM
	stop_pid "$PG_PID" INT
	if [ "$rc" -ne 0 ]; then
		for f in "$OUT/rlsd.log" "$OUT/pg-serve.log"; do
			[ -f "$f" ] && { echo "--- last lines of $f" >&2; tail -n 20 "$f" >&2; }
		done
		echo "bench-lrc: FAILED (exit $rc); raw outputs in $OUT" >&2
	fi
	if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
if [ "${NO_BUILD:-}" != 1 ]; then
	say "build"
	make --no-print-directory build >&2
	go build -trimpath -o bin/pgbench-lrc ./scripts/pgbench-lrc
	(cd tools/bench && go build -trimpath -o "$ROOT/bin/ghz" github.com/bojand/ghz/cmd/ghz)
fi
for b in rlsd rlsctl pgbench-lrc ghz; do [ -x "bin/$b" ] || die "bin/$b missing"; done
RLSD="$ROOT/bin/rlsd" RLSCTL="$ROOT/bin/rlsctl" PGB="$ROOT/bin/pgbench-lrc" GHZ="$ROOT/bin/ghz"

# ---------------------------------------------------------------- machine
say "machine"
{
	echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "host:      $(uname -srm)"
	echo "nproc:     $(nproc)"
	echo "cpu:       $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "memory:    $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "disk:      $(df -h --output=source,fstype,size,avail,target "$WORK" | tail -n1 | tr -s ' ')  (temp dir $WORK)"
	echo "go:        $(go version)"
	echo "rls:       $(git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "postgres:  $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1) ($("$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)/postgres" --version))"
	echo "ghz:       $(grep -E '^\s*github.com/bojand/ghz ' tools/bench/go.mod | awk '{print $2}')"
	echo "load:      N_LOAD=$N_LOAD N_QUERY=$N_QUERY N_CREATE=$N_CREATE CONC=$CONC"
	echo "loadavg:   $(cut -d' ' -f1-3 /proc/loadavg) (before the run; other work on the machine skews the figures)"
	echo "note:      clients and servers share the same $(nproc) CPUs"
} | tee "$OUT/machine.txt" >&2

# ---------------------------------------------------------------- data
say "generate $N_LOAD mappings"
FILE="$WORK/mappings.tsv"
awk -v n="$N_LOAD" -v base="$BASE" 'BEGIN { for (i = 0; i < n; i++) { s = base + i; printf "%d\t/SUM%d/D%d\n", s, i % 64, s } }' >"$FILE"
[ "$(wc -l <"$FILE")" -eq "$N_LOAD" ] || die "generated file has the wrong length"
head -n 2 "$FILE" >&2

# ---------------------------------------------------------------- servers
say "start rlsd (durable) and PostgreSQL (durable)"
mkdir -p "$WORK/rlsd"
printf '$ %s\n' "$RLSD --site bench --data $WORK/rlsd --listen 127.0.0.1:0 --roles lrc" | tee -a "$OUT/commands.txt" >&2
"$RLSD" --site bench --data "$WORK/rlsd" --listen 127.0.0.1:0 --roles lrc >"$OUT/rlsd.log" 2>&1 &
RLSD_PID=$!
printf '$ %s\n' "$PGB serve --dsn-file $WORK/pg.dsn" | tee -a "$OUT/commands.txt" >&2
"$PGB" serve --dsn-file "$WORK/pg.dsn" >"$OUT/pg-serve.log" 2>&1 &
PG_PID=$!

ADDR=""
for _ in $(seq 300); do # 30 s
	kill -0 "$RLSD_PID" 2>/dev/null || die "rlsd exited during start-up"
	ADDR="$(grep -oE 'addr="?127\.0\.0\.1:[0-9]+' "$OUT/rlsd.log" | head -n1 | sed -E 's/^addr="?//')" || true
	[ -n "$ADDR" ] && break
	sleep 0.1
done
[ -n "$ADDR" ] || die "rlsd logged no addr=127.0.0.1:PORT within 30s"
ok=""
for _ in $(seq 100); do "$RLSCTL" --server "$ADDR" admin ping >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1; done
[ -n "$ok" ] || die "rlsd at $ADDR does not answer admin ping"
for _ in $(seq 600); do # 60 s
	kill -0 "$PG_PID" 2>/dev/null || die "pgbench-lrc serve exited during start-up"
	[ -s "$WORK/pg.dsn" ] && break
	sleep 0.1
done
[ -s "$WORK/pg.dsn" ] || die "PostgreSQL not ready within 60s"
DSN="$(cat "$WORK/pg.dsn")"
echo "rlsd: $ADDR   postgres: $DSN" >&2
run "$PGB" setup --dsn "$DSN"

# ghz_run NAME ARGS...: one bounded ghz run against rlsd, JSON report in
# $OUT/NAME.json; fails on any error status.
PROTO_ARGS=(--insecure --import-paths "$ROOT/api/proto" --proto "$ROOT/api/proto/rls/v1/catalog.proto")
ghz_run() {
	local name=$1; shift
	run timeout "$MAX_SECS" "$GHZ" "${PROTO_ARGS[@]}" --timeout 20s -O json -o "$OUT/$name.json" "$@" "$ADDR"
	local errs
	errs="$(jq '[.statusCodeDistribution // {} | to_entries[] | select(.key != "OK") | .value] | add // 0' "$OUT/$name.json")"
	[ "$errs" -eq 0 ] || die "$name: $errs failed calls: $(jq -c '.errorDistribution' "$OUT/$name.json")"
}
# ghz_field NAME FIELD: rps | p50 | p99 (ms) | count
ghz_field() {
	case $2 in
	rps) jq '.rps' "$OUT/$1.json" ;;
	count) jq '.count' "$OUT/$1.json" ;;
	p50 | p99) jq --argjson p "${2#p}" '.latencyDistribution[] | select(.percentage == $p) | .latency / 1e6' "$OUT/$1.json" ;;
	esac
}
# pg_field NAME FIELD: a field of a pgbench-lrc JSON result.
pg_field() { jq ".$2" "$OUT/$1.json"; }
fmt() { awk -v x="$1" -v d="${2:-0}" 'BEGIN { printf "%.*f", d, x }'; }
fmtk() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }

# ---------------------------------------------------------------- a. bulk load
say "a. bulk load of $N_LOAD mappings"
t0=$(date +%s.%N)
run timeout "$MAX_SECS" "$RLSCTL" --server "$ADDR" lrc bulk create -f "$FILE" >"$OUT/rls-bulk.txt"
t1=$(date +%s.%N)
cat "$OUT/rls-bulk.txt" >&2
RLS_LOAD_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
RLS_LOAD_RATE=$(awk -v s="$RLS_LOAD_SECS" -v n="$N_LOAD" 'BEGIN { print n / s }')
"$RLSCTL" --server "$ADDR" -o json admin stats >"$OUT/rls-stats-after-load.json"
[ "$(jq '.mappings' "$OUT/rls-stats-after-load.json")" -eq "$N_LOAD" ] || die "rlsd holds $(jq '.mappings' "$OUT/rls-stats-after-load.json") mappings after the load, want $N_LOAD"

# An LSM tree finishes a load in the background (compactions), where a
# B-tree pays as it goes: wait until rlsd has settled, bounded, so that the
# next measurements do not share the CPUs with its compactions, and report
# the load rate with the settling time included as well.
# Settled: no compaction running in 5 polls over a second (Pebble keeps an
# estimated debt below its compaction thresholds for good, so the debt is
# reported, not waited for).
settle_deadline=$(($(date +%s) + 180))
quiet=0
while [ "$quiet" -lt 5 ]; do
	"$RLSCTL" --server "$ADDR" -o json admin stats >"$OUT/rls-stats-settle.json"
	if [ "$(jq '.compactions_running' "$OUT/rls-stats-settle.json")" -eq 0 ]; then
		quiet=$((quiet + 1))
	else
		quiet=0
	fi
	[ "$(date +%s)" -lt "$settle_deadline" ] || die "rlsd compactions did not settle in 180 s"
	sleep 0.2
done
t2=$(date +%s.%N)
RLS_SETTLED_SECS=$(awk -v a="$t0" -v b="$t2" 'BEGIN { print b - a }')
RLS_SETTLED_RATE=$(awk -v s="$RLS_SETTLED_SECS" -v n="$N_LOAD" 'BEGIN { print n / s }')

run "$PGB" copy --dsn "$DSN" -f "$FILE" --max-time "${MAX_SECS}s" >"$OUT/pg-copy.json"
PG_LOAD_RATE=$(pg_field pg-copy rate_per_s)
PG_LOAD_METHOD=$(jq -r '.method' "$OUT/pg-copy.json")
[ "$(pg_field pg-copy ok)" -eq "$N_LOAD" ] || die "COPY loaded $(pg_field pg-copy ok) rows, want $N_LOAD"

# ---------------------------------------------------------------- b. queries
say "b. single-LFN queries, c=$CONC, n=$N_QUERY"
QDATA="{\"name\":\"{{randomInt $BASE $((BASE + N_LOAD))}}\"}"
ghz_run rls-query-max --call rls.v1.Catalog/QueryLFN -d "$QDATA" -c "$CONC" -n "$N_QUERY"
RLS_Q_RPS=$(ghz_field rls-query-max rps)
HALF=$(awk -v r="$RLS_Q_RPS" 'BEGIN { printf "%d", r / 2 }')
[ "$HALF" -ge 1 ] || die "measured query rate $RLS_Q_RPS is too low to halve"
N_HALF=$((HALF * HALF_SECS))
ghz_run rls-query-half --call rls.v1.Catalog/QueryLFN -d "$QDATA" -c "$CONC" -n "$N_HALF" --rps "$HALF"

# Control: the same calls through the harness that drives PostgreSQL (generated
# Go stub), to split ghz's own CPU cost from the server's.
run "$PGB" rls-query --addr "$ADDR" -n "$N_QUERY" -c "$CONC" --lfn-base "$BASE" --lfn-count "$N_LOAD" --max-time "${MAX_SECS}s" >"$OUT/rls-stub-query-max.json"
STUB_RPS=$(pg_field rls-stub-query-max rate_per_s)
STUB_HALF=$(awk -v r="$STUB_RPS" 'BEGIN { printf "%d", r / 2 }')
run "$PGB" rls-query --addr "$ADDR" -n "$((STUB_HALF * HALF_SECS))" -c "$CONC" --rps "$STUB_HALF" --lfn-base "$BASE" --lfn-count "$N_LOAD" --max-time "${MAX_SECS}s" >"$OUT/rls-stub-query-half.json"

run "$PGB" query --dsn "$DSN" -n "$N_QUERY" -c "$CONC" --lfn-base "$BASE" --lfn-count "$N_LOAD" --max-time "${MAX_SECS}s" >"$OUT/pg-query-max.json"
PG_Q_RPS=$(pg_field pg-query-max rate_per_s)
PG_HALF=$(awk -v r="$PG_Q_RPS" 'BEGIN { printf "%d", r / 2 }')
run "$PGB" query --dsn "$DSN" -n "$((PG_HALF * HALF_SECS))" -c "$CONC" --rps "$PG_HALF" --lfn-base "$BASE" --lfn-count "$N_LOAD" --max-time "${MAX_SECS}s" >"$OUT/pg-query-half.json"

# ---------------------------------------------------------------- c. creates
say "c. durable single creates, c=$CONC, n=$N_CREATE"
CDATA="{\"lfn\":\"{{add $CREATE_BASE .RequestNumber}}\",\"pfn\":\"/SUM9/D{{add $CREATE_BASE .RequestNumber}}\"}"
ghz_run rls-create --call rls.v1.Catalog/Create -d "$CDATA" -c "$CONC" -n "$N_CREATE"
"$RLSCTL" --server "$ADDR" -o json admin stats >"$OUT/rls-stats-after-create.json"
want=$((N_LOAD + N_CREATE))
[ "$(jq '.mappings' "$OUT/rls-stats-after-create.json")" -eq "$want" ] || die "rlsd holds $(jq '.mappings' "$OUT/rls-stats-after-create.json") mappings after the creates, want $want"
# The same creates from the generated Go stub (new LFNs past ghz's), to
# split ghz's own CPU cost from the server's.
run "$PGB" rls-create --addr "$ADDR" -n "$N_CREATE" -c "$CONC" --lfn-base "$((CREATE_BASE + 10 * N_CREATE))" --max-time "${MAX_SECS}s" >"$OUT/rls-stub-create.json"

run "$PGB" insert --dsn "$DSN" -n "$N_CREATE" -c "$CONC" --lfn-base "$CREATE_BASE" --max-time "${MAX_SECS}s" >"$OUT/pg-insert.json"

# ---------------------------------------------------------------- report
say "results"
{
	echo "## rls LRC vs PostgreSQL ($(grep -oE 'PostgreSQL [0-9.]+' "$OUT/pg-copy.json" | head -n1 || echo PostgreSQL)), $STAMP"
	echo
	sed 's/^/    /' "$OUT/machine.txt"
	echo
	echo "Both durable (rlsd without --no-sync; PostgreSQL fsync=on, synchronous_commit=on)."
	echo "PostgreSQL bulk load: $PG_LOAD_METHOD."
	echo "PostgreSQL queries/inserts: pgbench-lrc, one pgx connection per client, prepared statements."
	echo "rls queries/creates: ghz $(grep -E '^\s*github.com/bojand/ghz ' tools/bench/go.mod | awk '{print $2}'), one HTTP/2 connection (ghz default)."
	echo
	echo "| metric | rls | postgres 15 | target |"
	echo "| --- | ---: | ---: | --- |"
	echo "| bulk load $(fmtk "$N_LOAD") mappings (mappings/s) | $(fmtk "$RLS_LOAD_RATE") | $(fmtk "$PG_LOAD_RATE") | ≥ 200k and ≥ 2× pg |"
	echo "| bulk load wall time (s) | $(fmt "$RLS_LOAD_SECS" 2) | $(fmt "$(pg_field pg-copy seconds)" 2) | |"
	echo "| bulk load incl. rls compactions settling (mappings/s) | $(fmtk "$RLS_SETTLED_RATE") ($(fmt "$RLS_SETTLED_SECS" 2) s) | $(fmtk "$PG_LOAD_RATE") | |"
	echo "| single-LFN query, c=$CONC, n=$(fmtk "$N_QUERY") (req/s) | $(fmtk "$RLS_Q_RPS") | $(fmtk "$PG_Q_RPS") | ≥ 30k |"
	echo "| query p50 at max rate (ms) | $(fmt "$(ghz_field rls-query-max p50)" 3) | $(fmt "$(pg_field pg-query-max p50_ms)" 3) | |"
	echo "| query p99 at max rate (ms) | $(fmt "$(ghz_field rls-query-max p99)" 3) | $(fmt "$(pg_field pg-query-max p99_ms)" 3) | |"
	echo "| query p50 at half max rate (ms) [rls $(fmtk "$HALF")/s, pg $(fmtk "$PG_HALF")/s] | $(fmt "$(ghz_field rls-query-half p50)" 3) | $(fmt "$(pg_field pg-query-half p50_ms)" 3) | |"
	echo "| query p99 at half max rate (ms) | $(fmt "$(ghz_field rls-query-half p99)" 3) | $(fmt "$(pg_field pg-query-half p99_ms)" 3) | < 1 ms |"
	echo "| same queries, Go-stub harness (rls) vs pgx (pg) (req/s) | $(fmtk "$STUB_RPS") | $(fmtk "$PG_Q_RPS") | |"
	echo "| Go-stub harness p50 / p99 at max rate (ms) | $(fmt "$(pg_field rls-stub-query-max p50_ms)" 3) / $(fmt "$(pg_field rls-stub-query-max p99_ms)" 3) | $(fmt "$(pg_field pg-query-max p50_ms)" 3) / $(fmt "$(pg_field pg-query-max p99_ms)" 3) | |"
	echo "| Go-stub harness p50 / p99 at half max rate (ms) [rls $(fmtk "$STUB_HALF")/s, pg $(fmtk "$PG_HALF")/s] | $(fmt "$(pg_field rls-stub-query-half p50_ms)" 3) / $(fmt "$(pg_field rls-stub-query-half p99_ms)" 3) | $(fmt "$(pg_field pg-query-half p50_ms)" 3) / $(fmt "$(pg_field pg-query-half p99_ms)" 3) | p99 < 1 ms |"
	echo "| durable single creates, c=$CONC, n=$(fmtk "$N_CREATE") (writes/s) | $(fmtk "$(ghz_field rls-create rps)") | $(fmtk "$(pg_field pg-insert rate_per_s)") | ≥ 20k |"
	echo "| create p50 / p99 (ms) | $(fmt "$(ghz_field rls-create p50)" 2) / $(fmt "$(ghz_field rls-create p99)" 2) | $(fmt "$(pg_field pg-insert p50_ms)" 2) / $(fmt "$(pg_field pg-insert p99_ms)" 2) | |"
	echo "| same creates, Go-stub harness (rls) vs pgx (pg) (writes/s) | $(fmtk "$(pg_field rls-stub-create rate_per_s)") | $(fmtk "$(pg_field pg-insert rate_per_s)") | ≥ 20k |"
	echo "| Go-stub create p50 / p99 (ms) | $(fmt "$(pg_field rls-stub-create p50_ms)" 2) / $(fmt "$(pg_field rls-stub-create p99_ms)" 2) | $(fmt "$(pg_field pg-insert p50_ms)" 2) / $(fmt "$(pg_field pg-insert p99_ms)" 2) | |"
	echo
	echo "rls half-rate run: $(ghz_field rls-query-half count) calls at --rps $HALF; actual $(fmtk "$(ghz_field rls-query-half rps)")/s."
	echo "loadavg after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "Raw outputs: scripts/out/$STAMP/"
} | tee "$OUT/results.md"
