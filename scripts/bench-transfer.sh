#!/usr/bin/env bash
# bench-transfer.sh — rls's transfer engine side by side with scp and rsync
# over a private sshd, and with a verified local copy (cp -r + sha256sum) as
# the ceiling, all on loopback on this machine.
#
# Two storage units (DRMS layout, <export root>/D<sunum>/...) are generated
# once and kept in scripts/out/bench-transfer-data/ (gitignored):
#   D100000001  one 1 GiB file of random (incompressible) bytes
#   D100000002  2,000 files of 32 KiB random bytes in 20 nested directories
# For each unit and method it times REPS (3) pulls into a fresh destination
# on the same file system, takes the median, verifies every result by
# comparing sha256sum lists of source and destination (any mismatch fails the
# run), and prints a markdown table with the targets of the transfer issue:
#   big unit:         rls pull ≥ 2× scp and ≥ 60% of the local ceiling
#   small-files unit: rls pull ≥ 10× scp
#
#   rls       rlsctl transfer pull --from ADDR PFN --to DEST (rlsd --roles
#             transfer, restarted before every run on an empty data directory,
#             so that neither its in-memory digest cache nor the persistent one
#             in DATA/transfer-digests holds the unit: the source hashes it, as
#             on the first pull of a unit, while the pull fetches the bytes)
#   rls-warm  the same pull from an rlsd that has served the unit before, so
#             the source's digest cache (in memory) holds its SHA-256s
#   scp    scp -r root@127.0.0.1:PFN DEST                   (default cipher)
#   rsync  rsync -a -e "ssh ..." root@127.0.0.1:PFN/ DEST/  (default cipher)
#   cp     cp -r PFN DEST && sha256sum of every file in DEST
#   cp-ossl  the same with openssl dgst -sha256, which uses the CPU's SHA
#          instructions where coreutils' sha256sum (Debian 12: 9.1, no
#          OpenSSL) hashes in software at a fraction of the speed; reported
#          beside the table, as the ceiling of the hardware
#
# The page cache is dropped before every timed run when
# /proc/sys/vm/drop_caches is writable (the output says whether it was), so
# every method reads its source from disk. Only the command is timed; a
# `sync -f DEST` right after it is timed separately ("incl. flush"), because
# rls pull fsyncs what it writes and the others leave it in the page cache.
#
# Requirements: root (for sshd and drop_caches), Debian packages
# openssh-server and rsync (installed with apt-get when missing), Go to build
# rlsd/rlsctl. Everything talks to 127.0.0.1 only.
#
# Knobs (environment): REPS (3), MAX_SECS (600: bound of every single
# command), SETTLE (3: seconds to wait after dropping the page cache), METHODS ("rls rls-warm scp rsync cp cp-ossl"; leave out the rls ones to
# run without the transfer engine), BIG_MIB (1024), SMALL_FILES (2000), SMALL_KIB (32),
# RLSD_HTTP=1 (also give rlsd --http-listen 127.0.0.1:0), NO_BUILD=1,
# NO_INSTALL=1, KEEP=1 (keep the temp dir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

REPS="${REPS:-3}"
MAX_SECS="${MAX_SECS:-600}"
METHODS="${METHODS:-rls rls-warm scp rsync cp cp-ossl}"
BIG_MIB="${BIG_MIB:-1024}"
SMALL_FILES="${SMALL_FILES:-2000}"
SMALL_KIB="${SMALL_KIB:-32}"
BIG=D100000001
SMALL=D100000002
UNITS="$BIG $SMALL"

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench-transfer: FAILED: %s\n' "$*" >&2; exit 1; }
# run prints a command to stderr and to the command log, then runs it.
run() { printf '$ %s\n' "$*" | tee -a "$OUT/commands.txt" >&2; "$@"; }
has_method() { case " $METHODS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
uses_rls() { has_method rls || has_method rls-warm; }

for m in $METHODS; do
	case $m in rls | rls-warm | scp | rsync | cp | cp-ossl) ;; *) die "unknown method $m in METHODS (rls rls-warm scp rsync cp cp-ossl)" ;; esac
done
[ "$REPS" -ge 1 ] || die "REPS must be ≥ 1"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
# Another bench may start in the same second; never share its directory.
while ! mkdir -p "$ROOT/scripts/out" || ! mkdir "$ROOT/scripts/out/$STAMP" 2>/dev/null; do
	sleep 1
	STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
done
OUT="$ROOT/scripts/out/$STAMP"
: >"$OUT/commands.txt"
CACHE="$ROOT/scripts/out/bench-transfer-data"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rls-bench-transfer.XXXXXX")"

# The EXIT trap may run while a command's stderr is redirected to its log;
# it reports on the script's own stderr, kept as fd 3.
exec 3>&2
RLSD_PID=""
RLSD_LOG=""
SSHD_PID=""
POLICY_RC_CREATED=""
stop_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		echo "bench-transfer: pid $pid ignored SIGTERM for 30s; killing" >&3
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local rc=$?
	stop_pid "$RLSD_PID"
	stop_pid "$SSHD_PID"
	[ -n "$POLICY_RC_CREATED" ] && rm -f /usr/sbin/policy-rc.d
	if [ "$rc" -ne 0 ]; then
		for f in $RLSD_LOG "$OUT/sshd.log"; do
			[ -f "$f" ] && { echo "--- last lines of $f" >&3; tail -n 20 "$f" >&3; }
		done
		echo "bench-transfer: FAILED (exit $rc); raw outputs in $OUT" >&3
	fi
	if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK" >&3; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- packages
# Only what is missing, non-interactively; policy-rc.d keeps the package's
# own sshd from being started on port 22 by the install.
missing=""
[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
command -v rsync >/dev/null || missing="$missing rsync"
command -v ssh-keygen >/dev/null || missing="$missing openssh-client"
if [ -n "$missing" ]; then
	[ "${NO_INSTALL:-}" != 1 ] || die "missing:$missing (NO_INSTALL=1)"
	[ "$(id -u)" -eq 0 ] || die "missing:$missing; run as root or apt-get install -y$missing"
	say "install$missing"
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		POLICY_RC_CREATED=1
	fi
	run timeout "$MAX_SECS" apt-get update -qq >&2
	# shellcheck disable=SC2086 # word splitting of the package list is wanted
	DEBIAN_FRONTEND=noninteractive run timeout "$MAX_SECS" apt-get install -y -qq --no-install-recommends $missing >&2
	if [ -n "$POLICY_RC_CREATED" ]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=""; fi
fi
[ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd missing after install"
command -v rsync >/dev/null || die "rsync missing after install"
[ "$(id -u)" -eq 0 ] || die "run as root: sshd here logs in as root with a generated key"

# ---------------------------------------------------------------- build
if uses_rls; then
	if [ "${NO_BUILD:-}" != 1 ]; then
		say "build"
		make --no-print-directory build >&2
	fi
	RLSD="$ROOT/bin/rlsd" RLSCTL="$ROOT/bin/rlsctl"
	[ -x "$RLSD" ] && [ -x "$RLSCTL" ] || die "bin/rlsd and bin/rlsctl missing (run make build)"
	# cobra answers --help of an unknown command with the root's help and
	# status 0, hence the look at what the help is about.
	"$RLSCTL" transfer pull --help 2>&1 | grep -q 'rlsctl transfer pull' &&
		"$RLSD" --help 2>&1 | grep -q -- '--export-root' ||
		die "this rlsctl has no 'transfer pull' or this rlsd no --export-root (transfer engine not built yet); METHODS='scp rsync cp' runs the rest"
fi

# ---------------------------------------------------------------- drop caches
DROP=""
if (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then DROP=1; fi
# drop_caches: before every timed run, so that every method reads its source
# from disk; without it all methods run with whatever the page cache holds.
# Then it waits SETTLE seconds: on a VM with free page reporting
# (virtio-balloon), the memory the drop freed goes back to the host a few
# seconds later, and a page the guest touches again after that costs a
# host fault (about 1 s of CPU per GiB here). Without the pause a method
# found warm or cold pages depending on timing; with it every method
# starts from the same state.
SETTLE="${SETTLE:-3}"
drop_caches() {
	sync
	[ -n "$DROP" ] && echo 3 >/proc/sys/vm/drop_caches
	sleep "$SETTLE"
	return 0
}
if [ -n "$DROP" ]; then
	CACHE_NOTE="Page cache dropped (sync; echo 3 > /proc/sys/vm/drop_caches; sleep $SETTLE) before every timed run: cold source for every method"
else
	CACHE_NOTE="Page cache NOT dropped (/proc/sys/vm/drop_caches not writable): every method runs warm, the source having just been hashed"
fi

# ---------------------------------------------------------------- machine
say "machine"
{
	echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel:    $(uname -srm)"
	echo "nproc:     $(nproc)"
	echo "cpu:       $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') (flags: $(grep -m1 -owE 'aes|sha_ni|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//'))"
	echo "memory:    $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "disk:      $(df -h --output=source,fstype,size,avail,target "$WORK" | tail -n1 | tr -s ' ')  (temp dir $WORK)"
	echo "data disk: $(mkdir -p "$CACHE" && df -h --output=source,fstype,size,avail,target "$CACHE" | tail -n1 | tr -s ' ')  (source $CACHE)"
	echo "ssh:       $(ssh -V 2>&1)"
	echo "sshd:      $(dpkg-query -W -f '${Package} ${Version}' openssh-server 2>/dev/null || echo unknown)"
	echo "rsync:     $(rsync --version | head -n1)"
	echo "coreutils: $(cp --version | head -n1)"
	echo "openssl:   $(openssl version)"
	echo "go:        $(go version 2>/dev/null || echo none)"
	echo "rls:       $(git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "methods:   $METHODS, $REPS runs each, median"
	echo "cache:     $CACHE_NOTE"
	echo "loadavg:   $(cut -d' ' -f1-3 /proc/loadavg) (before the run; other work on the machine skews the figures)"
	echo "note:      clients and servers share the same $(nproc) CPUs and one disk"
} | tee "$OUT/machine.txt" >&2

# ---------------------------------------------------------------- data
# The units live in $CACHE/export; each is generated in a temp dir beside it
# and renamed into place, so an interrupted generation is never reused.
SRCROOT="$CACHE/export"
mkdir -p "$SRCROOT"
SRCROOT="$(realpath "$SRCROOT")"
gen_big() { # DIR
	mkdir -p "$1"
	timeout "$MAX_SECS" head -c "$((BIG_MIB * 1048576))" /dev/urandom >"$1/image.fits"
}
gen_small() { # DIR
	local i=0 d
	while [ "$i" -lt "$SMALL_FILES" ]; do
		# 4 × 5 nested directories, like S<seg>/<series>/ in a DRMS unit.
		d="$1/S$(printf '%05d' $((i % 4)))/part$((i / 4 % 5))"
		mkdir -p "$d"
		head -c "$((SMALL_KIB * 1024))" /dev/urandom >"$d/f$(printf '%05d' "$i").fits"
		i=$((i + 1))
	done
}
for u in $UNITS; do
	if [ -d "$SRCROOT/$u" ]; then
		echo "reuse $SRCROOT/$u" >&2
		continue
	fi
	say "generate $u"
	# Leftovers of an interrupted generation (not one running now).
	find "$CACHE" -maxdepth 1 -name 'gen.*' -mmin +60 -exec rm -rf {} +
	tmp="$(mktemp -d "$CACHE/gen.XXXXXX")"
	case $u in
	"$BIG") gen_big "$tmp/$u" ;;
	"$SMALL") gen_small "$tmp/$u" ;;
	esac
	mv "$tmp/$u" "$SRCROOT/$u"
	rmdir "$tmp"
done

# sums DIR: sha256sum of every file under DIR, by relative path, sorted.
sums() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | timeout "$MAX_SECS" xargs -0 -r sha256sum); }
unit_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
declare -A BYTES FILES
for u in $UNITS; do
	say "hash source $u"
	sums "$SRCROOT/$u" >"$OUT/src-$u.sha256"
	BYTES[$u]=$(unit_bytes "$SRCROOT/$u")
	FILES[$u]=$(wc -l <"$OUT/src-$u.sha256")
	echo "$u: ${FILES[$u]} files, ${BYTES[$u]} bytes, $(find "$SRCROOT/$u" -type d | wc -l) directories" | tee -a "$OUT/machine.txt" >&2
done
[ "${FILES[$BIG]}" -eq 1 ] && [ "${BYTES[$BIG]}" -eq $((BIG_MIB * 1048576)) ] ||
	die "$SRCROOT/$BIG is not one file of $BIG_MIB MiB; remove $CACHE to regenerate"
[ "${FILES[$SMALL]}" -eq "$SMALL_FILES" ] && [ "${BYTES[$SMALL]}" -eq $((SMALL_FILES * SMALL_KIB * 1024)) ] ||
	die "$SRCROOT/$SMALL is not $SMALL_FILES files of $SMALL_KIB KiB; remove $CACHE to regenerate"

# ---------------------------------------------------------------- sshd
SSH_ARGS=()
if has_method scp || has_method rsync; then
	say "start a private sshd on loopback"
	S="$WORK/sshd"
	mkdir -p "$S"
	chmod 0700 "$S"
	ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$S/host_ed25519" >/dev/null
	ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$S/client_ed25519" >/dev/null
	cp "$S/client_ed25519.pub" "$S/authorized_keys"
	# Debian's sshd refuses to start without its privilege separation dir.
	[ -d /run/sshd ] || install -d -m 0755 /run/sshd
	for attempt in 1 2 3 4 5; do
		# A port nothing listens on now; losing a race for it to another
		# process shows as sshd not coming up, and is retried.
		SSH_PORT=""
		for _ in $(seq 50); do
			p=$((20000 + RANDOM % 20000))
			ss -Htln "sport = :$p" | grep -q . || { SSH_PORT=$p; break; }
		done
		[ -n "$SSH_PORT" ] || die "no free loopback port found"
		cat >"$S/sshd_config" <<EOF
Port $SSH_PORT
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
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
		/usr/sbin/sshd -t -f "$S/sshd_config" || die "sshd rejects its config $S/sshd_config"
		printf '$ %s\n' "/usr/sbin/sshd -D -e -f $S/sshd_config" | tee -a "$OUT/commands.txt" >&2
		/usr/sbin/sshd -D -e -f "$S/sshd_config" >>"$OUT/sshd.log" 2>&1 &
		SSHD_PID=$!
		up=""
		for _ in $(seq 100); do # 10 s
			kill -0 "$SSHD_PID" 2>/dev/null || break
			grep -q "Server listening on 127.0.0.1 port $SSH_PORT" "$OUT/sshd.log" && { up=1; break; }
			sleep 0.1
		done
		[ -n "$up" ] && break
		stop_pid "$SSHD_PID"
		SSHD_PID=""
		echo "sshd did not come up on port $SSH_PORT (attempt $attempt)" >&2
	done
	[ -n "$SSHD_PID" ] || die "sshd did not start in 5 attempts"
	# -F /dev/null: no ~/.ssh/config or /etc/ssh/ssh_config changes the
	# defaults (cipher, compression, multiplexing) under the benchmark.
	SSH_BASE=(-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
		-o BatchMode=yes -o IdentitiesOnly=yes -i "$S/client_ed25519")
	SSH_ARGS=("${SSH_BASE[@]}" -o LogLevel=ERROR)
	# The same options for rsync -e, as one string (no spaces in any of them).
	SSH_CMD="ssh ${SSH_ARGS[*]} -p $SSH_PORT"
	timeout 30 ssh "${SSH_ARGS[@]}" -p "$SSH_PORT" root@127.0.0.1 true || die "ssh to root@127.0.0.1:$SSH_PORT fails"
	# What the default negotiates (client and server are both this OpenSSH).
	timeout 30 ssh "${SSH_BASE[@]}" -v -p "$SSH_PORT" root@127.0.0.1 true >"$OUT/ssh-v.txt" 2>&1 || true
	CIPHER="$(grep -m1 'kex: server->client cipher:' "$OUT/ssh-v.txt" | sed -E 's/.*cipher: ([^ ]+) MAC: ([^ ]+) compression: ([^ ]+).*/\1 (MAC \2, compression \3)/')" || true
	KEX="$(grep -m1 'kex: algorithm:' "$OUT/ssh-v.txt" | sed -E 's/.*algorithm: //')" || true
	{
		echo "sshd:      127.0.0.1:$SSH_PORT, pid $SSHD_PID, config $S/sshd_config"
		echo "cipher:    ${CIPHER:-unknown} (default; kex ${KEX:-unknown}); supported: $(ssh -Q cipher | tr '\n' ' ')"
	} | tee -a "$OUT/machine.txt" >&2
fi

# ---------------------------------------------------------------- rlsd
# start_rlsd: a new rlsd serving $SRCROOT on a free port; sets ADDR. Each
# instance logs to its own $OUT/rlsd-N.log.
RLSD_N=0
start_rlsd() {
	RLSD_N=$((RLSD_N + 1))
	RLSD_LOG="$OUT/rlsd-$RLSD_N.log"
	rm -rf "$WORK/rlsd"
	mkdir -p "$WORK/rlsd"
	local args=(--site bench --data "$WORK/rlsd" --roles transfer --export-root "$SRCROOT" --listen 127.0.0.1:0)
	[ "${RLSD_HTTP:-}" = 1 ] && args+=(--http-listen 127.0.0.1:0)
	printf '$ %s\n' "$RLSD ${args[*]}" >>"$OUT/commands.txt"
	"$RLSD" "${args[@]}" >"$RLSD_LOG" 2>&1 &
	RLSD_PID=$!
	ADDR=""
	for _ in $(seq 300); do # 30 s
		kill -0 "$RLSD_PID" 2>/dev/null || die "rlsd exited during start-up (log $RLSD_LOG)"
		# addr=, not http_addr=
		ADDR="$(grep 'rlsd serving' "$RLSD_LOG" | grep -oE '[^_]addr="?127\.0\.0\.1:[0-9]+' | head -n1 | sed -E 's/^.addr="?//')" || true
		[ -n "$ADDR" ] && break
		sleep 0.1
	done
	[ -n "$ADDR" ] || die "rlsd logged no 'rlsd serving ... addr=127.0.0.1:PORT' within 30s"
	local ok=""
	for _ in $(seq 100); do "$RLSCTL" --server "$ADDR" admin ping >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1; done
	[ -n "$ok" ] || die "rlsd at $ADDR does not answer admin ping"
	WARM=" " # units whose digests this rlsd has cached
}
# stop_rlsd: SIGTERM, bounded wait; rlsd must exit 0.
stop_rlsd() {
	[ -n "$RLSD_PID" ] || return 0
	kill -TERM "$RLSD_PID" 2>/dev/null || true
	local rc=0
	for _ in $(seq 300); do kill -0 "$RLSD_PID" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$RLSD_PID" 2>/dev/null && { kill -KILL "$RLSD_PID"; die "rlsd still running 30s after SIGTERM; killed"; }
	wait "$RLSD_PID" || rc=$?
	RLSD_PID=""
	[ "$rc" -eq 0 ] || die "rlsd exited with status $rc after SIGTERM (log $RLSD_LOG)"
}
if uses_rls; then
	say "start rlsd --roles transfer"
	start_rlsd
	echo "rlsd:      $ADDR, pid $RLSD_PID, export root $SRCROOT; $RLSD --site bench --data DIR --roles transfer --export-root $SRCROOT --listen 127.0.0.1:0" | tee -a "$OUT/machine.txt" >&2
	echo "rlsctl:    transfer pull with its defaults (streams $("$RLSCTL" transfer pull --help 2>&1 | grep -oE -- '--streams int.*\(default [0-9]+\)' | grep -oE '[0-9]+\)$' | tr -d ')'), range-size 0: from one source each file whole, hashed as it passes, written with O_DIRECT)" | tee -a "$OUT/machine.txt" >&2
fi

# ---------------------------------------------------------------- runs
# pull METHOD UNIT DEST: one copy of the unit into DEST (which does not exist).
pull() {
	local m=$1 u=$2 dst=$3 src="$SRCROOT/$2"
	case $m in
	rls | rls-warm) run timeout "$MAX_SECS" "$RLSCTL" transfer pull --from "$ADDR" "$src" --to "$dst" ;;
	scp) run timeout "$MAX_SECS" scp -r -q "${SSH_ARGS[@]}" -P "$SSH_PORT" "root@127.0.0.1:$src" "$dst" ;;
	rsync) run timeout "$MAX_SECS" rsync -a -e "$SSH_CMD" "root@127.0.0.1:$src/" "$dst/" ;;
	cp) # shellcheck disable=SC2016 # $1 and $2 are the inner shell's
		run timeout "$MAX_SECS" bash -c 'cp -r "$1" "$2" && find "$2" -type f -print0 | xargs -0 -r sha256sum >/dev/null' cp-sha256sum "$src" "$dst" ;;
	cp-ossl) # shellcheck disable=SC2016 # $1 and $2 are the inner shell's
		run timeout "$MAX_SECS" bash -c 'cp -r "$1" "$2" && find "$2" -type f -print0 | xargs -0 -r openssl dgst -sha256 >/dev/null' cp-openssl-sha256 "$src" "$dst" ;;
	esac
}

DST="$WORK/dst"
mkdir -p "$DST"
printf 'unit\tmethod\trep\tseconds\tseconds_incl_flush\tbytes\tloadavg1\n' >"$OUT/times.tsv"
for u in $UNITS; do
	say "unit $u: ${FILES[$u]} files, ${BYTES[$u]} bytes"
	# Methods take turns within each repetition, so that drift in the
	# machine's load touches them all alike.
	for rep in $(seq "$REPS"); do
		for m in $METHODS; do
			dst="$DST/$m/$u"
			rm -rf "${DST:?}/$m"
			mkdir -p "$DST/$m"
			case $m in
			rls) stop_rlsd; start_rlsd ;;
			rls-warm)
				# Prime the source's digest cache if this rlsd has not served
				# the unit yet (untimed, not fsynced, thrown away).
				if [ "${WARM#* "$u" }" = "$WARM" ]; then
					run timeout "$MAX_SECS" "$RLSCTL" transfer pull --no-sync --from "$ADDR" "$SRCROOT/$u" --to "$DST/$m/prime" >"$OUT/prime-$u.log" 2>&1 ||
						die "priming pull of $u failed (log $OUT/prime-$u.log)"
					rm -rf "${DST:?}/$m/prime"
				fi
				;;
			esac
			drop_caches
			load=$(cut -d' ' -f1 /proc/loadavg)
			t0=$(date +%s.%N)
			pull "$m" "$u" "$dst" >"$OUT/run-$u-$m-$rep.log" 2>&1 ||
				{ cat "$OUT/run-$u-$m-$rep.log" >&2; die "$m of $u (run $rep) failed; log $OUT/run-$u-$m-$rep.log"; }
			t1=$(date +%s.%N)
			case $m in rls | rls-warm) WARM="$WARM$u " ;; esac
			timeout "$MAX_SECS" sync -f "$dst"
			t2=$(date +%s.%N)
			secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
			fsecs=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')
			# Verify: same relative paths, same bytes.
			[ -d "$dst" ] || die "$m of $u (run $rep): $dst does not exist"
			sums "$dst" >"$OUT/dst-$u-$m.sha256"
			if ! cmp -s "$OUT/src-$u.sha256" "$OUT/dst-$u-$m.sha256"; then
				diff "$OUT/src-$u.sha256" "$OUT/dst-$u-$m.sha256" | head -n 20 >&2 || true
				die "$m of $u (run $rep): destination differs from source (sha256sum lists above; $OUT/dst-$u-$m.sha256)"
			fi
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$u" "$m" "$rep" "$secs" "$fsecs" "${BYTES[$u]}" "$load" >>"$OUT/times.tsv"
			printf '%-11s %-8s run %s: %7.3f s  %8.1f MB/s  (incl. flush %.3f s)  verified\n' "$u" "$m" "$rep" "$secs" \
				"$(awk -v b="${BYTES[$u]}" -v s="$secs" 'BEGIN { print b / s / 1e6 }')" "$fsecs" >&2
		done
	done
	rm -rf "${DST:?}"/*
done

# ---------------------------------------------------------------- report
# median UNIT METHOD [COLUMN]: median seconds over the runs (column 4, or 5
# for the time including the flush); empty when the method was not run.
median() {
	awk -F'\t' -v u="$1" -v m="$2" -v c="${3:-4}" 'NR > 1 && $1 == u && $2 == m { print $c }' "$OUT/times.tsv" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
mbps() { [ -n "$2" ] && awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }' || echo "—"; }
cell() { # BYTES SECS
	[ -n "$2" ] || { echo "—"; return; }
	printf '%s MB/s (%.2f s)' "$(mbps "$1" "$2")" "$2"
}
ratio() { # SECS_OTHER SECS_RLS: rls speed / other speed
	[ -n "$1" ] && [ -n "$2" ] && awk -v o="$1" -v r="$2" 'BEGIN { printf "%.2f", o / r }' || echo "—"
}
verdict() { # VALUE MIN
	[ "$1" = "—" ] && { echo "not measured"; return; }
	awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "met" : "MISSED" }'
}
declare -A MED MEDF
# shellcheck disable=SC2034 # MEDF is read through table's nameref
for u in $UNITS; do
	for m in rls rls-warm scp rsync cp cp-ossl; do
		MED[$u.$m]="$(median "$u" "$m" 4)"
		MEDF[$u.$m]="$(median "$u" "$m" 5)"
	done
done
label() { case $1 in "$BIG") echo "$BIG (1 × $BIG_MIB MiB)" ;; "$SMALL") echo "$SMALL ($SMALL_FILES × $SMALL_KIB KiB)" ;; esac; }
# table ARRAY: the results table from MED or MEDF; one row per unit for rls
# (fresh rlsd) and one for rls-warm (digests cached at the source).
table() {
	local -n t=$1
	local u b r what
	echo "| unit | rls pull | scp | rsync | cp+sha256sum (ceiling) | rls/scp | rls/ceiling |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	for u in $UNITS; do
		b=${BYTES[$u]}
		for r in rls rls-warm; do
			[ "$r" = rls ] || has_method rls-warm || continue
			[ "$r" = rls ] && what="fresh rlsd" || what="source digests cached"
			echo "| $(label "$u"), rls: $what | $(cell "$b" "${t[$u.$r]}") | $(cell "$b" "${t[$u.scp]}") | $(cell "$b" "${t[$u.rsync]}") | $(cell "$b" "${t[$u.cp]}") | $(ratio "${t[$u.scp]}" "${t[$u.$r]}") | $(ratio "${t[$u.cp]}" "${t[$u.$r]}") |"
		done
	done
}

say "results"
{
	echo "## rls transfer pull vs scp, rsync and a verified local copy, $STAMP"
	echo
	sed 's/^/    /' "$OUT/machine.txt"
	echo
	echo "Median of $REPS runs; MB/s = 10^6 bytes per second of wall time of the command alone; each"
	echo "destination fresh (rm -rf before), on the same file system as the source, and verified"
	echo "afterwards against the source's sha256sum list. $CACHE_NOTE."
	echo "rls pull fsyncs what it writes; scp, rsync and cp leave it in the page cache (see \"incl. flush\")."
	echo "rls, fresh rlsd: rlsd restarted on an empty data directory before each run (no digest cached in"
	echo "memory or in DATA/transfer-digests), so the source hashes the unit while the bytes travel and the"
	echo "client hashes what it receives; source digests cached: rlsd has served the unit before."
	echo
	table MED
	echo
	echo "Including \`sync -f DEST\` right after the command (data on disk for every method):"
	echo
	table MEDF
	echo
	echo "Targets (command alone):"
	local_targets() { # METHOD WHAT
		local r1 r2 r3
		r1=$(ratio "${MED[$BIG.scp]}" "${MED[$BIG.$1]}")
		r2=$(ratio "${MED[$BIG.cp]}" "${MED[$BIG.$1]}")
		r3=$(ratio "${MED[$SMALL.scp]}" "${MED[$SMALL.$1]}")
		echo "- $BIG, $2: rls pull ≥ 2× scp: $r1× — $(verdict "$r1" 2)"
		echo "- $BIG, $2: rls pull ≥ 60% of the local ceiling: $r2 — $(verdict "$r2" 0.6)"
		echo "- $SMALL, $2: rls pull ≥ 10× scp: $r3× — $(verdict "$r3" 10)"
	}
	local_targets rls "fresh rlsd"
	has_method rls-warm && local_targets rls-warm "source digests cached"
	# How far above scp the local machine itself goes: a target above this
	# is out of reach here whatever the transfer engine does.
	for u in $UNITS; do
		echo "- $u: the local ceiling itself is $(ratio "${MED[$u.scp]}" "${MED[$u.cp]}")× scp"
	done
	if has_method cp-ossl; then
		echo
		echo "The ceiling with hardware SHA-256 (cp -r + openssl dgst -sha256; sha256sum here hashes in software):"
		echo
		echo "| unit | cp+openssl sha256 | cp+sha256sum | rls (fresh rlsd)/it | rls (digests cached)/it |"
		echo "| --- | ---: | ---: | ---: | ---: |"
		for u in $UNITS; do
			b=${BYTES[$u]}
			echo "| $(label "$u") | $(cell "$b" "${MED[$u.cp-ossl]}") | $(cell "$b" "${MED[$u.cp]}") | $(ratio "${MED[$u.cp-ossl]}" "${MED[$u.rls]}") | $(ratio "${MED[$u.cp-ossl]}" "${MED[$u.rls-warm]}") |"
		done
	fi
	echo
	echo "Every run (seconds, command alone):"
	echo
	echo "| unit | method | runs | median |"
	echo "| --- | --- | --- | ---: |"
	for u in $UNITS; do
		for m in $METHODS; do
			echo "| $u | $m | $(awk -F'\t' -v u="$u" -v m="$m" 'NR > 1 && $1 == u && $2 == m { printf "%s%s", sep, $4; sep = ", " }' "$OUT/times.tsv") | ${MED[$u.$m]} |"
		done
	done
	echo
	echo "loadavg after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "Raw outputs: scripts/out/$STAMP/ (times.tsv has every run)"
} | tee "$OUT/results.md"
