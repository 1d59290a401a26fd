#!/usr/bin/env bash
# bench-mirror.sh — the mirror across the demo federation (scripts/demo.sh),
# each figure beside a baseline measured in the same run, on loopback.
#
#   1. small  SMALL_N (10,000) small units (1-4 files, ≤ 64 KiB each unit) of
#             two series at jsoc, enqueued at nso (tier 1) and sao (tier 2)
#             at once: units/s from the enqueue until each mirror holds
#             them all (Locate with verify, pulls, verification, placement
#             and registration included). Baseline: the JMD's way, one
#             `scp -r` per unit, SCP_PAR (8) in parallel, to a private sshd
#             on loopback, SCP_N (100) of the same units (transfer only:
#             nothing registered; scp runs at about a unit a second on a
#             busy 2-CPU machine, so it is timed on a sample). Target ≥ 500 units/s (the JMD: ~1/s).
#   2. wan    WAN_N (1,000) of those units mirrored by a tier-1 site whose
#             every link (to the index, to jsoc, and the index's verify
#             calls to jsoc) goes through toxiproxy with WAN_RTT_MS (50) of
#             round trip (latency toxic of RTT/2 on each direction; this
#             kernel has no netem), against one `scp -r` per unit, SCP_PAR
#             in parallel, to the sshd through the same kind of proxy,
#             timed on SCP_N of the units and projected to WAN_N.
#             Target ≥ 20× faster than scp.
#   3. big    BIG_REPS (3) units of one BIG_MIB (1024) MiB file: MB/s of
#             the mirror (enqueue → DONE at nso, from the record's enqueued
#             and done times) against `rlsctl transfer pull` of the same
#             unit from the same jsoc in the same run. Before each timed
#             run jsoc has the unit's digests cached (an untimed manifest
#             call) and the page cache is dropped (root). Target ≥ 90%.
#   4. rss    RSS_N (1,000,000) sunums enqueued at a tier-2 mirror whose
#             index knows none of them, so they go NQUE → PNDG and stay (the
#             re-check interval is 10 minutes): rlsd's RSS (VmRSS, VmHWM)
#             and the store's size on disk as the store grows, in bytes per
#             sunum. Bounded: the queue is read from the store a window at
#             a time, not held in memory.
#
# CPUs (PIN=1, the default, on a machine with ≥ 2 CPUs): the sending side
# (rli, jsoc, sshd) runs under `taskset -c 1`, the receiving side (the
# mirrors nso and sao, rlsctl transfer pull, the scp clients) under
# `taskset -c 0`; toxiproxy is not pinned (it is the network). Both methods
# of a comparison get the same placement.
#
# Every daemon is a real rlsd on 127.0.0.1 with durable writes (no
# --no-sync). Every loop is bounded by count and by MAX_SECS (600) seconds;
# every command by `timeout`. Raw outputs, logs and the results table go to
# scripts/out/<stamp>-mirror/ (gitignored); generated units are kept in
# scripts/out/bench-mirror-data/ between runs.
#
# Requirements: root (sshd, drop_caches), openssh-server (installed with
# apt-get when missing), toxiproxy-server v2.12.0 (built with `go install`
# into scripts/out/tools/ when not on PATH), jq, curl, Go.
#
# Knobs: PARTS ("small wan big rss"), SMALL_N, SCP_N, SCP_PAR, WAN_N,
# WAN_RTT_MS, BIG_MIB, BIG_REPS, RSS_N, PIN, MAX_SECS, SETTLE (3), NO_BUILD=1,
# PPROF=1 (rlsd --pprof; CPU profiles of nso, sao and jsoc over the first
# PPROF_SECS (10) seconds of part 1, in the output directory),
# NO_INSTALL=1, KEEP=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PARTS="${PARTS:-small wan big rss}"
SMALL_N="${SMALL_N:-10000}"
SCP_N="${SCP_N:-100}"
SCP_PAR="${SCP_PAR:-8}"
WAN_N="${WAN_N:-1000}"
WAN_RTT_MS="${WAN_RTT_MS:-50}"
BIG_MIB="${BIG_MIB:-1024}"
BIG_REPS="${BIG_REPS:-3}"
RSS_N="${RSS_N:-1000000}"
PIN="${PIN:-1}"
MAX_SECS="${MAX_SECS:-600}"
PPROF="${PPROF:-0}"
PPROF_SECS="${PPROF_SECS:-10}"
SETTLE="${SETTLE:-3}"
SMALL_BASE=200000000
BIG_BASE=400000000
RSS_BASE=500000000
SERIES=hmi.m_45s,aia.lev1
TOXI_VERSION=v2.12.0

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench-mirror: FAILED: %s\n' "$*" >&2; exit 1; }
# run prints a command to stderr and to the command log, then runs it.
run() { printf '$ %s\n' "$*" | tee -a "$OUT/commands.txt" >&2; "$@"; }
has_part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
for p in $PARTS; do case $p in small | wan | big | rss) ;; *) die "unknown part $p in PARTS (small wan big rss)" ;; esac; done
[ "$SCP_N" -le "$SMALL_N" ] && [ "$WAN_N" -le "$SMALL_N" ] || die "SCP_N and WAN_N must be ≤ SMALL_N"
[ "$(id -u)" -eq 0 ] || die "run as root: the scp baseline logs in to a private sshd as root, and the page cache is dropped"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
while ! mkdir -p "$ROOT/scripts/out" || ! mkdir "$ROOT/scripts/out/$STAMP-mirror" 2>/dev/null; do
	sleep 1
	STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
done
OUT="$ROOT/scripts/out/$STAMP-mirror"
: >"$OUT/commands.txt"
DATA="$ROOT/scripts/out/bench-mirror-data"
SUMS="$DATA/sums"
mkdir -p "$SUMS"
SUMS="$(realpath "$SUMS")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rls-bench-mirror.XXXXXX")"
chmod 0755 "$WORK"

# Processes this script started, by name; cleanup stops them all.
declare -A PID ADDR HTTP
exec 3>&2
stop_pid() { # PID: SIGTERM, 30 s, SIGKILL
	local pid=$1
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local rc=$?
	for name in "${!PID[@]}"; do stop_pid "${PID[$name]}"; done
	if [ "$rc" -ne 0 ]; then
		for f in "$OUT"/*.log; do
			[ -f "$f" ] && { echo "--- last lines of $f" >&3; tail -n 15 "$f" >&3; }
		done
		echo "bench-mirror: FAILED (exit $rc); raw outputs in $OUT" >&3
	fi
	if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK" >&3; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# pin CPU CMD...: CMD on that CPU when pinning.
SRV_CPU=1 DST_CPU=0
# pin is for commands run in the foreground or in a pipeline; a daemon
# started with & is started through pinned CPU, so that $! is its own pid
# (taskset execs it), not that of a subshell.
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then
	pinned() { PINNED=(taskset -c "$1"); }
	pin() { local c=$1; shift; taskset -c "$c" "$@"; }
	PIN_NOTE="senders (rli, jsoc, sshd) on CPU $SRV_CPU, receivers (nso, sao, rlsctl transfer pull, scp) on CPU $DST_CPU (taskset -c); toxiproxy unpinned"
else
	pinned() { PINNED=(); }
	pin() { shift; "$@"; }
	PIN_NOTE="not pinned"
fi

# ---------------------------------------------------------------- tools
missing=""
[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
command -v ssh-keygen >/dev/null || missing="$missing openssh-client"
command -v jq >/dev/null || missing="$missing jq"
command -v curl >/dev/null || missing="$missing curl"
if [ -n "$missing" ]; then
	[ "${NO_INSTALL:-}" != 1 ] || die "missing:$missing (NO_INSTALL=1)"
	say "install$missing"
	# policy-rc.d keeps the package's own sshd from being started on port 22.
	created=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d; created=1; fi
	run timeout "$MAX_SECS" apt-get update -qq >&2
	# shellcheck disable=SC2086 # word splitting of the package list is wanted
	DEBIAN_FRONTEND=noninteractive run timeout "$MAX_SECS" apt-get install -y -qq --no-install-recommends $missing >&2
	[ -n "$created" ] && rm -f /usr/sbin/policy-rc.d
fi
TOXI="$(command -v toxiproxy-server || true)"
if has_part wan && [ -z "$TOXI" ]; then
	TOXI="$ROOT/scripts/out/tools/toxiproxy-server-$TOXI_VERSION"
	if [ ! -x "$TOXI" ]; then
		say "build toxiproxy-server $TOXI_VERSION"
		mkdir -p "$ROOT/scripts/out/tools/gobin"
		# The module's server command is cmd/server (the release binaries
		# call it toxiproxy-server).
		GOBIN="$ROOT/scripts/out/tools/gobin" run timeout "$MAX_SECS" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXI_VERSION" >&2
		mv "$ROOT/scripts/out/tools/gobin/server" "$TOXI"
	fi
fi

if [ "${NO_BUILD:-}" != 1 ]; then
	say "build"
	make --no-print-directory build >&2
	go build -o bin/mkunits ./scripts/mkunits
fi
RLSD="$ROOT/bin/rlsd" RLSCTL="$ROOT/bin/rlsctl" MKUNITS="$ROOT/bin/mkunits"
[ -x "$RLSD" ] && [ -x "$RLSCTL" ] && [ -x "$MKUNITS" ] || die "bin/rlsd, bin/rlsctl or bin/mkunits missing"
"$RLSCTL" mirror --help 2>&1 | grep -q enqueue || die "this rlsctl has no 'mirror' commands"

DROP=""
if (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then DROP=1; fi
drop_caches() { sync; [ -n "$DROP" ] && echo 3 >/proc/sys/vm/drop_caches; sleep "$SETTLE"; return 0; }

say "machine"
{
	echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel:   $(uname -srm)"
	echo "nproc:    $(nproc)"
	echo "cpu:      $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "memory:   $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "disk:     $(df -h --output=source,fstype,size,avail "$SUMS" | tail -n1 | tr -s ' ') (units in $SUMS, sites in $WORK)"
	echo "go:       $(go version 2>/dev/null || echo none)"
	echo "rls:      $(git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "ssh:      $(ssh -V 2>&1)"
	echo "toxiproxy: ${TOXI:-not used} ($TOXI_VERSION)"
	echo "pinning:  $PIN_NOTE"
	echo "cache:    $([ -n "$DROP" ] && echo "page cache dropped before each timed run of part 3" || echo "page cache NOT dropped (not writable)")"
	echo "loadavg:  $(cut -d' ' -f1-3 /proc/loadavg) (at the start; the machine is shared, figures move with its load)"
} | tee "$OUT/machine.txt" >&2

# ---------------------------------------------------------------- helpers
# free_port: a loopback TCP port nothing listens on now.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 20000))
		ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return 0; }
	done
	die "no free loopback port found"
}

# start_rlsd NAME CPU ARGS...: rlsd --site NAME on a free loopback port
# (gRPC and HTTP), data in $WORK/NAME; sets ADDR[NAME], HTTP[NAME], PID[NAME].
start_rlsd() {
	local name=$1 cpu=$2
	shift 2
	mkdir -p "$WORK/$name"
	local log="$OUT/rlsd-$name.log"
	local args=(--site "$name" --data "$WORK/$name" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 "$@")
	[ "$PPROF" = 1 ] && args+=(--pprof)
	printf '$ taskset -c %s rlsd %s\n' "$cpu" "${args[*]}" >>"$OUT/commands.txt"
	pinned "$cpu"
	"${PINNED[@]}" "$RLSD" "${args[@]}" >"$log" 2>&1 &
	PID[$name]=$!
	local line=""
	for _ in $(seq 300); do # 30 s
		kill -0 "${PID[$name]}" 2>/dev/null || die "rlsd $name exited during start-up (log $log)"
		line="$(grep -m1 'rlsd serving' "$log" || true)"
		[ -n "$line" ] && break
		sleep 0.1
	done
	[ -n "$line" ] || die "rlsd $name logged no 'rlsd serving' within 30s"
	ADDR[$name]="$(printf '%s' "$line" | grep -oE '[^_]addr="?127\.0\.0\.1:[0-9]+' | head -n1 | sed -E 's/^.addr="?//')"
	HTTP[$name]="$(printf '%s' "$line" | grep -oE 'http_addr="?127\.0\.0\.1:[0-9]+' | head -n1 | sed -E 's/^http_addr="?//')"
	local ok=""
	for _ in $(seq 100); do "$RLSCTL" --server "${ADDR[$name]}" admin ping >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1; done
	[ -n "$ok" ] || die "rlsd $name at ${ADDR[$name]} does not answer admin ping"
}
# stop_rlsd NAME...: SIGTERM; each must exit 0 within 60 s.
stop_rlsd() {
	local name pid rc
	for name in "$@"; do
		pid=${PID[$name]}
		kill -TERM "$pid" 2>/dev/null || true
	done
	for name in "$@"; do
		pid=${PID[$name]}
		for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; die "rlsd $name still running 60s after SIGTERM; killed"; }
		rc=0
		wait "$pid" || rc=$?
		unset "PID[$name]"
		[ "$rc" -eq 0 ] || die "rlsd $name exited $rc after SIGTERM (log $OUT/rlsd-$name.log)"
	done
}
ctl() { local name=$1; shift; timeout "$MAX_SECS" "$RLSCTL" --server "${ADDR[$name]}" "$@"; }
# metric NAME SERIES: the value of one metric line of rlsd NAME, as an
# integer (0 if absent), e.g. metric nso 'rls_mirror_units{state="DONE"}'.
metric() {
	curl -fsS --max-time 10 "http://${HTTP[$1]}/metrics" |
		awk -v m="$2" '$1 == m { v = $2 } END { printf "%d\n", v + 0 }'
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# wait_done NAME N T0 FILE: polls rlsd NAME's metrics every 0.2 s until N
# records are DONE (bounded by MAX_SECS); writes "elapsed state counts" to
# FILE once a second and echoes the time it saw them done.
wait_done() {
	local name=$1 n=$2 t0=$3 file=$4 done_n m last=0 t
	local deadline=$(($(date +%s) + MAX_SECS))
	while :; do
		m="$(curl -fsS --max-time 10 "http://${HTTP[$name]}/metrics" | grep '^rls_mirror_units{' || true)"
		done_n=$(printf '%s\n' "$m" | awk '$1 == "rls_mirror_units{state=\"DONE\"}" { printf "%d", $2 + 0 }')
		t=$(now)
		if [ "${done_n:-0}" -ge "$n" ] || [ "$(date +%s)" -ge "$deadline" ] || [ "$(date +%s)" -gt "$last" ]; then
			last=$(date +%s)
			printf '%s %s\n' "$(secs "$t0" "$t")" "$(printf '%s\n' "$m" | sed -E 's/rls_mirror_units\{state="([A-Z]+)"\} /\1=/' | tr '\n' ' ')" >>"$file"
		fi
		[ "${done_n:-0}" -ge "$n" ] && { echo "$t"; return 0; }
		kill -0 "${PID[$name]}" 2>/dev/null || die "rlsd $name exited"
		[ "$(date +%s)" -lt "$deadline" ] || die "$name: only ${done_n:-0} of $n DONE after ${MAX_SECS}s (progress in $file)"
		sleep 0.2
	done
}
# enqueue NAME FILE(sunum<TAB>series lines) [ARGS]: one enqueue per series.
enqueue() {
	local name=$1 file=$2 s
	shift 2
	for s in ${SERIES//,/ }; do
		awk -F'\t' -v s="$s" '$2 == s { print $1 }' "$file" >"$WORK/enq-$name-$s.txt"
		[ -s "$WORK/enq-$name-$s.txt" ] || continue
		ctl "$name" --timeout 120s mirror enqueue --series "$s" -f "$WORK/enq-$name-$s.txt" "$@" >>"$OUT/enqueue-$name.log" 2>&1 ||
			die "enqueue at $name failed (log $OUT/enqueue-$name.log)"
	done
}
sums() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | timeout "$MAX_SECS" xargs -0 -r sha256sum); }
# verify_units SITE_STORE UNITS_TSV: every unit of the list is in the store,
# every file identical to jsoc's.
verify_units() {
	local store=$1 list=$2 tag=$3 d
	for d in "$SUMS" "$store"; do
		# shellcheck disable=SC2016 # $@ is the inner shell's
		(cd "$d" && cut -f1 "$list" | sed 's/^/D/' | xargs -r sh -c 'find "$@" -type f' find | LC_ALL=C sort |
			tr '\n' '\0' | timeout "$MAX_SECS" xargs -0 -r sha256sum) >"$OUT/sums-$tag-$([ "$d" = "$SUMS" ] && echo src || echo dst).txt" 2>>"$OUT/verify.log" || true
	done
	[ -s "$OUT/sums-$tag-src.txt" ] && cmp -s "$OUT/sums-$tag-src.txt" "$OUT/sums-$tag-dst.txt" ||
		die "$tag: units at $store differ from jsoc's (compare $OUT/sums-$tag-src.txt and -dst.txt)"
	echo "$tag: $(wc -l <"$OUT/sums-$tag-src.txt") files of $(wc -l <"$list") units identical to jsoc's (sha256)" | tee -a "$OUT/verify.txt" >&2
}

# sshd on a free loopback port, with a generated key (bench-transfer.sh's way).
SSHD_PORT=""
SSH_ARGS=()
start_sshd() {
	local S="$WORK/sshd"
	mkdir -p "$S"
	chmod 0700 "$S"
	ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$S/host_ed25519" >/dev/null
	ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$S/client_ed25519" >/dev/null
	cp "$S/client_ed25519.pub" "$S/authorized_keys"
	[ -d /run/sshd ] || install -d -m 0755 /run/sshd
	for attempt in 1 2 3 4 5; do
		SSHD_PORT=$(free_port)
		cat >"$S/sshd_config" <<EOF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $S/host_ed25519
PidFile $S/sshd.pid
AuthorizedKeysFile $S/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
		/usr/sbin/sshd -t -f "$S/sshd_config" || die "sshd rejects $S/sshd_config"
		printf '$ taskset -c %s /usr/sbin/sshd -D -e -f %s\n' "$SRV_CPU" "$S/sshd_config" >>"$OUT/commands.txt"
		pinned "$SRV_CPU"
		"${PINNED[@]}" /usr/sbin/sshd -D -e -f "$S/sshd_config" >>"$OUT/sshd.log" 2>&1 &
		PID[sshd]=$!
		for _ in $(seq 100); do
			kill -0 "${PID[sshd]}" 2>/dev/null || break
			grep -q "Server listening on 127.0.0.1 port $SSHD_PORT" "$OUT/sshd.log" && break
			sleep 0.1
		done
		grep -q "Server listening on 127.0.0.1 port $SSHD_PORT" "$OUT/sshd.log" && break
		stop_pid "${PID[sshd]}"
		unset "PID[sshd]"
		echo "sshd did not come up on port $SSHD_PORT (attempt $attempt)" >&2
	done
	[ -n "${PID[sshd]:-}" ] || die "sshd did not start"
	SSH_ARGS=(-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes
		-o IdentitiesOnly=yes -o LogLevel=ERROR -i "$S/client_ed25519")
	timeout 30 ssh "${SSH_ARGS[@]}" -p "$SSHD_PORT" root@127.0.0.1 true || die "ssh to root@127.0.0.1:$SSHD_PORT fails"
}
# scp_units PORT LIST DEST: one `scp -r` per sunum of LIST, SCP_PAR at a
# time, into DEST; prints the seconds taken.
scp_units() {
	local port=$1 list=$2 dest=$3 t0 t1
	rm -rf "$dest"
	mkdir -p "$dest"
	printf '$ cut -f1 %s | taskset -c %s xargs -P %s -I{} timeout 120 scp -r -q -P %s root@127.0.0.1:%s/D{} %s/\n' \
		"$list" "$DST_CPU" "$SCP_PAR" "$port" "$SUMS" "$dest" >>"$OUT/commands.txt"
	t0=$(now)
	cut -f1 "$list" | pin "$DST_CPU" timeout "$MAX_SECS" xargs -P "$SCP_PAR" -I{} \
		timeout 120 scp -r -q "${SSH_ARGS[@]}" -P "$port" "root@127.0.0.1:$SUMS/D{}" "$dest/" 2>>"$OUT/scp.log" ||
		die "scp of the units failed (log $OUT/scp.log)"
	t1=$(now)
	[ "$(find "$dest" -mindepth 1 -maxdepth 1 -type d | wc -l)" -eq "$(wc -l <"$list")" ] || die "scp placed $(find "$dest" -mindepth 1 -maxdepth 1 | wc -l) of $(wc -l <"$list") units"
	secs "$t0" "$t1"
}

# toxiproxy: one server; proxy NAME LISTEN_PORT UPSTREAM adds a proxy with
# RTT/2 of latency on each direction.
TOXI_API=""
start_toxiproxy() {
	local port
	port=$(free_port)
	printf '$ %s -host 127.0.0.1 -port %s\n' "$TOXI" "$port" >>"$OUT/commands.txt"
	"$TOXI" -host 127.0.0.1 -port "$port" >"$OUT/toxiproxy.log" 2>&1 &
	PID[toxiproxy]=$!
	TOXI_API="http://127.0.0.1:$port"
	for _ in $(seq 100); do curl -fsS --max-time 2 "$TOXI_API/version" >/dev/null 2>&1 && return 0; sleep 0.1; done
	die "toxiproxy did not answer on $TOXI_API"
}
proxy() {
	local name=$1 listen=$2 upstream=$3 half=$((WAN_RTT_MS / 2)) dir
	printf '$ curl -X POST %s/proxies -d {"name":"%s","listen":"127.0.0.1:%s","upstream":"%s"}\n' "$TOXI_API" "$name" "$listen" "$upstream" >>"$OUT/commands.txt"
	curl -fsS --max-time 10 -X POST "$TOXI_API/proxies" \
		-d "{\"name\":\"$name\",\"listen\":\"127.0.0.1:$listen\",\"upstream\":\"$upstream\",\"enabled\":true}" >>"$OUT/toxiproxy-api.log" ||
		die "toxiproxy: proxy $name"
	for dir in upstream downstream; do
		curl -fsS --max-time 10 -X POST "$TOXI_API/proxies/$name/toxics" \
			-d "{\"name\":\"lat_$dir\",\"type\":\"latency\",\"stream\":\"$dir\",\"toxicity\":1,\"attributes\":{\"latency\":$half,\"jitter\":0}}" >>"$OUT/toxiproxy-api.log" ||
			die "toxiproxy: latency toxic on $name"
	done
	echo >>"$OUT/toxiproxy-api.log"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# cpu_ms PID: the CPU time (user + system) the process used so far, in ms.
# On a shared machine it says what a site's work costs where wall time
# says how much CPU the others left it.
CLK_TCK=$(getconf CLK_TCK)
cpu_ms() { awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%d\n", ($12 + $13) * 1000 / hz }' "/proc/$1/stat"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# Results, one line per figure: key<TAB>value.
res() { printf '%s\t%s\n' "$1" "$2" >>"$OUT/results.tsv"; }
: >"$OUT/results.tsv"
get() { awk -F'\t' -v k="$1" '$1 == k { v = $2 } END { print v }' "$OUT/results.tsv"; }

# ---------------------------------------------------------------- units
say "units (kept in $DATA between runs)"
if has_part small || has_part wan; then
	# Registered later into each federation's jsoc catalog; here only made.
	run "$MKUNITS" -root "$SUMS" -no-catalog -first "$SMALL_BASE" -n "$SMALL_N" -series "$SERIES" >"$OUT/small-units.tsv"
	echo "small: $(awk -F'\t' '{ f += $5; b += $4 } END { printf "%d units, %d files, %.1f MB", NR, f, b / 1e6 }' "$OUT/small-units.tsv")" | tee -a "$OUT/machine.txt" >&2
fi
if has_part big; then
	run "$MKUNITS" -root "$SUMS" -no-catalog -first "$BIG_BASE" -n "$BIG_REPS" -big-mib "$BIG_MIB" -series "$SERIES" >"$OUT/big-units.tsv"
	awk -F'\t' -v m="$BIG_MIB" '$4 != m * 1048576 { exit 1 }' "$OUT/big-units.tsv" ||
		die "a big unit in $SUMS is not $BIG_MIB MiB; remove $DATA to regenerate"
fi

UPD=(--update-mode list --update-deltas --update-delta-delay 100ms)
# federation PREFIX UNITS_TSV...: rli and jsoc (holding the listed units) on
# the sending CPU.
federation() {
	local p=$1
	shift
	start_rlsd "${p}rli" "$SRV_CPU" --roles rli
	local f
	for f in "$@"; do
		# The units exist: this only registers them (LFN = sunum, PFN = path).
		run "$MKUNITS" -root "$SUMS" -catalog "$WORK/${p}jsoc/catalog" -first "$(head -n1 "$f" | cut -f1)" \
			-n "$(wc -l <"$f")" -series "$SERIES" >/dev/null
	done
	start_rlsd "${p}jsoc" "$SRV_CPU" --roles lrc,transfer --export-root "$SUMS" --update-to "${ADDR[${p}rli]}" "${UPD[@]}"
	ctl "${p}jsoc" admin update >>"$OUT/update.log" 2>&1 || die "jsoc's first update failed (log $OUT/update.log)"
}

# ---------------------------------------------------------------- 1 + 3: loopback
if has_part small || has_part big; then
	say "loopback federation: rli, jsoc (sender CPU), nso tier 1 and sao tier 2 (receiver CPU)"
	lists=()
	has_part small && lists+=("$OUT/small-units.tsv")
	has_part big && lists+=("$OUT/big-units.tsv")
	federation "" "${lists[@]}"
	mkdir -p "$WORK/nso-store" "$WORK/sao-store"
	start_rlsd nso "$DST_CPU" --roles lrc,transfer,mirror --export-root "$WORK/nso-store" --update-to "${ADDR[rli]}" "${UPD[@]}" \
		--mirror-index "${ADDR[rli]}" --mirror-authority "jsoc=${ADDR[jsoc]}" --mirror-store "$WORK/nso-store" --mirror-tier 1
	start_rlsd sao "$DST_CPU" --roles lrc,transfer,mirror --export-root "$WORK/sao-store" --update-to "${ADDR[rli]}" "${UPD[@]}" \
		--mirror-index "${ADDR[rli]}" --mirror-authority "jsoc=${ADDR[jsoc]}" --mirror-store "$WORK/sao-store" --mirror-tier 2 \
		--mirror-pending-interval 1s
fi

if has_part small; then
	say "1. $SMALL_N small units: enqueue at sao (tier 2) and nso (tier 1), wait until both hold them all"
	declare -A CPU0
	for site in jsoc rli nso sao; do CPU0[$site]=$(cpu_ms "${PID[$site]}"); done
	t0=$(now)
	enqueue sao "$OUT/small-units.tsv"
	enqueue nso "$OUT/small-units.tsv"
	t_enq=$(now)
	echo "enqueued ${SMALL_N} at each mirror in $(secs "$t0" "$t_enq") s" >&2
	if [ "$PPROF" = 1 ]; then
		# CPU profiles of the busy part of the run, beside the figures.
		for site in nso sao jsoc; do
			curl -fsS -m 60 -o "$OUT/small-$site.cpu.pprof" "http://${HTTP[$site]}/debug/pprof/profile?seconds=$PPROF_SECS" &
		done
	fi
	t_nso=$(wait_done nso "$SMALL_N" "$t0" "$OUT/progress-small-nso.txt")
	t_sao=$(wait_done sao "$SMALL_N" "$t0" "$OUT/progress-small-sao.txt")
	s_nso=$(secs "$t0" "$t_nso")
	s_sao=$(secs "$t0" "$t_sao")
	res small_enqueue_s "$(secs "$t0" "$t_enq")"
	res small_nso_s "$s_nso"
	res small_sao_s "$s_sao"
	res small_nso_ups "$(awk -v n="$SMALL_N" -v s="$s_nso" 'BEGIN { printf "%.0f", n / s }')"
	res small_sao_ups "$(awk -v n="$SMALL_N" -v s="$s_sao" 'BEGIN { printf "%.0f", n / s }')"
	# The federation's placements per second: nso's and sao's units over
	# the wall time until both hold them all (sao is waited for after nso,
	# so its time is that wall time).
	res small_fed_ups "$(awk -v n="$SMALL_N" -v s="$s_sao" 'BEGIN { printf "%.0f", 2 * n / s }')"
	# CPU per unit of each daemon over the part (nso's includes serving sao).
	for site in jsoc rli nso sao; do
		res "small_${site}_cpu_ms_per_unit" "$(awk -v a="${CPU0[$site]}" -v b="$(cpu_ms "${PID[$site]}")" -v n="$SMALL_N" 'BEGIN { printf "%.2f", (b - a) / n }')"
	done
	echo "nso: ${SMALL_N} units DONE in ${s_nso} s; sao: in ${s_sao} s" >&2
	for site in nso sao; do
		ctl "$site" -o json mirror sources >"$OUT/sources-small-$site.json"
		ctl "$site" mirror sources >&2
		for src in jsoc nso sao; do
			res "small_${site}_from_$src" "$(jq -r --arg s "$src" '[.sources[]? | select(.site == $s) | .units | tonumber] | add // 0' "$OUT/sources-small-$site.json")"
		done
	done
	[ "$(get small_sao_from_jsoc)" -eq 0 ] || die "sao (tier 2) pulled $(get small_sao_from_jsoc) units from jsoc"
	verify_units "$WORK/nso-store" "$OUT/small-units.tsv" small-nso
	verify_units "$WORK/sao-store" "$OUT/small-units.tsv" small-sao

	say "1. baseline: scp -r per unit, $SCP_PAR in parallel, $SCP_N units, loopback"
	start_sshd
	head -n "$SCP_N" "$OUT/small-units.tsv" >"$OUT/scp-units.tsv"
	s=$(scp_units "$SSHD_PORT" "$OUT/scp-units.tsv" "$WORK/scp-loopback")
	res scp_lo_s "$s"
	res scp_lo_ups "$(awk -v n="$SCP_N" -v s="$s" 'BEGIN { printf "%.1f", n / s }')"
	echo "scp: $SCP_N units in $s s" >&2
	rm -rf "$WORK/scp-loopback"
fi

if has_part big; then
	say "3. $BIG_REPS × $BIG_MIB MiB units: mirror at nso vs rlsctl transfer pull of the same unit"
	printf 'rep\tunit\tmethod\tseconds\tbytes\tloadavg1\n' >"$OUT/big-times.tsv"
	rep=0
	while read -r sunum _ pfn bytes _; do
		rep=$((rep + 1))
		# The source's digests are cached for both methods (untimed; the
		# first manifest hashes the whole unit, longer than rlsctl's
		# default 10 s per RPC on a busy machine).
		ctl jsoc -o json --timeout "${MAX_SECS}s" transfer manifest --from "${ADDR[jsoc]}" "$pfn" >/dev/null || die "manifest of $pfn"
		order="pull mirror"
		[ $((rep % 2)) -eq 0 ] && order="mirror pull"
		for m in $order; do
			drop_caches
			load=$(cut -d' ' -f1 /proc/loadavg)
			case $m in
			pull)
				rm -rf "$WORK/pull"
				mkdir -p "$WORK/pull"
				printf '$ taskset -c %s rlsctl transfer pull --from %s %s --to %s\n' "$DST_CPU" "${ADDR[jsoc]}" "$pfn" "$WORK/pull/D$sunum" >>"$OUT/commands.txt"
				t0=$(now)
				pin "$DST_CPU" timeout "$MAX_SECS" "$RLSCTL" transfer pull --from "${ADDR[jsoc]}" "$pfn" --to "$WORK/pull/D$sunum" >>"$OUT/big-pull.log" 2>&1 ||
					die "transfer pull of $pfn failed (log $OUT/big-pull.log)"
				t1=$(now)
				s=$(secs "$t0" "$t1")
				rm -rf "$WORK/pull"
				;;
			mirror)
				t0=$(now)
				ctl nso mirror enqueue --series "${SERIES%%,*}" "$sunum" >>"$OUT/enqueue-nso.log" 2>&1 || die "enqueue $sunum"
				ctl nso mirror wait --timeout 5m "$sunum" >/dev/null || die "mirror wait $sunum"
				t1=$(now)
				ctl nso -o json mirror status "$sunum" >"$OUT/big-status-$sunum.json"
				# The record's own times: enqueued → done, without rlsctl's start-up.
				s=$(jq -r '(.records // .)[0] | [.enqueued, .done] | @tsv' "$OUT/big-status-$sunum.json" |
					while IFS=$'\t' read -r a b; do
						echo "$(date -d "$b" +%s.%N) $(date -d "$a" +%s.%N)"
					done | awk '{ printf "%.3f", $1 - $2 }')
				[ -n "$s" ] || s=$(secs "$t0" "$t1")
				[ "$(find "$WORK/nso-store/D$sunum" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')" -eq "$bytes" ] ||
					die "nso's D$sunum is not $bytes bytes"
				;;
			esac
			printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$sunum" "$m" "$s" "$bytes" "$load" >>"$OUT/big-times.tsv"
			printf 'rep %s %-6s %s: %7.2f s %8.1f MB/s\n' "$rep" "$m" "$sunum" "$s" "$(awk -v b="$bytes" -v s="$s" 'BEGIN { print b / s / 1e6 }')" >&2
		done
	done <"$OUT/big-units.tsv"
	med() { awk -F'\t' -v m="$1" 'NR > 1 && $3 == m { print $4 }' "$OUT/big-times.tsv" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
	b=$(head -n1 "$OUT/big-units.tsv" | cut -f4)
	res big_pull_s "$(med pull)"
	res big_mirror_s "$(med mirror)"
	res big_pull_mbs "$(awk -v b="$b" -v s="$(med pull)" 'BEGIN { printf "%.0f", b / s / 1e6 }')"
	res big_mirror_mbs "$(awk -v b="$b" -v s="$(med mirror)" 'BEGIN { printf "%.0f", b / s / 1e6 }')"
fi

if has_part small || has_part big; then
	say "stop the loopback federation"
	stop_rlsd nso sao jsoc rli
fi

# ---------------------------------------------------------------- 2: WAN
if has_part wan; then
	say "2. $WAN_N units over toxiproxy, ${WAN_RTT_MS} ms round trip, against scp through the same kind of link"
	start_toxiproxy
	head -n "$WAN_N" "$OUT/small-units.tsv" >"$OUT/wan-units.tsv"
	# The index and jsoc are reached only through their proxies: jsoc
	# advertises its proxy's address, so that the index's verify calls and
	# nso's pulls take the slow link too.
	P_RLI=$(free_port)
	P_JSOC=$(free_port)
	start_rlsd wrli "$SRV_CPU" --roles rli
	proxy wrli "$P_RLI" "${ADDR[wrli]}"
	run "$MKUNITS" -root "$SUMS" -catalog "$WORK/wjsoc/catalog" -first "$SMALL_BASE" -n "$WAN_N" -series "$SERIES" >/dev/null
	start_rlsd wjsoc "$SRV_CPU" --roles lrc,transfer --export-root "$SUMS" --update-to "127.0.0.1:$P_RLI" "${UPD[@]}" \
		--advertise "127.0.0.1:$P_JSOC"
	proxy wjsoc "$P_JSOC" "${ADDR[wjsoc]}"
	ctl wjsoc admin update >>"$OUT/update.log" 2>&1 || die "jsoc's update through the proxy failed (log $OUT/update.log)"
	mkdir -p "$WORK/wnso-store"
	start_rlsd wnso "$DST_CPU" --roles lrc,transfer,mirror --export-root "$WORK/wnso-store" --update-to "127.0.0.1:$P_RLI" "${UPD[@]}" \
		--mirror-index "127.0.0.1:$P_RLI" --mirror-authority "wjsoc=127.0.0.1:$P_JSOC" --mirror-store "$WORK/wnso-store" --mirror-tier 1
	# What one round trip costs through the proxy, seen from a client.
	for a in "${ADDR[wrli]}" "127.0.0.1:$P_RLI"; do
		t0=$(now)
		for _ in 1 2 3 4 5; do "$RLSCTL" --server "$a" admin ping >/dev/null; done
		echo "5 × rlsctl admin ping to $a: $(secs "$t0" "$(now)") s" | tee -a "$OUT/wan-rtt.txt" >&2
	done
	t0=$(now)
	enqueue wnso "$OUT/wan-units.tsv"
	t1=$(wait_done wnso "$WAN_N" "$t0" "$OUT/progress-wan.txt")
	s=$(secs "$t0" "$t1")
	res wan_rls_s "$s"
	res wan_rls_ups "$(awk -v n="$WAN_N" -v s="$s" 'BEGIN { printf "%.0f", n / s }')"
	echo "rls: $WAN_N units over the WAN link in $s s" >&2
	ctl wnso mirror sources >&2
	verify_units "$WORK/wnso-store" "$OUT/wan-units.tsv" wan
	stop_rlsd wnso wjsoc wrli

	[ -n "${PID[sshd]:-}" ] || start_sshd
	P_SSH=$(free_port)
	proxy sshd "$P_SSH" "127.0.0.1:$SSHD_PORT"
	t0=$(now)
	timeout 60 ssh "${SSH_ARGS[@]}" -p "$P_SSH" root@127.0.0.1 true || die "ssh through the proxy fails"
	echo "one ssh login through the proxy: $(secs "$t0" "$(now)") s" | tee -a "$OUT/wan-rtt.txt" >&2
	# scp is timed on the first SCP_N units (it runs at about a unit a
	# second here, so all WAN_N would take a quarter of an hour); its time
	# for WAN_N is projected from that rate.
	head -n "$SCP_N" "$OUT/wan-units.tsv" >"$OUT/wan-scp-units.tsv"
	s=$(scp_units "$P_SSH" "$OUT/wan-scp-units.tsv" "$WORK/scp-wan")
	res wan_scp_sample_s "$s"
	res wan_scp_ups "$(awk -v n="$SCP_N" -v s="$s" 'BEGIN { printf "%.2f", n / s }')"
	res wan_scp_s "$(awk -v n="$SCP_N" -v w="$WAN_N" -v s="$s" 'BEGIN { printf "%.1f", s * w / n }')"
	echo "scp: $SCP_N units over the WAN link in $s s" >&2
	rm -rf "$WORK/scp-wan"
fi
[ -n "${PID[sshd]:-}" ] && { stop_pid "${PID[sshd]}"; unset "PID[sshd]"; }
[ -n "${PID[toxiproxy]:-}" ] && { stop_pid "${PID[toxiproxy]}"; unset "PID[toxiproxy]"; }

# ---------------------------------------------------------------- 4: RSS
if has_part rss; then
	say "4. RSS with $RSS_N sunums queued at a tier-2 mirror no peer can serve (NQUE → PNDG)"
	start_rlsd rrli "$SRV_CPU" --roles rli
	mkdir -p "$WORK/rss-store"
	start_rlsd rss "$DST_CPU" --roles lrc,transfer,mirror --export-root "$WORK/rss-store" \
		--mirror-index "${ADDR[rrli]}" --mirror-store "$WORK/rss-store" --mirror-tier 2
	pid=${PID[rss]}
	printf 'sunums\trss_kib\thwm_kib\tstore_kib\tseconds\n' >"$OUT/rss.tsv"
	sample() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$(rss_kib "$pid")" "$(hwm_kib "$pid")" "$(du -sk "$WORK/rss/mirror" 2>/dev/null | cut -f1)" "$2" >>"$OUT/rss.tsv"; }
	sleep 2
	sample 0 0
	chunk=$(( RSS_N < 100000 ? RSS_N : 100000 ))
	t0=$(now)
	n=0
	while [ "$n" -lt "$RSS_N" ]; do
		k=$(( RSS_N - n < chunk ? RSS_N - n : chunk ))
		seq "$((RSS_BASE + n))" "$((RSS_BASE + n + k - 1))" >"$WORK/rss-chunk.txt"
		ctl rss mirror enqueue --series "${SERIES%%,*}" -f "$WORK/rss-chunk.txt" >>"$OUT/enqueue-rss.log" 2>&1 || die "enqueue at rss (log $OUT/enqueue-rss.log)"
		n=$((n + k))
		sample "$n" "$(secs "$t0" "$(now)")"
		printf '%8d sunums enqueued, %6.1f s, RSS %s MiB\n' "$n" "$(secs "$t0" "$(now)")" "$(( $(rss_kib "$pid") / 1024 ))" >&2
	done
	t_enq=$(now)
	res rss_enqueue_ups "$(awk -v n="$RSS_N" -v s="$(secs "$t0" "$t_enq")" 'BEGIN { printf "%.0f", n / s }')"
	# Let the engine take them all (NQUE → PNDG), bounded.
	deadline=$(($(date +%s) + MAX_SECS))
	while :; do
		nq=$(metric rss 'rls_mirror_units{state="NQUE"}')
		pn=$(metric rss 'rls_mirror_units{state="PNDG"}')
		[ "$nq" -eq 0 ] && break
		[ "$(date +%s)" -lt "$deadline" ] || { echo "after ${MAX_SECS}s, $nq still NQUE" >&2; break; }
		sleep 2
		printf '  NQUE %d PNDG %d RSS %s MiB\n' "$nq" "$pn" "$(( $(rss_kib "$pid") / 1024 ))" >&2
	done
	res rss_pndg "$(metric rss 'rls_mirror_units{state="PNDG"}')"
	res rss_nque "$(metric rss 'rls_mirror_units{state="NQUE"}')"
	sample "$RSS_N" "$(secs "$t0" "$(now)")"
	res rss_settle_s "$(secs "$t_enq" "$(now)")"
	stop_rlsd rss rrli
	awk -F'\t' 'NR == 2 { print $2 }' "$OUT/rss.tsv" | { read -r v; res rss0_kib "$v"; }
	tail -n1 "$OUT/rss.tsv" | { IFS=$'\t' read -r _ r h st _; res rss1_kib "$r"; res hwm1_kib "$h"; res store1_kib "$st"; }
	awk -F'\t' -v n=100000 '$1 == n { print $2 }' "$OUT/rss.tsv" | head -n1 | { read -r v || true; res rss100k_kib "${v:-}"; }
fi

# ---------------------------------------------------------------- report
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }' || echo "—"; }
verdict() { [ -n "$1" ] && [ "$1" != "—" ] && awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "met" : "MISSED" }' || echo "not measured"; }
say "results"
{
	echo "## rls mirror across the demo federation, $STAMP"
	echo
	sed 's/^/    /' "$OUT/machine.txt"
	echo
	echo "| # | what | rls | baseline (same run) | rls vs baseline | target | |"
	echo "| --- | --- | ---: | ---: | ---: | --- | --- |"
	if has_part small; then
		echo "| 1 | $SMALL_N small units, loopback, enqueue → all DONE | nso (tier 1): **$(get small_nso_ups) units/s** ($(get small_nso_s) s); sao (tier 2, from nso): $(get small_sao_ups) units/s ($(get small_sao_s) s); federation: $(get small_fed_ups) placements/s | scp -r per unit, $SCP_PAR parallel, $SCP_N units: $(get scp_lo_ups) units/s ($(get scp_lo_s) s); the JMD: ~1 unit/s | $(ratio "$(get small_nso_ups)" "$(get scp_lo_ups)")× scp | ≥ 500 units/s | $(verdict "$(get small_nso_ups)" 500) |"
	fi
	if has_part wan; then
		r=$(ratio "$(get wan_scp_s)" "$(get wan_rls_s)")
		echo "| 2 | $WAN_N units, ${WAN_RTT_MS} ms RTT (toxiproxy) | $(get wan_rls_s) s ($(get wan_rls_ups) units/s) | scp -r per unit, $SCP_PAR parallel: $(get wan_scp_ups) units/s ($SCP_N units in $(get wan_scp_sample_s) s; $WAN_N projected: $(get wan_scp_s) s) | **${r}×** faster | ≥ 20× | $(verdict "$r" 20) |"
	fi
	if has_part big; then
		r=$(awk -v a="$(get big_mirror_mbs)" -v b="$(get big_pull_mbs)" 'BEGIN { printf "%.0f", 100 * a / b }')
		echo "| 3 | $BIG_MIB MiB unit, median of $BIG_REPS, cold cache | mirror: $(get big_mirror_mbs) MB/s ($(get big_mirror_s) s) | rlsctl transfer pull: $(get big_pull_mbs) MB/s ($(get big_pull_s) s) | **${r}%** | ≥ 90% | $(verdict "$r" 90) |"
	fi
	if has_part rss; then
		r0=$(get rss0_kib) r1=$(get rss1_kib) h1=$(get hwm1_kib) st=$(get store1_kib) r100=$(get rss100k_kib)
		bps=$(awk -v a="$r0" -v b="$r1" -v n="$RSS_N" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
		marg=$(awk -v a="$r100" -v b="$r1" -v n="$RSS_N" 'BEGIN { if (a == "") print "—"; else printf "%.0f", (b - a) * 1024 / (n - 100000) }')
		echo "| 4 | RSS, $RSS_N sunums in the state store ($(get rss_pndg) PNDG, $(get rss_nque) NQUE) | $((r1 / 1024)) MiB (peak $((h1 / 1024)) MiB): $bps B/sunum over idle, $marg B/sunum from 100k to $RSS_N | the same rlsd idle: $((r0 / 1024)) MiB; at 100k: $((${r100:-0} / 1024)) MiB; store on disk $((st / 1024)) MiB ($(awk -v s="$st" -v n="$RSS_N" 'BEGIN { printf "%.0f", s * 1024 / n }') B/sunum) | — | bounded | $(awk -v m="$marg" 'BEGIN { print (m != "—" && m < 100) ? "bounded" : "CHECK" }') |"
	fi
	echo
	if has_part small; then
		echo "Part 1 rates: nso alone $(get small_nso_ups) units/s ($SMALL_N in $(get small_nso_s) s), sao alone $(get small_sao_ups) units/s ($SMALL_N in $(get small_sao_s) s); federation $(get small_fed_ups) placements/s ($((2 * SMALL_N)) units placed at nso and sao in $(get small_sao_s) s, until both held them all; both mirrors share CPU $DST_CPU)."
		echo "Part 1: units placed per source — nso: jsoc $(get small_nso_from_jsoc), sao $(get small_nso_from_sao); sao: nso $(get small_sao_from_nso), jsoc $(get small_sao_from_jsoc). Enqueue of $SMALL_N at each site took $(get small_enqueue_s) s (included). CPU per unit (user + system): nso $(get small_nso_cpu_ms_per_unit) ms (with serving sao), sao $(get small_sao_cpu_ms_per_unit) ms, jsoc $(get small_jsoc_cpu_ms_per_unit) ms, rli $(get small_rli_cpu_ms_per_unit) ms."
	fi
	if has_part wan; then echo "Part 2: $(tr '\n' ';' <"$OUT/wan-rtt.txt")"; fi
	if has_part big; then echo "Part 3 runs (s): $(awk -F'\t' 'NR > 1 { printf "%s%s %s", sep, $3, $4; sep = ", " }' "$OUT/big-times.tsv")"; fi
	if has_part rss; then echo "Part 4: enqueue rate $(get rss_enqueue_ups) sunums/s (durable); NQUE → PNDG took $(get rss_settle_s) s more; samples in rss.tsv."; fi
	echo
	echo "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "Raw outputs: scripts/out/$STAMP-mirror/"
} | tee "$OUT/results.md"
