#!/usr/bin/env bash
# demo.sh — a mirroring federation on loopback in about a minute: an index
# and three sites, the authoritative one and two mirrors, bringing N
# storage units from the first to the other two.
#
#   rli   role rli: the replica location index every site reports to
#   jsoc  roles lrc,transfer: the authoritative site. It holds N synthetic
#         storage units (1-4 small files each) of two series, hmi.m_45s (the
#         first half of the sunums) and aia.lev1 (the second half), each
#         registered in its catalog as LFN = sunum, PFN = its path, with the
#         attributes series, size and files; it sends its list, then deltas,
#         to the index
#   nso   roles lrc,transfer,mirror, tier 1: pulls from peers first and from
#         jsoc (its authority) last; reports what it placed to the index
#   sao   roles lrc,transfer,mirror, tier 2: pulls from peers only, never
#         from the authority; a unit no peer holds yet waits in PNDG
#
# It asks sao and then nso to hold all N units (rlsctl mirror enqueue; sao at
# once, so its units wait in PNDG until nso has them), prints the records
# per state at both mirrors every second, waits until both hold every unit
# (rlsctl mirror wait), checks every file at nso and sao against jsoc's,
# prints each mirror's coverage against the authority and, per site, how
# many units came from which source (sao's all from nso, none from jsoc),
# and stops every daemon with SIGTERM, expecting exit status 0. Any failure
# exits non-zero and prints the last lines of every log.
#
# INTAKE=postgres (make demo-postgres) does the same with the PostgreSQL
# intake instead of rlsctl mirror enqueue: it starts a throwaway PostgreSQL
# cluster in the temporary directory (initdb as the user "nobody" when run
# as root, as the tests do; binaries from /usr/lib/postgresql/*/bin), one
# database per mirror standing in for that site's DRMS database, installs
# scripts/drms-sunum-queue.sql in each, creates the series tables hmi.m_45s
# and aia.lev1 with the shipped trigger on them, and inserts one series
# record per unit: the trigger fills sunum_queue and rlsd (--mirror-intake-dsn)
# takes the rows from there.
#
# Everything runs over mutual TLS: "rlsctl cert" makes a CA and a
# certificate for each site (its CN is the site's name, so with no acl: in
# the configuration each site may speak for itself only) and one for the
# operator, which rlsctl presents through RLS_CERT, RLS_KEY and RLS_CA. The
# demo ends by showing that a call without a certificate is refused.
#
# Needs jq. Environment: N (units, default 200), INTAKE (rlsctl|postgres),
# DEMO_TIMEOUT (seconds to wait for the mirrors, default 120), KEEP=1 keeps
# the temporary directory, NO_BUILD=1 uses the binaries already in bin/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${N:-200}"
INTAKE="${INTAKE:-rlsctl}"
DEMO_TIMEOUT="${DEMO_TIMEOUT:-120}"
BASE=100000000 # first sunum
SERIES=(hmi.m_45s aia.lev1)

say() { printf '\n== %s\n' "$*"; }
die() { printf 'demo: FAILED: %s\n' "$*" >&2; exit 1; }
# run echoes a command, then runs it.
run() { printf '$ %s\n' "$*"; "$@"; }

case $INTAKE in rlsctl | postgres) ;; *) die "INTAKE=$INTAKE: want rlsctl or postgres" ;; esac
[ "$N" -ge 2 ] 2>/dev/null || die "N=$N: want a number ≥ 2"
command -v jq >/dev/null || die "jq is missing (apt-get install -y jq)"

if [ "${NO_BUILD:-}" != 1 ]; then
	say "build"
	make --no-print-directory build
	go build -o bin/mkunits ./scripts/mkunits
fi
RLSD="$ROOT/bin/rlsd"
RLSCTL="$ROOT/bin/rlsctl"
MKUNITS="$ROOT/bin/mkunits"
[ -x "$RLSD" ] && [ -x "$RLSCTL" ] && [ -x "$MKUNITS" ] || die "bin/rlsd, bin/rlsctl or bin/mkunits missing (run without NO_BUILD=1)"
"$RLSCTL" mirror --help 2>&1 | grep -q 'enqueue' || die "this rlsctl has no 'mirror' commands"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/rls-demo.XXXXXX")"
chmod 0755 "$WORK"
PIDS=()
PG_BIN=""
cleanup() {
	local rc=$?
	for pid in "${PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	if [ -n "$PG_BIN" ] && [ -f "$WORK/pg/data/postmaster.pid" ]; then
		pg_as "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
	fi
	if [ "$rc" -ne 0 ]; then
		for log in "$WORK"/*.log "$WORK"/pg/*.log; do
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

# start NAME ARGS...: runs rlsd --site NAME with data in $WORK/NAME/data on
# a free loopback port (port 0: rlsd logs addr=HOST:PORT), waits until it
# answers, and sets ADDR and PID.
start() {
	local name=$1
	shift
	mkdir -p "$WORK/$name/data"
	local tls=(--tls-cert "$CERTS/$name.pem" --tls-key "$CERTS/$name-key.pem" --tls-client-ca "$CERTS/ca.pem")
	echo "\$ rlsd --site $name --data $WORK/$name/data --listen 127.0.0.1:0 ${tls[*]} $*"
	"$RLSD" --site "$name" --data "$WORK/$name/data" --listen 127.0.0.1:0 "${tls[@]}" "$@" >"$WORK/$name.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	ADDR=""
	for _ in $(seq 300); do # 30 s
		kill -0 "$PID" 2>/dev/null || die "rlsd $name exited during start-up"
		ADDR="$(grep 'rlsd serving' "$WORK/$name.log" | grep -oE '[^_]addr="?127\.0\.0\.1:[0-9]+' | head -n1 | sed -E 's/^.addr="?//')" || true
		[ -n "$ADDR" ] && break
		sleep 0.1
	done
	[ -n "$ADDR" ] || die "rlsd $name logged no 'rlsd serving ... addr=127.0.0.1:PORT' within 30s"
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

# ---------------------------------------------------------------- PostgreSQL
# pg_as CMD...: runs a PostgreSQL binary as the unprivileged user when we
# are root (PostgreSQL refuses to run as root), else as ourselves.
pg_as() {
	if [ "$(id -u)" -eq 0 ]; then
		setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
	else
		"$@"
	fi
}
PG_PORT=""
# start_pg: initdb a throwaway cluster in $WORK/pg (trust auth, loopback
# only, a private socket directory) and start it; sets PG_PORT.
start_pg() {
	PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
	[ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install -y postgresql)"
	mkdir -p "$WORK/pg/sock"
	[ "$(id -u)" -eq 0 ] && chown -R nobody:nogroup "$WORK/pg"
	run pg_as "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust --no-sync -E UTF8 >"$WORK/pg/initdb.log" 2>&1 ||
		die "initdb failed (log $WORK/pg/initdb.log)"
	for attempt in 1 2 3 4 5; do
		PG_PORT=$((20000 + RANDOM % 20000))
		ss -Htln "sport = :$PG_PORT" | grep -q . && continue
		if run pg_as "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/postgres.log" -w -t 30 \
			-o "-p $PG_PORT -k $WORK/pg/sock -c listen_addresses=127.0.0.1" start >/dev/null; then
			return 0
		fi
		echo "postgres did not start on port $PG_PORT (attempt $attempt)"
	done
	die "postgres did not start in 5 attempts"
}
psql_db() { # DB ARGS...
	local db=$1
	shift
	PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$db" "$@"
}
# drms_db DB: a database standing in for one site's DRMS: the shipped queue
# and trigger, and the two series tables watched by it.
drms_db() {
	psql_db postgres -c "CREATE DATABASE $1"
	run psql_db "$1" -f scripts/drms-sunum-queue.sql
	psql_db "$1" >/dev/null <<'EOF'
CREATE SCHEMA hmi;
CREATE SCHEMA aia;
-- A DRMS series table, reduced to what the trigger reads.
CREATE TABLE hmi.m_45s (recnum bigserial PRIMARY KEY, sunum bigint, t_rec timestamptz);
CREATE TABLE aia.lev1 (recnum bigserial PRIMARY KEY, sunum bigint, t_rec timestamptz, wavelnth int);
SELECT rls_watch_series('hmi.m_45s');
SELECT rls_watch_series('aia.lev1');
EOF
}

# ---------------------------------------------------------------- units
say "jsoc's storage units: $N units of ${SERIES[*]}, registered in its catalog (LFN = sunum, PFN = path)"
mkdir -p "$WORK/jsoc/data" "$WORK/jsoc/sums" "$WORK/nso/sums" "$WORK/sao/sums"
MK=("$MKUNITS" -root "$WORK/jsoc/sums" -catalog "$WORK/jsoc/data/catalog" -first "$BASE" -n "$N" -series "$(IFS=,; echo "${SERIES[*]}")")
echo "\$ ${MK[*]} >$WORK/units.tsv"
"${MK[@]}" >"$WORK/units.tsv"
head -n 3 "$WORK/units.tsv"
echo "... ($(wc -l <"$WORK/units.tsv") units, $(awk -F'\t' '{ f += $5; b += $4 } END { printf "%d files, %.1f MB", f, b / 1e6 }' "$WORK/units.tsv"))"
for s in "${SERIES[@]}"; do
	awk -F'\t' -v s="$s" '$2 == s { print $1 }' "$WORK/units.tsv" >"$WORK/sunums-$s.txt"
done
cut -f1 "$WORK/units.tsv" >"$WORK/sunums.txt"

# ---------------------------------------------------------------- certificates
CERTS="$WORK/certs"
say "certificates: a local CA, the index, the three sites and the operator (ECDSA P-256)"
run "$RLSCTL" cert ca --dir "$CERTS" >/dev/null
for who in rli jsoc nso sao operator; do
	run "$RLSCTL" cert issue "$who" --dir "$CERTS" >/dev/null
done
export RLS_CERT="$CERTS/operator.pem" RLS_KEY="$CERTS/operator-key.pem" RLS_CA="$CERTS/ca.pem"

# ---------------------------------------------------------------- daemons
say "start the index and the three sites, over mutual TLS"
# Deltas within 100 ms of a catalog write, so a unit nso places is offered
# to sao at once; PNDG units are looked up again every second.
UPD=(--update-mode list --update-deltas --update-delta-delay 100ms)
start rli --roles rli
RLI=$ADDR
start jsoc --roles lrc,transfer --export-root "$WORK/jsoc/sums" --update-to "$RLI" "${UPD[@]}"
JSOC=$ADDR
MIRROR=(--mirror-index "$RLI" --mirror-authority "jsoc=$JSOC" --mirror-pending-interval 1s)
INTAKE_NSO=() INTAKE_SAO=()
if [ "$INTAKE" = postgres ]; then
	say "a throwaway PostgreSQL with one DRMS database per mirror"
	start_pg
	drms_db drms_nso
	drms_db drms_sao
	INTAKE_NSO=(--mirror-intake-dsn "postgres://postgres@127.0.0.1:$PG_PORT/drms_nso?sslmode=disable")
	INTAKE_SAO=(--mirror-intake-dsn "postgres://postgres@127.0.0.1:$PG_PORT/drms_sao?sslmode=disable")
fi
# sao names jsoc as its authority too: a tier-2 site never pulls from it,
# but asks it what a series holds (coverage) and whether a sunum exists.
start sao --roles lrc,transfer,mirror --export-root "$WORK/sao/sums" --update-to "$RLI" "${UPD[@]}" \
	"${MIRROR[@]}" --mirror-store "$WORK/sao/sums" --mirror-tier 2 "${INTAKE_SAO[@]}"
SAO=$ADDR
start nso --roles lrc,transfer,mirror --export-root "$WORK/nso/sums" --update-to "$RLI" "${UPD[@]}" \
	"${MIRROR[@]}" --mirror-store "$WORK/nso/sums" --mirror-tier 1 "${INTAKE_NSO[@]}"
NSO=$ADDR
run "$RLSCTL" --server "$JSOC" admin update
run "$RLSCTL" --server "$RLI" rli sites
run "$RLSCTL" --server "$RLI" locate "$BASE" --verify

# ---------------------------------------------------------------- enqueue
T0=$(date +%s.%N)
if [ "$INTAKE" = rlsctl ]; then
	say "ask sao (tier 2) and then nso (tier 1) to hold every unit"
	for site in sao nso; do
		addr=$SAO
		[ "$site" = nso ] && addr=$NSO
		for s in "${SERIES[@]}"; do
			run "$RLSCTL" --server "$addr" mirror enqueue --series "$s" -f "$WORK/sunums-$s.txt"
		done
	done
else
	say "insert one series record per unit into each mirror's DRMS database; the trigger queues the sunums"
	for db in drms_sao drms_nso; do
		awk -F'\t' '$2 == "hmi.m_45s" { print $1 }' "$WORK/units.tsv" | sed "s/.*/(&, now())/" | paste -sd, |
			sed 's/^/INSERT INTO hmi.m_45s (sunum, t_rec) VALUES /' | psql_db "$db"
		awk -F'\t' '$2 == "aia.lev1" { print $1 }' "$WORK/units.tsv" | sed "s/.*/(&, now(), 171)/" | paste -sd, |
			sed 's/^/INSERT INTO aia.lev1 (sunum, t_rec, wavelnth) VALUES /' | psql_db "$db"
		echo "$db: $N series records inserted; sunum_queue now holds $(psql_db "$db" -tA -c 'SELECT count(*) FROM sunum_queue') rows (the intake records them as NQUE, then deletes them)"
	done
fi

# ---------------------------------------------------------------- progress
# states ADDR: "STATE=count ..." over every series the mirror has records of.
states() {
	"$RLSCTL" --server "$1" -o json mirror coverage 2>/dev/null |
		jq -r '[.series[]?.states // {} | to_entries[]] | group_by(.key)
			| map([.[0].key, (map(.value | tonumber) | add)]) | map(select(.[1] > 0) | "\(.[0])=\(.[1])") | join(" ")'
}
count() { # "STATE=n ..." STATE
	printf '%s\n' "$1" | tr ' ' '\n' | awk -F= -v s="$2" '$1 == s { print $2; f = 1 } END { if (!f) print 0 }'
}
say "progress: records per state at each mirror (NQUE REDY BQUED QUED DONE FAIL PNDG INVD)"
deadline=$(($(date +%s) + DEMO_TIMEOUT))
while :; do
	sn="$(states "$NSO")" || sn=""
	ss="$(states "$SAO")" || ss=""
	el=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%5.1f", b - a }')
	printf '%ss  nso: %-40s sao: %s\n' "$el" "${sn:-(none yet)}" "${ss:-(none yet)}"
	[ "$(count "$sn" DONE)" -ge "$N" ] && [ "$(count "$ss" DONE)" -ge "$N" ] && break
	for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "rlsd pid $pid exited"; done
	[ "$(date +%s)" -lt "$deadline" ] || die "the mirrors did not hold all $N units within ${DEMO_TIMEOUT}s"
	sleep 1
done
T1=$(date +%s.%N)
SECS=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", b - a }')

say "every unit is DONE at both mirrors (rlsctl mirror wait exits 0 only then)"
for addr in "$NSO" "$SAO"; do
	# shellcheck disable=SC2046 # one argument per sunum
	"$RLSCTL" --server "$addr" mirror wait --timeout 30s $(cat "$WORK/sunums.txt") >/dev/null ||
		die "rlsctl mirror wait at $addr exited $?"
done
echo "ok: nso and sao hold all $N units, ${SECS}s after the enqueue"
run "$RLSCTL" --server "$SAO" mirror status "$BASE"

say "every file at nso and sao is jsoc's"
# sums DIR: sha256sum of every file under DIR, by relative path, sorted.
sums() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum); }
sums "$WORK/jsoc/sums" >"$WORK/jsoc.sha256"
for site in nso sao; do
	sums "$WORK/$site/sums" >"$WORK/$site.sha256"
	cmp -s "$WORK/jsoc.sha256" "$WORK/$site.sha256" || {
		diff "$WORK/jsoc.sha256" "$WORK/$site.sha256" | head -n 10 >&2
		die "$site's units differ from jsoc's"
	}
	echo "$site: $(wc -l <"$WORK/$site.sha256") files, identical to jsoc's (sha256)"
done
[ -z "$(find "$WORK/nso/sums" "$WORK/sao/sums" -name '.rls-staging*' -mindepth 1 -maxdepth 1 ! -empty)" ] ||
	die "staging left behind"

say "coverage against the authority's catalog"
run "$RLSCTL" --server "$NSO" mirror coverage
run "$RLSCTL" --server "$SAO" mirror coverage

say "where the units came from"
run "$RLSCTL" --server "$NSO" mirror sources
run "$RLSCTL" --server "$SAO" mirror sources
# from ADDR SITE: units placed at ADDR from source SITE.
from() {
	"$RLSCTL" --server "$1" -o json mirror sources |
		jq -r --arg s "$2" '[.sources[]? | select(.site == $s) | .units | tonumber] | add // 0'
}
printf '\n| site | units DONE | from jsoc | from nso | from sao |\n| --- | ---: | ---: | ---: | ---: |\n'
for site in nso sao; do
	addr=$NSO
	[ "$site" = sao ] && addr=$SAO
	done_n=$(count "$(states "$addr")" DONE)
	printf '| %s | %s | %s | %s | %s |\n' "$site" "$done_n" "$(from "$addr" jsoc)" "$(from "$addr" nso)" "$(from "$addr" sao)"
done
SAO_JSOC=$(from "$SAO" jsoc)
SAO_NSO=$(from "$SAO" nso)
[ "$SAO_JSOC" -eq 0 ] || die "sao (tier 2) pulled $SAO_JSOC units from the authority jsoc"
[ $((SAO_NSO * 2)) -gt "$N" ] || die "sao pulled only $SAO_NSO of $N units from nso"

say "the index now knows three holders of each unit"
run "$RLSCTL" --server "$RLI" locate "$BASE" "$((BASE + N - 1))" --verify

say "security: no one gets in without a certificate from the CA"
set +e
RLS_CERT= RLS_KEY= run "$RLSCTL" --server "$NSO" --timeout 3s mirror coverage
rc=$?
set -e
echo "(without a client certificate: exit status $rc, expected 5, the handshake is refused)"
[ "$rc" -eq 5 ] || die "a call without a client certificate exited $rc, want 5"

say "stop every daemon with SIGTERM"
stop "${PIDS[3]}" nso
stop "${PIDS[2]}" sao
stop "${PIDS[1]}" jsoc
stop "${PIDS[0]}" rli
PIDS=()
if [ -n "$PG_BIN" ]; then
	pg_as "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m fast -w -t 30 stop >/dev/null
	echo "postgres stopped"
	PG_BIN=""
fi
say "demo OK: $N units mirrored to nso (tier 1) and sao (tier 2) in ${SECS}s"
