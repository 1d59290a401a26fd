#!/usr/bin/env bash
# bench-overload.sh — overload rlsd on loopback and watch what it does.
#
# Not a test: it asserts nothing about speed. It starts one rlsd (role lrc,
# --no-sync) with N mappings plus one greedy LFN (GREEDY_PFNS PFNs of about
# GREEDY_PFN_BYTES bytes), then for DURATION seconds runs at the same time
#   a. ghz on rls.v1.Catalog/QueryLFN, concurrency CONC over CONNS
#      connections, random loaded LFNs;
#   b. ghz on rls.v1.Catalog/BulkQuery, GREEDY_CONC at a time, each asking
#      for the greedy LFN GREEDY_REPEAT times in one request (a reply of
#      GREEDY_REPEAT x GREEDY_PFNS x GREEDY_PFN_BYTES bytes: 2 GB by
#      default, far past the 64 MiB message limit);
#   c. a probe (scripts/overload-probe) that asks gRPC health every 100 ms
#      on its own connection and samples rlsd's RSS from /proc.
# It prints RSS before / peak / after, each ghz run's status-code
# distribution and the health latency p50 / p99 / max during the load.
#
# On a machine of 2 CPUs or more the server runs on CPU 1 and the load on
# CPU 0 (taskset). rlsd runs under an address-space limit (RLSD_MAX_AS_GIB,
# default 8 GiB) so that a reply built in memory cannot exhaust a shared
# machine: if it is reached rlsd dies, and the script says so.
#
# Knobs: N (100000), DURATION (20), CONC (2000), CONNS (200), GREEDY_CONC
# (3), GREEDY_REPEAT (20000), GREEDY_PFNS (100), GREEDY_PFN_BYTES (1000),
# RLSD_MAX_AS_GIB (8), NO_BUILD=1, KEEP=1. Everything listens on 127.0.0.1;
# every wait is bounded. Raw outputs go to scripts/out/<timestamp>-overload/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${N:-100000}"
DURATION="${DURATION:-20}"
CONC="${CONC:-2000}"
CONNS="${CONNS:-200}"
GREEDY_CONC="${GREEDY_CONC:-3}"
GREEDY_REPEAT="${GREEDY_REPEAT:-20000}"
GREEDY_PFNS="${GREEDY_PFNS:-100}"
GREEDY_PFN_BYTES="${GREEDY_PFN_BYTES:-1000}"
RLSD_MAX_AS_GIB="${RLSD_MAX_AS_GIB:-8}"
BASE=100000000

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench-overload: FAILED: %s\n' "$*" >&2; exit 1; }
run() { printf '$ %s\n' "$*" | tee -a "$OUT/commands.txt" >&2; "$@"; }

command -v jq >/dev/null || die "jq is required (apt-get install -y jq)"
command -v prlimit >/dev/null || die "prlimit (util-linux) is required"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/scripts/out/$STAMP-overload"
mkdir -p "$OUT"
: >"$OUT/commands.txt"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rls-overload.XXXXXX")"

# Server on CPU 1, load on CPU 0, when there are two.
if [ "$(nproc)" -ge 2 ]; then SRV_CPU=(taskset -c 1); CLI_CPU=(taskset -c 0); else SRV_CPU=(); CLI_CPU=(); fi

RLSD_PID=""
PIDS=()
cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	if [ -n "$RLSD_PID" ] && kill -0 "$RLSD_PID" 2>/dev/null; then
		kill -TERM "$RLSD_PID" 2>/dev/null || true
		for _ in $(seq 300); do kill -0 "$RLSD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$RLSD_PID" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ]; then
		[ -f "$OUT/rlsd.log" ] && { echo "--- last lines of rlsd.log" >&2; tail -n 20 "$OUT/rlsd.log" >&2; }
		echo "bench-overload: FAILED (exit $rc); raw outputs in $OUT" >&2
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
	go build -trimpath -o bin/overload-probe ./scripts/overload-probe
	(cd tools/bench && go build -trimpath -o "$ROOT/bin/ghz" github.com/bojand/ghz/cmd/ghz)
fi
for b in rlsd rlsctl overload-probe ghz; do [ -x "bin/$b" ] || die "bin/$b missing"; done
RLSD="$ROOT/bin/rlsd" RLSCTL="$ROOT/bin/rlsctl" PROBE="$ROOT/bin/overload-probe" GHZ="$ROOT/bin/ghz"

say "machine"
{
	echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "host:      $(uname -srm), nproc $(nproc), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "rls:       $(git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "ghz:       $(grep -E '^\s*github.com/bojand/ghz ' tools/bench/go.mod | awk '{print $2}')"
	echo "load:      N=$N DURATION=${DURATION}s CONC=$CONC CONNS=$CONNS GREEDY_CONC=$GREEDY_CONC GREEDY_REPEAT=$GREEDY_REPEAT GREEDY_PFNS=$GREEDY_PFNS GREEDY_PFN_BYTES=$GREEDY_PFN_BYTES"
	echo "cpus:      server ${SRV_CPU[*]:-any}, load ${CLI_CPU[*]:-any}; rlsd address space ≤ $RLSD_MAX_AS_GIB GiB"
	echo "loadavg:   $(cut -d' ' -f1-3 /proc/loadavg) (before the run)"
} | tee "$OUT/machine.txt" >&2

# ---------------------------------------------------------------- rlsd
say "start rlsd"
mkdir -p "$WORK/rlsd"
RLSD_CMD=("${SRV_CPU[@]}" prlimit --as=$((RLSD_MAX_AS_GIB << 30)) "$RLSD" --site bench --data "$WORK/rlsd"
	--listen 127.0.0.1:0 --roles lrc --no-sync)
printf '$ %s\n' "${RLSD_CMD[*]}" | tee -a "$OUT/commands.txt" >&2
# The subshell, taskset and prlimit each exec the next: $! is rlsd's pid.
(exec "${RLSD_CMD[@]}" >"$OUT/rlsd.log" 2>&1) &
RLSD_PID=$!
ADDR=""
for _ in $(seq 300); do # 30 s
	kill -0 "$RLSD_PID" 2>/dev/null || die "rlsd exited during start-up"
	ADDR="$(grep -oE 'addr="?127\.0\.0\.1:[0-9]+' "$OUT/rlsd.log" | head -n1 | sed -E 's/^addr="?//')" || true
	[ -n "$ADDR" ] && break
	sleep 0.1
done
[ -n "$ADDR" ] || die "rlsd logged no address within 30s"
ok=""
for _ in $(seq 100); do "$RLSCTL" --server "$ADDR" admin ping >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1; done
[ -n "$ok" ] || die "rlsd at $ADDR does not answer admin ping"

say "load $N mappings and the greedy LFN ($GREEDY_PFNS PFNs of ~$GREEDY_PFN_BYTES bytes)"
awk -v n="$N" -v base="$BASE" 'BEGIN { for (i = 0; i < n; i++) { s = base + i; printf "%d\t/SUM%d/D%d\n", s, i % 64, s } }' >"$WORK/mappings.tsv"
awk -v n="$GREEDY_PFNS" -v b="$GREEDY_PFN_BYTES" 'BEGIN {
	pad = sprintf("%*s", b - 24, ""); gsub(/ /, "x", pad)
	for (i = 0; i < n; i++) printf "greedy\t/greedy/%s/%06d\n", pad, i }' >"$WORK/greedy.tsv"
run "$RLSCTL" --server "$ADDR" lrc bulk create -f "$WORK/mappings.tsv" >"$OUT/load.txt" 2>&1
head -n 1 "$WORK/greedy.tsv" | run "$RLSCTL" --server "$ADDR" lrc bulk create >>"$OUT/load.txt" 2>&1
tail -n +2 "$WORK/greedy.tsv" | run "$RLSCTL" --server "$ADDR" lrc bulk add >>"$OUT/load.txt" 2>&1
"$RLSCTL" --server "$ADDR" -o json admin stats >"$OUT/stats.json"
want=$((N + GREEDY_PFNS))
[ "$(jq '.mappings' "$OUT/stats.json")" -eq "$want" ] || die "rlsd holds $(jq '.mappings' "$OUT/stats.json") mappings, want $want"
awk -v n="$GREEDY_REPEAT" 'BEGIN { printf "{\"type\":\"OBJECT_TYPE_LFN\",\"names\":["; for (i = 0; i < n; i++) printf "%s\"greedy\"", (i ? "," : ""); print "]}" }' >"$WORK/greedy.json"

# ---------------------------------------------------------------- load
say "overload for ${DURATION}s"
PROTO_ARGS=(--insecure --import-paths "$ROOT/api/proto" --proto "$ROOT/api/proto/rls/v1/catalog.proto")
rss_before="$(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$RLSD_PID/status")"
run "${CLI_CPU[@]}" "$PROBE" -addr "$ADDR" -pid "$RLSD_PID" -interval 100ms -duration "$((DURATION + 10))s" >"$OUT/probe.json" &
PROBE_PID=$!
PIDS+=("$PROBE_PID")
# ghz exits on its own after -z; timeout bounds it if it does not.
run timeout $((DURATION + 60)) "${CLI_CPU[@]}" "$GHZ" "${PROTO_ARGS[@]}" --call rls.v1.Catalog/QueryLFN \
	-d "{\"name\":\"{{randomInt $BASE $((BASE + N))}}\"}" -c "$CONC" --connections "$CONNS" -z "${DURATION}s" \
	--timeout 20s -O json -o "$OUT/ghz-query.json" "$ADDR" &
Q_PID=$!
PIDS+=("$Q_PID")
run timeout $((DURATION + 60)) "${CLI_CPU[@]}" "$GHZ" "${PROTO_ARGS[@]}" --call rls.v1.Catalog/BulkQuery \
	-D "$WORK/greedy.json" -c "$GREEDY_CONC" --connections "$GREEDY_CONC" -z "${DURATION}s" \
	--timeout 30s -O json -o "$OUT/ghz-greedy.json" "$ADDR" &
G_PID=$!
PIDS+=("$G_PID")
wait "$Q_PID" || echo "ghz (QueryLFN) exited with $?" >&2
wait "$G_PID" || echo "ghz (BulkQuery) exited with $?" >&2
wait "$PROBE_PID" || die "the probe failed"
alive=yes
kill -0 "$RLSD_PID" 2>/dev/null || alive=no

# ---------------------------------------------------------------- report
codes() { jq -r '(.statusCodeDistribution // {}) | to_entries | map("\(.key) \(.value)") | join(", ")' "$1" 2>/dev/null || echo "no report"; }
p() { jq -r ".$1" "$OUT/probe.json"; }
say "results"
{
	cat "$OUT/machine.txt"
	echo
	echo "| figure | value |"
	echo "| --- | --- |"
	echo "| rlsd RSS before (MiB) | $rss_before |"
	echo "| rlsd RSS peak, sampled / kernel high-water mark (MiB) | $(p rss_peak_sampled_mib | xargs printf '%.0f') / $(p rss_hwm_mib | xargs printf '%.0f') |"
	echo "| rlsd RSS after (MiB) | $(p rss_end_mib | xargs printf '%.0f') |"
	echo "| rlsd alive at the end | $alive |"
	echo "| QueryLFN calls, rate (/s) | $(jq '.count' "$OUT/ghz-query.json" 2>/dev/null), $(jq '.rps | floor' "$OUT/ghz-query.json" 2>/dev/null) |"
	echo "| QueryLFN status codes | $(codes "$OUT/ghz-query.json") |"
	echo "| QueryLFN p50 / p99 (ms) | $(jq -r '[.latencyDistribution[] | select(.percentage == 50 or .percentage == 99) | .latency / 1e6 | floor] | join(" / ")' "$OUT/ghz-query.json" 2>/dev/null) |"
	echo "| greedy BulkQuery calls | $(jq '.count' "$OUT/ghz-greedy.json" 2>/dev/null) |"
	echo "| greedy BulkQuery status codes | $(codes "$OUT/ghz-greedy.json") |"
	echo "| health calls during the load (failed) | $(p calls) ($(p failed): $(jq -c '.codes' "$OUT/probe.json")) |"
	echo "| health latency p50 / p99 / max (ms) | $(p health_p50_ms | xargs printf '%.1f') / $(p health_p99_ms | xargs printf '%.1f') / $(p health_max_ms | xargs printf '%.1f') |"
	echo
	echo "Error messages (greedy): $(jq -c '.errorDistribution // {}' "$OUT/ghz-greedy.json" 2>/dev/null | cut -c1-400)"
	echo "Error messages (QueryLFN): $(jq -c '.errorDistribution // {}' "$OUT/ghz-query.json" 2>/dev/null | cut -c1-400)"
	echo "(ghz cancels the calls in flight when -z ends: a few UNAVAILABLE \"closed network connection\" or CANCELED are its own.)"
} | tee "$OUT/summary.md"
