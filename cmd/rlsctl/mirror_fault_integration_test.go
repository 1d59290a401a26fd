package main

// The acceptance test of the mirror's PostgreSQL intake: rows inserted
// through the shipped trigger are all mirrored exactly once while the
// mirroring rlsd is kill -9ed and restarted (rounds from
// rlsdtest.FaultRounds) and PostgreSQL restarts once.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/internal/pgtest"
	"github.com/solar-archive/rls/internal/rlsdtest"
)

func TestFaultMirrorIntake(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and rlsd processes")
	}
	rounds := rlsdtest.FaultRounds(t)
	rnd := rlsdtest.FaultRand(t)
	pg := pgtest.Start(t, pgtest.Options{})
	ctx := context.Background()
	sql := func(q string, args ...any) {
		t.Helper()
		conn, err := pgx.Connect(ctx, pg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	count := func(table string) int {
		t.Helper()
		conn, err := pgx.Connect(ctx, pg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The DRMS side: the shipped queue and trigger, and a series table.
	script, err := os.ReadFile(filepath.Join("..", "..", "scripts", "drms-sunum-queue.sql"))
	must(t, err)
	sql(string(script))
	sql("CREATE SCHEMA hmi")
	sql("CREATE TABLE hmi.m_45s (recnum bigserial PRIMARY KEY, sunum bigint, t_obs double precision)")
	sql("SELECT rls_watch_series('hmi.m_45s')")

	f := startFederation(t)
	const perRound = 12
	var sunums []uint64
	for i := range (rounds + 1) * perRound {
		sunums = append(sunums, uint64(50_000+i))
	}
	f.addUnits("hmi.m_45s", sunums...)

	// insert queues sunums as DRMS would: rows of the series, in one
	// transaction, which the trigger copies to sunum_queue.
	next := 0
	insert := func(n int) {
		t.Helper()
		var vals []string
		for _, s := range sunums[next : next+n] {
			vals = append(vals, fmt.Sprintf("(%d, %d)", s, s%1000))
		}
		sql("INSERT INTO hmi.m_45s (sunum, t_obs) VALUES " + strings.Join(vals, ","))
		next += n
	}

	data, root := t.TempDir(), t.TempDir()
	store := filepath.Join(root, "sums")
	hookLog := filepath.Join(t.TempDir(), "on-done.log")
	// The hook records each placed unit's directory inode: a unit placed
	// twice would show another inode, or a second line.
	hook := filepath.Join(t.TempDir(), "on-done.sh")
	must(t, os.WriteFile(hook, []byte("#!/bin/sh\necho \"$1 $(stat -c %i \"$2\")\" >> "+hookLog+"\n"), 0o755))
	start := func() *rlsdtest.Proc {
		return f.startMirror("nso", data, root, "--mirror-authority", "jsoc="+f.jsoc.Addr,
			"--mirror-intake-dsn", pg.DSN, "--mirror-intake-poll-interval", "200ms", "--mirror-intake-batch-size", "5",
			"--mirror-batch-units", "4", "--mirror-retry-base", "1s", "--mirror-retry-cap", "2s", "--mirror-on-done", hook)
	}
	nso := start()
	for round := range rounds {
		insert(perRound / 2)
		if round == 0 {
			// PostgreSQL restarts under the running intake.
			must(t, pg.Restart())
		}
		insert(perRound / 2)
		time.Sleep(rlsdtest.Delay(rnd, 0, 600*time.Millisecond)) // when to kill: a random point of the work
		nso.Kill()                                               // kill -9
		nso = start()
	}
	insert(perRound) // after the last restart

	rlsdtest.Eventually(t, 60*time.Second, func() error {
		if n := count("sunum_queue"); n != 0 {
			return fmt.Errorf("sunum_queue holds %d rows", n)
		}
		return nil
	})
	if n := count("sunum_queue_rejected"); n != 0 {
		t.Errorf("%d rows rejected", n)
	}
	f.ctl(0, nso, append([]string{"mirror", "wait", "--timeout", "120s"}, sunumArgs(sunums)...)...)
	f.sameUnits(store, sunums)

	// Exactly once: a record per sunum and no other, one mapping each,
	// and no unit placed twice.
	r := f.ctl(0, nso, "-o", "json", "mirror", "list", "--state", "DONE")
	if !strings.Contains(r.stdout, fmt.Sprintf(`"records":%d}`, len(sunums))) {
		t.Errorf("list DONE: want %d records, got %s", len(sunums), r.stdout[max(0, len(r.stdout)-80):])
	}
	for _, n := range sunums {
		q := f.ctl(0, nso, "-o", "json", "lrc", "query", "lfn", strconv.FormatUint(n, 10))
		var res []queryItem
		must(t, json.Unmarshal([]byte(q.stdout), &res))
		if len(res) != 1 || len(res[0].PFNs) != 1 || res[0].PFNs[0] != filepath.Join(store, "D"+strconv.FormatUint(n, 10)) {
			t.Errorf("sunum %d: mappings %+v", n, res)
		}
	}
	waitHooks(t, hookLog, sunums)
	b, err := os.ReadFile(hookLog)
	must(t, err)
	// The hook is at least once: a kill after it ran and before its
	// pending mark was cleared runs it again, on the same placed unit.
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		sunum, ino, _ := strings.Cut(line, " ")
		seen[sunum]++
		var st syscall.Stat_t
		must(t, syscall.Stat(filepath.Join(store, "D"+sunum), &st))
		if strconv.FormatUint(st.Ino, 10) != ino {
			t.Errorf("sunum %s: placed as inode %s, now inode %d (placed again)", sunum, ino, st.Ino)
		}
	}
	again := 0
	for _, n := range sunums {
		switch seen[strconv.FormatUint(n, 10)] {
		case 0:
			t.Errorf("the on-done hook never ran for %d", n)
		case 1:
		default:
			again++
		}
	}
	t.Logf("the on-done hook ran again after a kill for %d of %d units", again, len(sunums))
}
