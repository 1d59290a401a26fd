#!/usr/bin/env bash
# bench-lrc.sh — rls's local replica catalog side by side with PostgreSQL on
# the same machine, holding the same mappings in the class of schema Globus
# RLS used on a relational backend (table (lfn text, pfn text), UNIQUE (lfn,
# pfn), INDEX (pfn, lfn)). Both sides are durable: rlsd runs without
# --no-sync, PostgreSQL with fsync=on and synchronous_commit=on.
#
# Parts (PARTS, comma-separated; default load,query,create,bulkquery):
#   load       bulk load of N_LOAD mappings
#                rls: rlsctl lrc bulk create -f FILE (10,000 a call)
#                pg:  COPY (pgx CopyFrom), indexes present
#   query      single-LFN lookups of loaded LFNs, c=CONC, at the maximum rate
#              and at half of it (for p99)
#                rls: rls.v1.Catalog/QueryLFN through the generated Go stub
#                pg:  prepared SELECT through pgx, one connection per client
#              both from the same Go harness (bin/pgbench-lrc)
#   create     durable single creates of new LFNs, c=CONC
#                rls: rls.v1.Catalog/Create;  pg: single-row autocommit INSERTs
#   bulkquery  BULK_BATCH (1,000) random loaded LFNs a call, c=BULK_CONC
#                rls: rls.v1.Catalog/BulkQuery;  pg: prepared WHERE lfn = ANY($1)
#   big        bulk load of N_BIG (10,000,000) more mappings, while a client
#              sends DURING_RPS single-LFN lookups a second; reports the
#              load rate and the lookups' p50/p99 during the load
#   ghz        the query and create runs of ghz (one HTTP/2 connection, a
#              dynamic message per call) against rlsd, for comparison with
#              earlier figures; rls only
# query and bulkquery need loaded mappings: without the load part they load
# N_LOAD mappings untimed first.
#
# Pinning (the default when taskset exists and the machine has 2+ CPUs):
# every server (rlsd, PostgreSQL) runs on SERVER_CPUS and every client on
# CLIENT_CPUS, so that the clients' cost does not eat the servers' CPU; on a
# 2-CPU machine server CPU 1 and client CPU 0, on larger ones the upper and
# lower halves. PIN=0 turns pinning off. rlsd's GOMAXPROCS follows its CPU set.
#
# Every measured run is repeated REPEATS (3) times per side, alternating
# sides, and the median run by rate is reported; all runs are kept in the
# output directory. Raw outputs go to scripts/out/<timestamp>/; the table
# (results.md) has a column "rls ÷ pg" for rates and "pg ÷ rls" for
# latencies: above 1, rls is better.
#
# Requirements: Go, PostgreSQL server binaries (/usr/lib/postgresql/*/bin;
# `apt-get install -y postgresql`), jq, awk, taskset (util-linux).
# Everything talks to 127.0.0.1 only.
#
# Knobs (environment): PARTS, N_LOAD (1000000), N_QUERY (200000), N_CREATE
# (50000), N_BULK (600 calls), BULK_BATCH (1000), BULK_CONC (4), N_BIG
# (10000000), DURING_RPS (2000), CONC (32), HALF_SECS (10), REPEATS (3),
# MAX_SECS (600: bound of every single measurement), SERVER_CPUS, CLIENT_CPUS,
# PIN, RLSD_BIN and RLSCTL_BIN (other binaries than bin/rlsd and bin/rlsctl,
# to measure an older build against the same PostgreSQL run), NO_BUILD=1, KEEP=1 (keep the temp dir), PPROF=1 (rlsd serves
# net/http/pprof on its HTTP listener and each rls run of query, create and
# bulkquery saves a CPU profile of rlsd as <run>.pprof).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PARTS="${PARTS:-load,query,create,bulkquery}"
N_LOAD="${N_LOAD:-1000000}"
N_QUERY="${N_QUERY:-200000}"
N_CREATE="${N_CREATE:-50000}"
N_BULK="${N_BULK:-600}"
BULK_BATCH="${BULK_BATCH:-1000}"
BULK_CONC="${BULK_CONC:-4}"
N_BIG="${N_BIG:-10000000}"
DURING_RPS="${DURING_RPS:-2000}"
CONC="${CONC:-32}"
HALF_SECS="${HALF_SECS:-10}"
REPEATS="${REPEATS:-3}"
MAX_SECS="${MAX_SECS:-600}"
BASE=100000000        # first loaded sunum
CREATE_BASE=300000000 # first sunum of the creates (not in the loaded range)
BIG_BASE=400000000    # first sunum of the big load

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench-lrc: FAILED: %s\n' "$*" >&2; exit 1; }
has_part() { case ",$PARTS," in *",$1,"*) return 0 ;; esac; return 1; }
for p in ${PARTS//,/ }; do
	case $p in load | query | create | bulkquery | big | ghz) ;; *) die "unknown part $p in PARTS=$PARTS" ;; esac
done

# ---------------------------------------------------------------- pinning
NCPU=$(nproc)
if [ -z "${PIN:-}" ]; then
	if command -v taskset >/dev/null && [ "$NCPU" -ge 2 ]; then PIN=1; else PIN=0; fi
fi
if [ "$PIN" = 1 ]; then
	command -v taskset >/dev/null || die "PIN=1 needs taskset (apt-get install -y util-linux)"
	half=$((NCPU / 2))
	SERVER_CPUS="${SERVER_CPUS:-$([ "$NCPU" -eq 2 ] && echo 1 || echo "$half-$((NCPU - 1))")}"
	CLIENT_CPUS="${CLIENT_CPUS:-$([ "$NCPU" -eq 2 ] && echo 0 || echo "0-$((half - 1))")}"
fi
# SERVER / CLIENT prefix a command to run it on the servers' / clients'
# CPUs. They are arrays used directly (not shell functions), so that a
# command started with & is its own $! (taskset execs it) and gets the
# signals sent to that pid.
SERVER=() CLIENT=()
if [ "$PIN" = 1 ]; then SERVER=(taskset -c "$SERVER_CPUS") CLIENT=(taskset -c "$CLIENT_CPUS"); fi
# run prints a client command to stderr and to the command log, then runs
# it on the clients' CPUs.
run() { printf '$ %s\n' "$*" | tee -a "$OUT/commands.txt" >&2; "${CLIENT[@]}" "$@"; }

command -v jq >/dev/null || die "jq is required (apt-get install -y jq)"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${PGTEST_BINDIR:-}" ] ||
	die "no PostgreSQL server binaries (apt-get install -y postgresql)"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/scripts/out/$STAMP"
mkdir -p "$OUT"
: >"$OUT/commands.txt"
: >"$OUT/rows.tsv"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rls-bench.XXXXXX")"

RLSD_PID=""
PG_PID=""
# stop_pid PID SIG: SIGTERM (rlsd) or SIGINT (pgbench-lrc serve stops its
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
	if has_part ghz; then
		(cd tools/bench && go build -trimpath -o "$ROOT/bin/ghz" github.com/bojand/ghz/cmd/ghz)
	fi
fi
for b in rlsd rlsctl pgbench-lrc; do [ -x "bin/$b" ] || die "bin/$b missing"; done
RLSD="${RLSD_BIN:-$ROOT/bin/rlsd}" RLSCTL="${RLSCTL_BIN:-$ROOT/bin/rlsctl}" PGB="$ROOT/bin/pgbench-lrc" GHZ="$ROOT/bin/ghz"
[ -x "$RLSD" ] && [ -x "$RLSCTL" ] || die "$RLSD or $RLSCTL missing"

# ---------------------------------------------------------------- machine
say "machine"
{
	echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "host:      $(uname -srm)"
	echo "nproc:     $NCPU"
	echo "cpu:       $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "memory:    $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "disk:      $(df -h --output=source,fstype,size,avail,target "$WORK" | tail -n1 | tr -s ' ')  (temp dir $WORK)"
	echo "go:        $(go version)"
	echo "rls:       $(git describe --always --dirty 2>/dev/null || echo unknown); rlsd $RLSD ($("$RLSD" version 2>/dev/null | head -n1))"
	echo "postgres:  $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1) ($("$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)/postgres" --version))"
	echo "parts:     $PARTS (REPEATS=$REPEATS, median run reported)"
	echo "load:      N_LOAD=$N_LOAD N_QUERY=$N_QUERY N_CREATE=$N_CREATE N_BULK=$N_BULK×$BULK_BATCH (c=$BULK_CONC) N_BIG=$N_BIG CONC=$CONC"
	if [ "$PIN" = 1 ]; then
		echo "pinning:   servers (rlsd, PostgreSQL) on CPU $SERVER_CPUS, clients on CPU $CLIENT_CPUS (taskset)"
	else
		echo "pinning:   none: clients and servers share the same $NCPU CPUs"
	fi
	echo "loadavg:   $(cut -d' ' -f1-3 /proc/loadavg) (before the run; other work on the machine skews the figures)"
} | tee "$OUT/machine.txt" >&2

# ---------------------------------------------------------------- helpers
# pg_field NAME FIELD: a field of a pgbench-lrc JSON result ($OUT/NAME.json).
pg_field() { jq ".$2" "$OUT/$1.json"; }
fmt() { awk -v x="$1" -v d="${2:-0}" 'BEGIN { printf "%.*f", d, x }'; }
# row METRIC RLS PG KIND: a table row; KIND rate (ratio rls/pg), lat (pg/rls)
# or none.
row() {
	local ratio=""
	case $4 in
	rate) ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { if (b > 0) printf "%.2f", a / b }') ;;
	lat) ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { if (a > 0) printf "%.2f", b / a }') ;;
	esac
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$ratio" >>"$OUT/rows.tsv"
}
# gen FILE N BASE: N mappings "sunum<TAB>/SUMk/Dsunum" from sunum BASE on.
gen() {
	awk -v n="$2" -v base="$3" 'BEGIN { for (i = 0; i < n; i++) { s = base + i; printf "%d\t/SUM%d/D%d\n", s, i % 64, s } }' >"$1"
	[ "$(wc -l <"$1")" -eq "$2" ] || die "generated file $1 has the wrong length"
}
# median NAME: of $OUT/NAME-1.json .. NAME-REPEATS.json, copy the run with
# the median rate_per_s to $OUT/NAME.json.
median() {
	local name=$1 k best
	best=$(for k in $(seq "$REPEATS"); do printf '%s %s\n' "$(jq '.rate_per_s' "$OUT/$name-$k.json")" "$k"; done |
		sort -g | awk '{ a[NR] = $2 } END { print a[int((NR + 1) / 2)] }')
	cp "$OUT/$name-$best.json" "$OUT/$name.json"
	echo "$name: rates $(for k in $(seq "$REPEATS"); do printf '%.0f ' "$(jq '.rate_per_s' "$OUT/$name-$k.json")"; done)-> median run $best" >&2
}
# profile NAME SECS: with PPROF=1, save a CPU profile of rlsd over the next
# SECS seconds to $OUT/NAME.pprof, in the background; wait_profile waits.
PROF_PID=""
profile() {
	[ "${PPROF:-}" = 1 ] || return 0
	curl -s -o "$OUT/$1.pprof" "http://$HTTP_ADDR/debug/pprof/profile?seconds=$2" &
	PROF_PID=$!
}
wait_profile() { [ -z "$PROF_PID" ] || wait "$PROF_PID" || true; PROF_PID=""; }
# tree_ticks PID: CPU time (clock ticks) of PID and all its descendants,
# with that of their children already reaped (cutime, cstime): the CPU a
# server (rlsd; PostgreSQL's postmaster with its backends and helpers)
# used so far. Server CPU per operation does not depend on what else runs
# on the machine, unlike rates, which makes it the figure to compare on a
# busy machine.
tree_ticks() {
	local pids=($1) all=() p
	while [ ${#pids[@]} -gt 0 ]; do
		all+=("${pids[@]}")
		local next=()
		for p in "${pids[@]}"; do
			next+=($(cat /proc/"$p"/task/*/children 2>/dev/null))
		done
		pids=("${next[@]}")
	done
	for p in "${all[@]}"; do cat /proc/"$p"/stat 2>/dev/null; done |
		sed 's/.*) //' | awk '{ t += $12 + $13 + $14 + $15 } END { print t + 0 }'
}
CLK_TCK=$(getconf CLK_TCK)
# server_cpu SIDE NAME CMD...: run the client command CMD and write the CPU
# the server of SIDE (rls or pg) used meanwhile, in µs per operation of the
# result $OUT/NAME.json (per name for bulk queries), into that result as
# server_cpu_us_per_op.
server_cpu() {
	local side=$1 name=$2 pid t0 t1
	shift 2
	pid=$RLSD_PID
	[ "$side" = pg ] && pid=$PG_PID
	t0=$(tree_ticks "$pid")
	"$@" >"$OUT/$name.json"
	sleep 0.3 # let the postmaster reap the backends of the closed connections
	t1=$(tree_ticks "$pid")
	local tmp
	tmp=$(jq --argjson t "$((t1 - t0))" --argjson hz "$CLK_TCK" \
		'. + {server_cpu_s: ($t / $hz), server_cpu_us_per_op: ($t / $hz * 1e6 / (.ok * (if .batch then .batch else 1 end)))}' "$OUT/$name.json")
	printf '%s\n' "$tmp" >"$OUT/$name.json"
}
mappings() { "$RLSCTL" --server "$ADDR" -o json admin stats | jq '.mappings'; }

# settle: wait, bounded, until rlsd runs no compaction in 5 polls over a
# second. An LSM tree finishes a load in the background (compactions), where
# a B-tree pays as it goes; the next measurements should not share the CPU
# with them, and the load is also reported with the settling included.
settle() {
	local deadline=$(($(date +%s) + 300)) quiet=0
	while [ "$quiet" -lt 5 ]; do
		if [ "$("$RLSCTL" --server "$ADDR" -o json admin stats | jq '.compactions_running')" -eq 0 ]; then
			quiet=$((quiet + 1))
		else
			quiet=0
		fi
		[ "$(date +%s)" -lt "$deadline" ] || die "rlsd compactions did not settle in 300 s"
		sleep 0.2
	done
}

# ---------------------------------------------------------------- servers
start_servers() {
	say "start rlsd (durable) and PostgreSQL (durable)"
	mkdir -p "$WORK/rlsd"
	local extra=()
	[ "${PPROF:-}" = 1 ] && extra=(--http-listen 127.0.0.1:0 --pprof)
	printf '$ %s\n' "$RLSD --site bench --data $WORK/rlsd --listen 127.0.0.1:0 --roles lrc ${extra[*]}" | tee -a "$OUT/commands.txt" >&2
	"${SERVER[@]}" "$RLSD" --site bench --data "$WORK/rlsd" --listen 127.0.0.1:0 --roles lrc "${extra[@]}" >"$OUT/rlsd.log" 2>&1 &
	RLSD_PID=$!
	printf '$ %s\n' "$PGB serve --dsn-file $WORK/pg.dsn" | tee -a "$OUT/commands.txt" >&2
	"${SERVER[@]}" "$PGB" serve --dsn-file "$WORK/pg.dsn" >"$OUT/pg-serve.log" 2>&1 &
	PG_PID=$!

	ADDR=""
	for _ in $(seq 300); do # 30 s
		kill -0 "$RLSD_PID" 2>/dev/null || die "rlsd exited during start-up"
		ADDR="$(grep -oE ' addr="?127\.0\.0\.1:[0-9]+' "$OUT/rlsd.log" | head -n1 | grep -oE '127\.0\.0\.1:[0-9]+$')" || true
		[ -n "$ADDR" ] && break
		sleep 0.1
	done
	[ -n "$ADDR" ] || die "rlsd logged no addr=127.0.0.1:PORT within 30s"
	if [ "${PPROF:-}" = 1 ]; then
		HTTP_ADDR="$(grep -oE 'http_addr="?127\.0\.0\.1:[0-9]+' "$OUT/rlsd.log" | head -n1 | grep -oE '127\.0\.0\.1:[0-9]+$')" || true
		[ -n "$HTTP_ADDR" ] || die "rlsd logged no HTTP address"
	fi
	local ok=""
	for _ in $(seq 100); do "$RLSCTL" --server "$ADDR" admin ping >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1; done
	[ -n "$ok" ] || die "rlsd at $ADDR does not answer admin ping"
	for _ in $(seq 600); do # 60 s
		kill -0 "$PG_PID" 2>/dev/null || die "pgbench-lrc serve exited during start-up"
		[ -s "$WORK/pg.dsn" ] && break
		sleep 0.1
	done
	[ -s "$WORK/pg.dsn" ] || die "PostgreSQL not ready within 60s"
	DSN="$(cat "$WORK/pg.dsn")"
	echo "rlsd: $ADDR   postgres: $DSN   rlsd pid $RLSD_PID (CPUs: $(taskset -cp "$RLSD_PID" 2>/dev/null | awk '{print $NF}'))" >&2
	run "$PGB" setup --dsn "$DSN"
}

# ---------------------------------------------------------------- a. bulk load
LOADED=0
# load_both FILE N NAME: load FILE (N mappings) into rlsd and then into
# PostgreSQL, timing both; results in $OUT/NAME-rls.txt, NAME-pg.json and
# the shell variables LOAD_SECS, SETTLED_SECS.
load_both() {
	local file=$1 n=$2 name=$3 before t0 t1 t2 c0 c1
	before=$(mappings)
	c0=$(tree_ticks "$RLSD_PID")
	t0=$(date +%s.%N)
	run timeout "$MAX_SECS" "$RLSCTL" --server "$ADDR" lrc bulk create -f "$file" >"$OUT/$name-rls.txt"
	t1=$(date +%s.%N)
	cat "$OUT/$name-rls.txt" >&2
	[ "$(mappings)" -eq $((before + n)) ] || die "rlsd holds $(mappings) mappings after the load, want $((before + n))"
	settle
	t2=$(date +%s.%N)
	LOAD_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	SETTLED_SECS=$(awk -v a="$t0" -v b="$t2" 'BEGIN { print b - a }')
	c1=$(tree_ticks "$RLSD_PID")
	LOAD_RLS_CPU=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$n" 'BEGIN { print t / hz * 1e6 / n }')
	server_cpu pg "$name-pg" run "$PGB" copy --dsn "$DSN" -f "$file" --max-time "${MAX_SECS}s"
	[ "$(pg_field "$name-pg" ok)" -eq "$n" ] || die "COPY loaded $(pg_field "$name-pg" ok) rows, want $n"
}

part_load() {
	say "load: bulk load of $N_LOAD mappings"
	gen "$WORK/mappings.tsv" "$N_LOAD" "$BASE"
	load_both "$WORK/mappings.tsv" "$N_LOAD" load
	LOADED=1
	has_part load || return 0
	local pg_rate pg_secs
	pg_rate=$(pg_field load-pg rate_per_s) pg_secs=$(pg_field load-pg seconds)
	row "bulk load $N_LOAD (mappings/s)" "$(fmt "$(awk -v n="$N_LOAD" -v s="$LOAD_SECS" 'BEGIN { print n / s }')")" "$(fmt "$pg_rate")" rate
	row "bulk load $N_LOAD incl. rls compactions settling (mappings/s)" "$(fmt "$(awk -v n="$N_LOAD" -v s="$SETTLED_SECS" 'BEGIN { print n / s }')")" "$(fmt "$pg_rate")" rate
	row "bulk load $N_LOAD server CPU per mapping, rls incl. settling (µs)" "$(fmt "$LOAD_RLS_CPU" 2)" "$(fmt "$(pg_field load-pg server_cpu_us_per_op)" 2)" lat
	row "bulk load $N_LOAD wall time (s)" "$(fmt "$LOAD_SECS" 2)" "$(fmt "$pg_secs" 2)" lat
}

need_loaded() { [ "$LOADED" = 1 ] || part_load; }

# ---------------------------------------------------------------- b. queries
# query_pair NAME RPS: one rls and one pg query run at RPS (0: max), REPEATS
# times, alternating; medians in $OUT/NAME-rls.json, NAME-pg.json.
query_runs() {
	local name=$1 rps=$2 n=$3 k
	for k in $(seq "$REPEATS"); do
		profile "$name-rls-$k" 5
		server_cpu rls "$name-rls-$k" run "$PGB" rls-query --addr "$ADDR" -n "$n" -c "$CONC" --rps "$rps" --lfn-base "$BASE" --lfn-count "$N_LOAD" --max-time "${MAX_SECS}s"
		wait_profile
		server_cpu pg "$name-pg-$k" run "$PGB" query --dsn "$DSN" -n "$n" -c "$CONC" --rps "$rps" --lfn-base "$BASE" --lfn-count "$N_LOAD" --max-time "${MAX_SECS}s"
	done
	median "$name-rls"
	median "$name-pg"
}

part_query() {
	need_loaded
	say "query: single-LFN lookups, c=$CONC, n=$N_QUERY"
	query_runs query-max 0 "$N_QUERY"
	local rls pg half
	rls=$(pg_field query-max-rls rate_per_s) pg=$(pg_field query-max-pg rate_per_s)
	# Half of the slower side's maximum, the same rate for both.
	half=$(awk -v a="$rls" -v b="$pg" 'BEGIN { m = a < b ? a : b; printf "%d", m / 2 }')
	[ "$half" -ge 1 ] || die "measured query rate is too low to halve"
	query_runs query-half "$half" $((half * HALF_SECS))
	row "QueryLFN c=$CONC (lookups/s)" "$(fmt "$rls")" "$(fmt "$pg")" rate
	row "QueryLFN server CPU per lookup (µs)" "$(fmt "$(pg_field query-max-rls server_cpu_us_per_op)" 1)" "$(fmt "$(pg_field query-max-pg server_cpu_us_per_op)" 1)" lat
	row "QueryLFN p50 / p99 at max rate (ms)" "$(fmt "$(pg_field query-max-rls p50_ms)" 3) / $(fmt "$(pg_field query-max-rls p99_ms)" 3)" "$(fmt "$(pg_field query-max-pg p50_ms)" 3) / $(fmt "$(pg_field query-max-pg p99_ms)" 3)" none
	row "QueryLFN p50 at $half/s, half the slower max (ms)" "$(fmt "$(pg_field query-half-rls p50_ms)" 3)" "$(fmt "$(pg_field query-half-pg p50_ms)" 3)" lat
	row "QueryLFN p99 at $half/s, half the slower max (ms)" "$(fmt "$(pg_field query-half-rls p99_ms)" 3)" "$(fmt "$(pg_field query-half-pg p99_ms)" 3)" lat
	# Half of each side's own maximum, as the issue asks.
	local rhalf=$(awk -v a="$rls" 'BEGIN { printf "%d", a / 2 }') k
	for k in $(seq "$REPEATS"); do
		run "$PGB" rls-query --addr "$ADDR" -n $((rhalf * HALF_SECS)) -c "$CONC" --rps "$rhalf" --lfn-base "$BASE" --lfn-count "$N_LOAD" --max-time "${MAX_SECS}s" >"$OUT/query-ownhalf-rls-$k.json"
	done
	median query-ownhalf-rls
	row "QueryLFN p99 at half rls's own max, $rhalf/s (ms)" "$(fmt "$(pg_field query-ownhalf-rls p99_ms)" 3)" "" none
}

# ---------------------------------------------------------------- c. creates
part_create() {
	say "create: durable single creates, c=$CONC, n=$N_CREATE"
	local k before
	before=$(mappings)
	for k in $(seq "$REPEATS"); do
		profile "create-rls-$k" 3
		server_cpu rls "create-rls-$k" run "$PGB" rls-create --addr "$ADDR" -n "$N_CREATE" -c "$CONC" --lfn-base $((CREATE_BASE + 2 * k * N_CREATE)) --max-time "${MAX_SECS}s"
		wait_profile
		server_cpu pg "create-pg-$k" run "$PGB" insert --dsn "$DSN" -n "$N_CREATE" -c "$CONC" --lfn-base $((CREATE_BASE + 2 * k * N_CREATE)) --max-time "${MAX_SECS}s"
	done
	[ "$(mappings)" -eq $((before + REPEATS * N_CREATE)) ] || die "rlsd holds $(mappings) mappings after the creates, want $((before + REPEATS * N_CREATE))"
	median create-rls
	median create-pg
	row "durable single creates c=$CONC (writes/s)" "$(fmt "$(pg_field create-rls rate_per_s)")" "$(fmt "$(pg_field create-pg rate_per_s)")" rate
	row "create server CPU per write (µs)" "$(fmt "$(pg_field create-rls server_cpu_us_per_op)" 1)" "$(fmt "$(pg_field create-pg server_cpu_us_per_op)" 1)" lat
	row "create p50 (ms)" "$(fmt "$(pg_field create-rls p50_ms)" 2)" "$(fmt "$(pg_field create-pg p50_ms)" 2)" lat
	row "create p99 (ms)" "$(fmt "$(pg_field create-rls p99_ms)" 2)" "$(fmt "$(pg_field create-pg p99_ms)" 2)" lat
}

# ---------------------------------------------------------------- d. bulk query
part_bulkquery() {
	need_loaded
	say "bulkquery: $N_BULK calls of $BULK_BATCH LFNs, c=$BULK_CONC"
	local k
	for k in $(seq "$REPEATS"); do
		profile "bulkquery-rls-$k" 3
		server_cpu rls "bulkquery-rls-$k" run "$PGB" rls-bulkquery --addr "$ADDR" -n "$N_BULK" -c "$BULK_CONC" --batch "$BULK_BATCH" --lfn-base "$BASE" --lfn-count "$N_LOAD" --max-time "${MAX_SECS}s"
		wait_profile
		server_cpu pg "bulkquery-pg-$k" run "$PGB" bulk-query --dsn "$DSN" -n "$N_BULK" -c "$BULK_CONC" --batch "$BULK_BATCH" --lfn-base "$BASE" --lfn-count "$N_LOAD" --max-time "${MAX_SECS}s"
	done
	median bulkquery-rls
	median bulkquery-pg
	row "BulkQuery $BULK_BATCH LFNs a call, c=$BULK_CONC (LFNs/s)" "$(fmt "$(pg_field bulkquery-rls names_per_s)")" "$(fmt "$(pg_field bulkquery-pg names_per_s)")" rate
	row "BulkQuery server CPU per LFN (µs)" "$(fmt "$(pg_field bulkquery-rls server_cpu_us_per_op)" 2)" "$(fmt "$(pg_field bulkquery-pg server_cpu_us_per_op)" 2)" lat
	row "BulkQuery call p50 / p99 (ms)" "$(fmt "$(pg_field bulkquery-rls p50_ms)" 2) / $(fmt "$(pg_field bulkquery-rls p99_ms)" 2)" "$(fmt "$(pg_field bulkquery-pg p50_ms)" 2) / $(fmt "$(pg_field bulkquery-pg p99_ms)" 2)" none
}

# ---------------------------------------------------------------- e. big load
# during_load NAME CMD...: run CMD (a load) while pgbench-lrc sends
# DURING_RPS lookups a second of the first N_LOAD sunums (or, without
# them, of the first sunums of the load itself, as they arrive) with the
# query subcommand NAME ("rls-query" or "query").
during_load() {
	local sub=$1 name=$2 qpid
	shift 2
	local target=(--addr "$ADDR")
	[ "$sub" = query ] && target=(--dsn "$DSN")
	# Lookups of the N_LOAD mappings when they are there, else of sunums
	# the big load has (the first 1,000, waited for).
	local base=$BASE count=$N_LOAD
	if [ "$LOADED" != 1 ]; then base=$BIG_BASE count=1000; fi
	printf '$ (during) %s\n' "$PGB $sub ${target[*]} --rps $DURING_RPS" >>"$OUT/commands.txt"
	"${CLIENT[@]}" "$PGB" "$sub" "${target[@]}" -n $((DURING_RPS * MAX_SECS)) -c "$CONC" --rps "$DURING_RPS" \
		--lfn-base "$base" --lfn-count "$count" --max-time "${MAX_SECS}s" >"$OUT/$name.json" 2>"$OUT/$name.err" &
	qpid=$!
	"$@"
	kill -TERM "$qpid" 2>/dev/null || true
	wait "$qpid" || true
	[ -s "$OUT/$name.json" ] || die "$name: no result ($(tail -n 3 "$OUT/$name.err"))"
}

part_big() {
	say "big: bulk load of $N_BIG more mappings, lookups at $DURING_RPS/s during it"
	gen "$WORK/big.tsv" "$N_BIG" "$BIG_BASE"
	if [ "$LOADED" != 1 ]; then
		# The lookups need some mappings from the start.
		head -n 1000 "$WORK/big.tsv" >"$WORK/big-head.tsv"
		tail -n +1001 "$WORK/big.tsv" >"$WORK/big-tail.tsv"
		run "$RLSCTL" --server "$ADDR" lrc bulk create -f "$WORK/big-head.tsv" >/dev/null
		run "$PGB" copy --dsn "$DSN" -f "$WORK/big-head.tsv" >/dev/null
		mv "$WORK/big-tail.tsv" "$WORK/big.tsv"
	fi
	local n
	n=$(wc -l <"$WORK/big.tsv")
	local before t0 t1 t2
	before=$(mappings)
	t0=$(date +%s.%N)
	during_load rls-query big-during-rls run timeout "$MAX_SECS" "$RLSCTL" --server "$ADDR" lrc bulk create -f "$WORK/big.tsv" >"$OUT/big-rls.txt"
	t1=$(date +%s.%N)
	[ "$(mappings)" -eq $((before + n)) ] || die "rlsd holds $(mappings) mappings after the big load, want $((before + n))"
	settle
	t2=$(date +%s.%N)
	during_load query big-during-pg run "$PGB" copy --dsn "$DSN" -f "$WORK/big.tsv" --max-time "${MAX_SECS}s" >"$OUT/big-pg.json"
	[ "$(pg_field big-pg ok)" -eq "$n" ] || die "COPY loaded $(pg_field big-pg ok) rows, want $n"
	local secs settled
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	settled=$(awk -v a="$t0" -v b="$t2" 'BEGIN { print b - a }')
	row "bulk load $n more (mappings/s)" "$(fmt "$(awk -v n="$n" -v s="$secs" 'BEGIN { print n / s }')")" "$(fmt "$(pg_field big-pg rate_per_s)")" rate
	row "bulk load $n more incl. rls settling (mappings/s)" "$(fmt "$(awk -v n="$n" -v s="$settled" 'BEGIN { print n / s }')")" "$(fmt "$(pg_field big-pg rate_per_s)")" rate
	row "QueryLFN p50 / p99 at $DURING_RPS/s during that load (ms)" "$(fmt "$(pg_field big-during-rls p50_ms)" 3) / $(fmt "$(pg_field big-during-rls p99_ms)" 3)" "$(fmt "$(pg_field big-during-pg p50_ms)" 3) / $(fmt "$(pg_field big-during-pg p99_ms)" 3)" none
	row "QueryLFN p99 during that load (ms)" "$(fmt "$(pg_field big-during-rls p99_ms)" 3)" "$(fmt "$(pg_field big-during-pg p99_ms)" 3)" lat
}

# ---------------------------------------------------------------- f. ghz
part_ghz() {
	need_loaded
	[ -x "$GHZ" ] || die "bin/ghz missing"
	say "ghz: QueryLFN and Create through ghz, rls only"
	local proto=(--insecure --import-paths "$ROOT/api/proto" --proto "$ROOT/api/proto/rls/v1/catalog.proto")
	local qdata="{\"name\":\"{{randomInt $BASE $((BASE + N_LOAD))}}\"}"
	local cbase=$((CREATE_BASE + 50 * N_CREATE))
	local cdata="{\"lfn\":\"{{add $cbase .RequestNumber}}\",\"pfn\":\"/SUM9/D{{add $cbase .RequestNumber}}\"}"
	run timeout "$MAX_SECS" "$GHZ" "${proto[@]}" --timeout 20s -O json -o "$OUT/ghz-query.json" --call rls.v1.Catalog/QueryLFN -d "$qdata" -c "$CONC" -n "$N_QUERY" "$ADDR"
	run timeout "$MAX_SECS" "$GHZ" "${proto[@]}" --timeout 20s -O json -o "$OUT/ghz-create.json" --call rls.v1.Catalog/Create -d "$cdata" -c "$CONC" -n "$N_CREATE" "$ADDR"
	local f
	for f in ghz-query ghz-create; do
		[ "$(jq '[.statusCodeDistribution // {} | to_entries[] | select(.key != "OK") | .value] | add // 0' "$OUT/$f.json")" -eq 0 ] ||
			die "$f: failed calls: $(jq -c '.errorDistribution' "$OUT/$f.json")"
		row "ghz $f (calls/s; p99 ms)" "$(fmt "$(jq '.rps' "$OUT/$f.json")") ($(fmt "$(jq '.latencyDistribution[] | select(.percentage == 99) | .latency / 1e6' "$OUT/$f.json")" 2))" "" none
	done
}

# ---------------------------------------------------------------- run
start_servers
has_part load && part_load
has_part query && part_query
has_part bulkquery && part_bulkquery
has_part create && part_create
has_part big && part_big
has_part ghz && part_ghz

say "results"
{
	echo "## rls LRC vs PostgreSQL, $STAMP"
	echo
	sed 's/^/    /' "$OUT/machine.txt"
	echo
	echo "Both durable (rlsd without --no-sync; $(cat "$OUT"/*-pg*.json 2>/dev/null | grep -oE 'PostgreSQL [0-9.]+ fsync=[a-z]+ synchronous_commit=[a-z]+' | head -n1))."
	echo "One Go harness (bin/pgbench-lrc) drives both: generated gRPC stub over one connection for rls, one pgx connection per client for PostgreSQL."
	echo
	echo "| metric | rls | PostgreSQL | rls ÷ pg (rates), pg ÷ rls (latencies) |"
	echo "| --- | ---: | ---: | ---: |"
	awk -F'\t' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$OUT/rows.tsv"
	echo
	echo "loadavg after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "Raw outputs: scripts/out/$STAMP/"
} | tee "$OUT/results.md"
