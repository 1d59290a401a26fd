package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/catalog/pgcatalog"
	"github.com/solar-archive/rls/internal/inflight"
)

// The PostgreSQL catalog backend (catalog/pgcatalog) against plain SQL
// through pgx on the same schema, in this harness (scripts/bench-lrc-
// backends.sh runs them):
//
//	pgbench-lrc rls-schema  --dsn DSN             create the backend's schema (its migrations)
//	pgbench-lrc copy-rls    --dsn DSN -f FILE     plain pgx: COPY the mappings into rls_map and their
//	                                              feed records into rls_feed, one transaction
//	pgbench-lrc pgcat-bulk  --dsn DSN -f FILE     pgcatalog.BulkWrite(create) in chunks of 10,000,
//	                                              --inflight at once (as rlsctl lrc bulk)
//	pgbench-lrc pgcat-query --dsn DSN -n N -c C   pgcatalog.QueryLFN from C goroutines, one pool
//	pgbench-lrc pgcat-create --dsn DSN -n N -c C  pgcatalog.Create of new LFNs, durable
//
// Plain queries and inserts on the same schema are query and insert with
// --table rls_map.

// runPgcat runs one of the subcommands above; false if sub is none of them.
func runPgcat(ctx context.Context, cfg config, sub string) (bool, error) {
	if cfg.dsn == "" && sub != "" {
		switch sub {
		case "rls-schema", "copy-rls", "pgcat-bulk", "pgcat-query", "pgcat-create":
			return true, fmt.Errorf("%s: --dsn is required", sub)
		}
	}
	var (
		res result
		err error
	)
	switch sub {
	case "rls-schema":
		c, err := pgcatalog.Open(ctx, cfg.dsn, nil)
		if err != nil {
			return true, err
		}
		fmt.Fprintf(os.Stderr, "rls catalog schema version %d ready\n", pgcatalog.SchemaVersion())
		return true, c.Close()
	case "copy-rls":
		res, err = copyRLS(ctx, cfg)
	case "pgcat-bulk":
		res, err = pgcatBulk(ctx, cfg)
	case "pgcat-query", "pgcat-create":
		res, err = pgcatLoad(ctx, cfg, sub)
	default:
		return false, nil
	}
	if err != nil {
		return true, err
	}
	res.Server = serverVersion(ctx, cfg.dsn)
	return true, printResult(res, nil)
}

// readMappings reads LFN<TAB>PFN lines.
func readMappings(file string) ([]catalog.Mapping, error) {
	var in io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
	}
	var ms []catalog.Mapping
	sc := bufio.NewScanner(bufio.NewReaderSize(in, 1<<20))
	for line := 1; sc.Scan(); line++ {
		lfn, pfn, ok := strings.Cut(sc.Text(), "\t")
		if !ok || lfn == "" || pfn == "" {
			return nil, fmt.Errorf("line %d: want LFN<TAB>PFN, got %q", line, sc.Text())
		}
		ms = append(ms, catalog.Mapping{LFN: lfn, PFN: pfn})
	}
	return ms, sc.Err()
}

// copyRLS is what plain SQL does to hold the same state as the backend:
// the mappings, one create record each in the feed, and the meta row's
// counts, in one transaction (the file is read first, not timed).
func copyRLS(ctx context.Context, cfg config) (result, error) {
	ms, err := readMappings(cfg.file)
	if err != nil {
		return result{}, err
	}
	conn, err := pgx.Connect(ctx, cfg.dsn)
	if err != nil {
		return result{}, err
	}
	defer conn.Close(ctx)
	start := time.Now()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return result{}, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	n := len(ms)
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"rls_map"}, []string{"lfn", "pfn"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) { return []any{ms[i].LFN, ms[i].PFN}, nil })); err != nil {
		return result{}, err
	}
	var base int64
	if err := tx.QueryRow(ctx, `SELECT seq FROM rls_meta WHERE id = 1 FOR UPDATE`).Scan(&base); err != nil {
		return result{}, err
	}
	now := time.Now()
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"rls_feed"}, []string{"seq", "kind", "lfn", "pfn", "lfn_added", "at"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			return []any{base + int64(i) + 1, int16(catalog.ChangeCreate), ms[i].LFN, ms[i].PFN, true, now}, nil
		})); err != nil {
		return result{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE rls_meta SET seq = seq + $1, lfns = lfns + $1, pfns = pfns + $1, mappings = mappings + $1 WHERE id = 1`, n); err != nil {
		return result{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return result{}, err
	}
	secs := time.Since(start).Seconds()
	if _, err := conn.Exec(ctx, "ANALYZE rls_map"); err != nil { // not timed, as in copy
		return result{}, err
	}
	return result{Op: "copy-rls", Method: "plain pgx: COPY rls_map + COPY rls_feed + meta row, one transaction",
		N: int64(n), OK: int64(n), Seconds: secs, Rate: float64(n) / secs}, nil
}

// bulkChunk is the size of pgcat-bulk's calls: rlsctl lrc bulk's default.
const bulkChunk = 10000

// pgcatBulk loads the file with pgcatalog.BulkWrite in chunks of
// bulkChunk, with cfg.inflight calls in flight as rlsctl lrc bulk sends
// them (internal/inflight: a chunk sharing an LFN with one in flight waits
// for it).
func pgcatBulk(ctx context.Context, cfg config) (result, error) {
	ms, err := readMappings(cfg.file)
	if err != nil {
		return result{}, err
	}
	c, err := pgcatalog.Open(ctx, cfg.dsn, nil)
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	chunk := bulkChunk
	var ok, bad int64
	var first string
	start := time.Now()
	next := func() (inflight.Chunk[[]catalog.Mapping], bool) {
		if len(ms) == 0 {
			return inflight.Chunk[[]catalog.Mapping]{}, false
		}
		items := ms[:min(chunk, len(ms))]
		ms = ms[len(items):]
		keys := make([]string, len(items))
		for i, m := range items {
			keys[i] = m.LFN
		}
		return inflight.Chunk[[]catalog.Mapping]{Items: items, Keys: keys}, true
	}
	n := len(ms)
	err = inflight.Run(ctx, cfg.inflight, next, func(ctx context.Context, items []catalog.Mapping) ([]error, error) {
		errs, _, err := c.BulkWrite(ctx, catalog.OpCreate, items)
		return errs, err
	}, func(_ []catalog.Mapping, errs []error) error {
		for _, e := range errs {
			if e == nil {
				ok++
			} else if bad++; first == "" {
				first = e.Error()
			}
		}
		return nil
	})
	if err != nil {
		return result{}, err
	}
	secs := time.Since(start).Seconds()
	return result{Op: "pgcat-bulk", Method: fmt.Sprintf("pgcatalog.BulkWrite(create), chunks of %d, %d in flight", chunk, cfg.inflight),
		N: int64(n), OK: ok, Errors: bad, Seconds: secs, Rate: float64(ok) / secs, FirstErr: first}, nil
}

// pgcatLoad drives pgcatalog.QueryLFN of random loaded LFNs, or durable
// Creates of new ones, from cfg.conc goroutines sharing one catalog (its
// pool has cfg.conc connections).
func pgcatLoad(ctx context.Context, cfg config, sub string) (result, error) {
	c, err := pgcatalog.Open(ctx, cfg.dsn, &pgcatalog.Options{MaxConns: int32(cfg.conc)})
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	// Open the pool's connections before measuring, as load does for
	// plain pgx.
	var wg sync.WaitGroup
	for range cfg.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				_, _ = c.QueryLFN(ctx, strconv.FormatInt(cfg.lfnBase, 10))
			}
		}()
	}
	wg.Wait()
	if sub == "pgcat-create" {
		res, err := drive(ctx, cfg, func(_ int, i int64, _ *rand.Rand) error {
			lfn := strconv.FormatInt(cfg.lfnBase+i, 10)
			_, err := c.Create(ctx, lfn, "/SUM0/D"+lfn)
			return err
		})
		res.Op, res.Method = sub, "pgcatalog.Create, durable (group commit), -c goroutines"
		return res, err
	}
	res, err := drive(ctx, cfg, func(_ int, _ int64, rng *rand.Rand) error {
		lfn := strconv.FormatInt(cfg.lfnBase+rng.Int64N(cfg.lfnCount), 10)
		pfns, err := c.QueryLFN(ctx, lfn)
		if err == nil && len(pfns) == 0 {
			err = fmt.Errorf("lfn %s: no PFN", lfn)
		}
		return err
	})
	res.Op, res.Method = sub, "pgcatalog.QueryLFN, pool of -c connections"
	return res, err
}
