#!/usr/bin/env bash
# bench-index.sh — the replica location index (RLI) figures, side by side with
# the published Globus RLS figures (Chervenak et al., "Performance and
# Scalability of a Replica Location Service", HPDC 2004).
#
# End to end, with real processes on 127.0.0.1:
#   a. a site (rlsd --roles lrc) holding N sunum mappings sends a full LIST
#      update to one RLI and a full BLOOM update to another: the time of
#      `rlsctl admin update --target ADDR` (snapshot scan, build, stream, the
#      RLI's decode, index and fsync, the acknowledgement), REPEAT times each,
#      and the RLIs' resident memory before and after (per indexed LFN)
# In process (go test -bench, packages index and api):
#   b. Bloom filter build from names in memory, 1M and 10M, and from a 1M-LFN
#      catalog snapshot
#   c. Locate with 10, 100 and 1,000 site filters (bit-sliced), against one
#      bloom/v3 Test per filter as the baseline, and with as many list sites
#   d. delta add -> locatable latency (catalog write, delta over gRPC, RLI
#      apply; package api)
#   e. a 1M-LFN list applied and synced by the index, with its bytes per LFN
#
# Knobs: N (1000000), REPEAT (3), BENCH_COUNT (3), NO_BUILD=1, KEEP=1.
# Raw outputs go to scripts/out/<timestamp>-index/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${N:-1000000}"
REPEAT="${REPEAT:-3}"
BENCH_COUNT="${BENCH_COUNT:-3}"
BASE=100000000

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench-index: FAILED: %s\n' "$*" >&2; exit 1; }
run() { printf '$ %s\n' "$*" | tee -a "$OUT/commands.txt" >&2; "$@"; }

command -v jq >/dev/null || die "jq is required (apt-get install -y jq)"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/scripts/out/$STAMP-index"
mkdir -p "$OUT"
: >"$OUT/commands.txt"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rls-bench-index.XXXXXX")"

PIDS=()
cleanup() {
	local rc=$?
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${NO_BUILD:-}" != 1 ]; then
	say "build"
	make --no-print-directory build >&2
fi
RLSD="$ROOT/bin/rlsd"
RLSCTL="$ROOT/bin/rlsctl"

# start NAME ARGS...: starts rlsd, waits for its address, sets ADDR_<NAME>
# and PID_<NAME>.
start() {
	local name=$1
	shift
	mkdir -p "$WORK/$name"
	printf '$ %s\n' "$RLSD --site $name --data $WORK/$name --listen 127.0.0.1:0 $*" | tee -a "$OUT/commands.txt" >&2
	"$RLSD" --site "$name" --data "$WORK/$name" --listen 127.0.0.1:0 "$@" >"$OUT/$name.log" 2>&1 &
	local pid=$! addr=""
	PIDS+=("$pid")
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || die "rlsd $name exited during start-up: $(tail -5 "$OUT/$name.log")"
		addr="$(grep -oE 'addr="?127\.0\.0\.1:[0-9]+' "$OUT/$name.log" | head -n1 | sed -E 's/^addr="?//')" || true
		[ -n "$addr" ] && break
		sleep 0.1
	done
	[ -n "$addr" ] || die "rlsd $name logged no address"
	printf -v "ADDR_${name//-/_}" '%s' "$addr"
	printf -v "PID_${name//-/_}" '%s' "$pid"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

say "machine"
{
	echo "kernel: $(uname -sr)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
	echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "go: $(go version | cut -d' ' -f3)"
	echo "rls: $(git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

say "start two RLIs and a site sending list to one and Bloom to the other"
start rli-list --roles rli
start rli-bloom --roles rli
cat >"$WORK/site.yaml" <<EOF
update-targets:
  - addr: $ADDR_rli_list
    mode: list
    interval: 24h
    validity: 48h
  - addr: $ADDR_rli_bloom
    mode: bloom
    interval: 24h
    validity: 48h
EOF
start site --roles lrc --config "$WORK/site.yaml"
ctl() { "$RLSCTL" --server "$ADDR_site" "$@"; }

say "load $N sunum mappings"
awk -v n="$N" -v b="$BASE" 'BEGIN { for (i = 0; i < n; i++) printf "%d\t/SUM%d/D%d\n", b + i, i % 64, b + i }' >"$WORK/mappings.tsv"
run "$RLSCTL" --server "$ADDR_site" lrc bulk create -f "$WORK/mappings.tsv" >"$OUT/bulk.txt"
# Let the catalog's compactions settle, so that they do not share the CPUs
# with the updates measured next.
deadline=$(($(date +%s) + 180))
quiet=0
while [ "$quiet" -lt 5 ]; do
	ctl -o json admin stats >"$OUT/site-stats.json"
	if [ "$(jq '.compactions_running' "$OUT/site-stats.json")" -eq 0 ]; then quiet=$((quiet + 1)); else quiet=0; fi
	[ "$(date +%s)" -lt "$deadline" ] || die "compactions did not settle in 180 s"
	sleep 0.2
done
[ "$(jq '.lfns' "$OUT/site-stats.json")" -eq "$N" ] || die "the site holds $(jq '.lfns' "$OUT/site-stats.json") LFNs, want $N"

# update TARGET NAME: times `admin update --target`, REPEAT times, and
# appends the seconds to $OUT/NAME-update.txt.
update() {
	local target=$1 name=$2
	: >"$OUT/$name-update.txt"
	for i in $(seq "$REPEAT"); do
		local t0 t1
		t0=$(date +%s.%N)
		ctl -o json admin update --target "$target" >"$OUT/$name-update-$i.json" || die "admin update --target $target failed: $(cat "$OUT/$name-update-$i.json")"
		t1=$(date +%s.%N)
		awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >>"$OUT/$name-update.txt"
	done
	echo "$name: $(tr '\n' ' ' <"$OUT/$name-update.txt") s" >&2
}

say "full list updates of $N LFNs"
RSS0_LIST=$(rss_kib "$PID_rli_list")
update "$ADDR_rli_list" list
RSS1_LIST=$(rss_kib "$PID_rli_list")
say "full Bloom updates of $N LFNs"
RSS0_BLOOM=$(rss_kib "$PID_rli_bloom")
update "$ADDR_rli_bloom" bloom
RSS1_BLOOM=$(rss_kib "$PID_rli_bloom")

say "check: both indexes locate a loaded sunum, and the Bloom one knows how"
"$RLSCTL" --server "$ADDR_rli_list" -o json locate "$((BASE + N / 2))" >"$OUT/locate-list.json"
"$RLSCTL" --server "$ADDR_rli_bloom" -o json locate "$((BASE + N / 2))" --verify >"$OUT/locate-bloom.json"
[ "$(jq -r '.[0].sites[0].known_by' "$OUT/locate-list.json")" = list ] || die "list RLI: $(cat "$OUT/locate-list.json")"
[ "$(jq -r '.[0].sites[0].verification' "$OUT/locate-bloom.json")" = confirmed ] || die "bloom RLI: $(cat "$OUT/locate-bloom.json")"
"$RLSCTL" --server "$ADDR_rli_list" -o json admin stats >"$OUT/rli-list-stats.json"
"$RLSCTL" --server "$ADDR_rli_bloom" -o json admin stats >"$OUT/rli-bloom-stats.json"

say "in-process benchmarks (packages index and api)"
run go test ./index ./api -run '^$' -count "$BENCH_COUNT" -timeout 30m \
	-bench 'BenchmarkBloomBuild|BenchmarkLocate|BenchmarkProbeEachFilter|BenchmarkDeltaVisible|BenchmarkReceiveList1M' \
	-benchtime 3x | tee "$OUT/go-bench.txt" >&2

# median VALUES...: the median of the numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# metric NAME UNIT: the values of UNIT on the benchmark lines starting NAME.
metric() { awk -v name="$1" -v unit="$2" '$1 ~ "^"name"(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i + 1) == unit) print $i }' "$OUT/go-bench.txt"; }
ns_s() { awk '{ printf "%.3f\n", $1 / 1e9 }'; }
list_s=$(median <"$OUT/list-update.txt")
bloom_s=$(median <"$OUT/bloom-update.txt")

say "results"
{
	echo "## Index figures (median of the runs; every run in $OUT)"
	echo
	cat "$OUT/machine.txt" | sed 's/^/    /'
	echo
	echo "| figure | rls | runs | Globus RLS (published) | target |"
	echo "| --- | --- | --- | --- | --- |"
	echo "| full list update of $N LFNs, end to end (s) | $list_s | $(tr '\n' ' ' <"$OUT/list-update.txt") | 831 s (1M) | <= 3 s |"
	echo "| full Bloom update of $N LFNs, end to end incl. build (s) | $bloom_s | $(tr '\n' ' ' <"$OUT/bloom-update.txt") | — | |"
	echo "| Bloom build, 1M names in memory (s) | $(metric 'BenchmarkBloomBuildNames/1M' ns/op | ns_s | median) | $(metric 'BenchmarkBloomBuildNames/1M' ns/op | ns_s | tr '\n' ' ') | 18.4 s (1M) | <= 0.3 s |"
	echo "| Bloom build, 10M names in memory (s) | $(metric 'BenchmarkBloomBuildNames/10M' ns/op | ns_s | median) | $(metric 'BenchmarkBloomBuildNames/10M' ns/op | ns_s | tr '\n' ' ') | — | <= 3 s |"
	echo "| Bloom build from a 1M-LFN catalog snapshot (s) | $(metric 'BenchmarkBloomBuild1M/ScanAndBuild' ns/op | ns_s | median) | $(metric 'BenchmarkBloomBuild1M/ScanAndBuild' ns/op | ns_s | tr '\n' ' ') | 18.4 s | |"
	for f in 10 100 1000; do
		echo "| Locate, $f site filters (LFNs/s) | $(metric "BenchmarkLocate/filters=$f" lfns/s | median) | $(metric "BenchmarkLocate/filters=$f" lfns/s | tr '\n' ' ') | ~14,000/s at 1, falling with more filters | >= 200,000 at 1,000 |"
		echo "| one Test per filter, $f filters (LFNs/s, baseline) | $(metric "BenchmarkProbeEachFilter/filters=$f" lfns/s | median) | $(metric "BenchmarkProbeEachFilter/filters=$f" lfns/s | tr '\n' ' ') | | |"
	done
	for f in 10 100 1000; do
		echo "| Locate, $f list sites (LFNs/s) | $(metric "BenchmarkLocateLists/lists=$f" lfns/s | median) | $(metric "BenchmarkLocateLists/lists=$f" lfns/s | tr '\n' ' ') | | |"
	done
	echo "| delta add -> locatable, p50 (ms) | $(metric BenchmarkDeltaVisible p50-ms | median) | $(metric BenchmarkDeltaVisible p50-ms | tr '\n' ' ') | (immediate mode: 30 s buffer by default) | <= 1,000 ms |"
	echo "| delta add -> locatable, max (ms) | $(metric BenchmarkDeltaVisible max-ms | median) | $(metric BenchmarkDeltaVisible max-ms | tr '\n' ' ') | | |"
	echo "| RLI memory per LFN, list (index structures, B) | $(metric BenchmarkReceiveList1M index-B/lfn | median) | $(metric BenchmarkReceiveList1M index-B/lfn | tr '\n' ' ') | | |"
	echo "| RLI resident memory growth per LFN, list, rlsd process (B) | $(awk -v a="$RSS0_LIST" -v b="$RSS1_LIST" -v n="$N" 'BEGIN { printf "%.1f", (b - a) * 1024 / n }') | RSS $RSS0_LIST -> $RSS1_LIST KiB | | |"
	echo "| RLI resident memory growth per LFN, Bloom, rlsd process (B) | $(awk -v a="$RSS0_BLOOM" -v b="$RSS1_BLOOM" -v n="$N" 'BEGIN { printf "%.1f", (b - a) * 1024 / n }') | RSS $RSS0_BLOOM -> $RSS1_BLOOM KiB | | |"
} | tee "$OUT/results.md"
