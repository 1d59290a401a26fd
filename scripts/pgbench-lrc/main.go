// Command pgbench-lrc is the PostgreSQL side of scripts/bench-lrc.sh: it
// holds the same LFN→PFN mappings as an rls catalog in the class of schema
// Globus RLS used on a relational backend, and measures the same operations.
//
//	CREATE TABLE t (lfn text NOT NULL, pfn text NOT NULL, UNIQUE (lfn, pfn));
//	CREATE INDEX t_pfn_lfn ON t (pfn, lfn);
//
// The unique (lfn, pfn) index serves lookups by LFN, the second one lookups
// by PFN: indexes both ways, as a catalog needs.
//
// Usage:
//
//	pgbench-lrc serve                      start a durable pgtest server, print "dsn=…", run until SIGINT/SIGTERM
//	pgbench-lrc setup   --dsn DSN          (re)create the table with its indexes
//	pgbench-lrc copy    --dsn DSN -f FILE  COPY "LFN<TAB>PFN" lines into the table (indexes present)
//	pgbench-lrc query   --dsn DSN -n N -c C --lfn-base B --lfn-count K
//	pgbench-lrc insert  --dsn DSN -n N -c C --lfn-base B
//	pgbench-lrc rls-query --addr HOST:PORT -n N -c C --lfn-base B --lfn-count K
//	pgbench-lrc bulk-query --dsn DSN -n CALLS -c C --batch 1000 --lfn-base B --lfn-count K
//	pgbench-lrc rls-bulkquery --addr HOST:PORT -n CALLS -c C --batch 1000 --lfn-base B --lfn-count K
//
// bulk-query and rls-bulkquery look up --batch random loaded LFNs a call:
// PostgreSQL with a prepared "WHERE lfn = ANY($1)", rls with
// rls.v1.Catalog/BulkQuery; their results also give names_per_s.
//
// rls-query is the control for the load generator: it sends rls.v1.Catalog/
// QueryLFN through the generated Go stub with exactly the harness that drives
// PostgreSQL, so that a difference between ghz's figures and PostgreSQL's can
// be split into server cost and client cost (ghz renders a template and
// builds a dynamic message per call, on the same CPUs as the server).
//
// Without --dsn, copy/query/insert start their own throwaway server (and
// setup runs first). Every measuring subcommand prints one JSON object on
// stdout and a human line on stderr. Every load loop is bounded by -n and by
// --max-time.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/inflight"
	"github.com/solar-archive/rls/internal/pgtest"
	"github.com/solar-archive/rls/internal/secure"
)

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

// result is what a measuring subcommand reports.
type result struct {
	Op       string  `json:"op"`
	Method   string  `json:"method"`
	N        int64   `json:"n"`
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	Conc     int     `json:"concurrency,omitempty"`
	RPS      float64 `json:"target_rps,omitempty"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"rate_per_s"`
	Batch    int     `json:"batch,omitempty"`
	NameRate float64 `json:"names_per_s,omitempty"`
	P50ms    float64 `json:"p50_ms,omitempty"`
	P99ms    float64 `json:"p99_ms,omitempty"`
	FirstErr string  `json:"first_error,omitempty"`
	Server   string  `json:"server"`
}

type config struct {
	dsn           string
	table         string
	n             int64
	conc          int
	file          string
	lfnBase       int64
	lfnCount      int64
	maxTime       time.Duration
	sharedBuffers string
	dsnFile       string
	rps           float64
	addr          string
	grpcConns     int
	batch         int
	cpuProfile    string
	inflight      int
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	sub := os.Args[1]
	var cfg config
	fs := flag.NewFlagSet(sub, flag.ExitOnError)
	fs.StringVar(&cfg.dsn, "dsn", "", "PostgreSQL DSN; empty starts a throwaway durable server")
	fs.StringVar(&cfg.table, "table", "t", "table name")
	fs.Int64Var(&cfg.n, "n", 200000, "number of operations")
	fs.IntVar(&cfg.conc, "c", 32, "concurrent clients (one connection each)")
	fs.StringVar(&cfg.file, "f", "", "input file of LFN<TAB>PFN lines ('-' for stdin)")
	fs.Int64Var(&cfg.lfnBase, "lfn-base", 100000000, "first sunum (query: of the loaded range; insert: of the new LFNs)")
	fs.Int64Var(&cfg.lfnCount, "lfn-count", 1000000, "query: number of loaded sunums from --lfn-base")
	fs.DurationVar(&cfg.maxTime, "max-time", 10*time.Minute, "stop a load loop after this long")
	fs.StringVar(&cfg.sharedBuffers, "shared-buffers", "1GB", "serve/own server: shared_buffers")
	fs.Float64Var(&cfg.rps, "rps", 0, "query/insert: total operations per second (0: as fast as possible)")
	fs.StringVar(&cfg.addr, "addr", "", "rls-query: rlsd gRPC address HOST:PORT")
	fs.IntVar(&cfg.grpcConns, "conns", 1, "rls-query: gRPC connections shared by the clients (ghz's default is 1)")
	fs.IntVar(&cfg.batch, "batch", 1000, "bulk-query/rls-bulkquery: LFNs per call")
	fs.IntVar(&cfg.inflight, "inflight", inflight.DefaultK, "pgcat-bulk: calls in flight at once, as rlsctl lrc bulk --inflight")
	fs.StringVar(&cfg.dsnFile, "dsn-file", "", "serve: also write the DSN to this file once ready")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write the client's CPU profile to this file (go tool pprof)")
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	if !tableName.MatchString(cfg.table) {
		fatalf("bad --table %q: want a plain lower-case SQL identifier", cfg.table)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fatalf("%v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("%v", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	var err error
	switch sub {
	case "serve":
		err = serve(ctx, cfg)
	case "rls-query", "rls-create", "rls-bulkquery":
		err = printResult(rlsLoad(ctx, cfg, sub))
	case "setup", "copy", "query", "insert", "bulk-query":
		err = withServer(ctx, &cfg, sub, func() error { return run(ctx, cfg, sub) })
	default:
		var known bool
		if known, err = runPgcat(ctx, cfg, sub); !known {
			usage()
		}
	}
	if err != nil {
		fatalf("%s: %v", sub, err)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pgbench-lrc serve|setup|copy|query|insert|bulk-query|rls-query|rls-create|rls-bulkquery [flags]  (pgbench-lrc SUB -h for flags)")
	os.Exit(2)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pgbench-lrc: "+format+"\n", args...)
	os.Exit(1)
}

func serverOptions(cfg config) pgtest.Options {
	// Durable, as rlsd is: fsync and synchronous_commit stay on.
	return pgtest.Options{Settings: map[string]string{
		"shared_buffers":  cfg.sharedBuffers,
		"max_connections": "200",
	}}
}

// serve runs a server until ctx is cancelled, so that several measuring
// commands can share one server and its data.
func serve(ctx context.Context, cfg config) error {
	srv, err := pgtest.StartServer(serverOptions(cfg))
	if err != nil {
		return err
	}
	defer func() { _ = srv.Stop() }() // after an explicit Stop, a no-op
	if cfg.dsnFile != "" {
		tmp := cfg.dsnFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(srv.DSN+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, cfg.dsnFile); err != nil {
			return err
		}
	}
	fmt.Printf("dsn=%s version=%s bindir=%s\n", srv.DSN, srv.Version, srv.BinDir)
	<-ctx.Done()
	return srv.Stop()
}

// withServer starts a throwaway server (and creates the table) when no DSN
// was given.
func withServer(ctx context.Context, cfg *config, sub string, f func() error) error {
	if cfg.dsn != "" {
		return f()
	}
	srv, err := pgtest.StartServer(serverOptions(*cfg))
	if err != nil {
		return err
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgbench-lrc: stop server: %v\n", err)
		}
	}()
	cfg.dsn = srv.DSN
	if sub != "setup" {
		if err := setup(ctx, *cfg); err != nil {
			return err
		}
	}
	return f()
}

func run(ctx context.Context, cfg config, sub string) error {
	var (
		res result
		err error
	)
	switch sub {
	case "setup":
		return setup(ctx, cfg)
	case "copy":
		res, err = copyIn(ctx, cfg)
	case "query":
		res, err = query(ctx, cfg)
	case "insert":
		res, err = insert(ctx, cfg)
	case "bulk-query":
		res, err = bulkQuery(ctx, cfg)
	}
	if err != nil {
		return err
	}
	res.Server = serverVersion(ctx, cfg.dsn)
	return printResult(res, nil)
}

// printResult prints a measuring subcommand's result: JSON on stdout, a
// human line on stderr.
func printResult(res result, err error) error {
	if err != nil {
		return err
	}
	if res.Batch > 0 {
		res.NameRate = res.Rate * float64(res.Batch)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	names := ""
	if res.Batch > 0 {
		names = fmt.Sprintf(" (%.0f names/s)", res.NameRate)
	}
	fmt.Fprintf(os.Stderr, "%s (%s): %d ok, %d errors in %.2fs = %.0f/s%s, p50 %.3f ms, p99 %.3f ms\n",
		res.Op, res.Method, res.OK, res.Errors, res.Seconds, res.Rate, names, res.P50ms, res.P99ms)
	if res.OK == 0 {
		return fmt.Errorf("no operation succeeded: %s", res.FirstErr)
	}
	return nil
}

func serverVersion(ctx context.Context, dsn string) string {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return ""
	}
	defer conn.Close(ctx)
	var v, fsync, sc string
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')").Scan(&v, &fsync, &sc); err != nil {
		return ""
	}
	return fmt.Sprintf("PostgreSQL %s fsync=%s synchronous_commit=%s", v, fsync, sc)
}

func setup(ctx context.Context, cfg config) error {
	conn, err := pgx.Connect(ctx, cfg.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	t := pgx.Identifier{cfg.table}.Sanitize()
	idx := pgx.Identifier{cfg.table + "_pfn_lfn"}.Sanitize()
	for _, sql := range []string{
		"DROP TABLE IF EXISTS " + t,
		"CREATE TABLE " + t + " (lfn text NOT NULL, pfn text NOT NULL, UNIQUE (lfn, pfn))",
		"CREATE INDEX " + idx + " ON " + t + " (pfn, lfn)",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	fmt.Fprintf(os.Stderr, "table %s ready: UNIQUE (lfn, pfn) + INDEX (pfn, lfn)\n", t)
	return nil
}

// copyIn streams the file into the table with one COPY FROM STDIN (binary
// protocol, pgx CopyFrom), in one transaction, with both indexes present.
func copyIn(ctx context.Context, cfg config) (result, error) {
	var in io.Reader = os.Stdin
	if cfg.file != "-" {
		f, err := os.Open(cfg.file)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		in = f
	}
	conn, err := pgx.Connect(ctx, cfg.dsn)
	if err != nil {
		return result{}, err
	}
	defer conn.Close(ctx)

	sc := bufio.NewScanner(bufio.NewReaderSize(in, 1<<20))
	line := 0
	var row [2]any
	src := pgx.CopyFromFunc(func() ([]any, error) {
		for sc.Scan() {
			line++
			text := sc.Text()
			if text == "" {
				continue
			}
			lfn, pfn, ok := strings.Cut(text, "\t")
			if !ok || lfn == "" || pfn == "" {
				return nil, fmt.Errorf("line %d: want LFN<TAB>PFN, got %q", line, text)
			}
			row[0], row[1] = lfn, pfn
			return row[:], nil
		}
		return nil, sc.Err()
	})
	ctx, cancel := context.WithTimeout(ctx, cfg.maxTime)
	defer cancel()
	start := time.Now()
	n, err := conn.CopyFrom(ctx, pgx.Identifier{cfg.table}, []string{"lfn", "pfn"}, src)
	secs := time.Since(start).Seconds()
	if err != nil {
		return result{}, fmt.Errorf("COPY after %d lines: %w", line, err)
	}
	// Not timed: fresh statistics so that the query plan is the index scan.
	if _, err := conn.Exec(ctx, "ANALYZE "+pgx.Identifier{cfg.table}.Sanitize()); err != nil {
		return result{}, err
	}
	return result{
		Op: "copy", Method: "pgx CopyFrom (COPY FROM STDIN, binary) in one transaction, indexes present",
		N: n, OK: n, Seconds: secs, Rate: float64(n) / secs,
	}, nil
}

// query runs cfg.n prepared single-LFN lookups of random loaded sunums over
// cfg.conc connections. A lookup that finds no PFN counts as an error.
func query(ctx context.Context, cfg config) (result, error) {
	sql := "SELECT pfn FROM " + pgx.Identifier{cfg.table}.Sanitize() + " WHERE lfn = $1"
	res, err := load(ctx, cfg, sql, func(conn *pgx.Conn, i int64, rng *rand.Rand) error {
		lfn := strconv.FormatInt(cfg.lfnBase+rng.Int64N(cfg.lfnCount), 10)
		rows, err := conn.Query(ctx, "q", lfn)
		if err != nil {
			return err
		}
		found := 0
		for rows.Next() {
			found++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if found == 0 {
			return fmt.Errorf("lfn %s: not found", lfn)
		}
		return nil
	})
	res.Op, res.Method = "query", "prepared SELECT pfn WHERE lfn=$1, pgx, one connection per client"
	return res, err
}

// insert runs cfg.n single-row INSERTs of new LFNs, each its own autocommit
// transaction (durable before it returns: synchronous_commit is on).
func insert(ctx context.Context, cfg config) (result, error) {
	sql := "INSERT INTO " + pgx.Identifier{cfg.table}.Sanitize() + " (lfn, pfn) VALUES ($1, $2)"
	res, err := load(ctx, cfg, sql, func(conn *pgx.Conn, i int64, _ *rand.Rand) error {
		sunum := cfg.lfnBase + i
		lfn := strconv.FormatInt(sunum, 10)
		_, err := conn.Exec(ctx, "q", lfn, fmt.Sprintf("/SUM%d/D%d", sunum%100, sunum))
		return err
	})
	res.Op, res.Method = "insert", "prepared single-row INSERT, autocommit, pgx, one connection per client"
	return res, err
}

// bulkQuery runs cfg.n prepared lookups of cfg.batch random loaded LFNs
// each ("WHERE lfn = ANY($1)"), the PostgreSQL counterpart of BulkQuery. A
// call that finds fewer rows than it asked for LFNs counts as an error.
func bulkQuery(ctx context.Context, cfg config) (result, error) {
	if cfg.batch < 1 {
		return result{}, errors.New("--batch must be positive")
	}
	sql := "SELECT lfn, pfn FROM " + pgx.Identifier{cfg.table}.Sanitize() + " WHERE lfn = ANY($1)"
	res, err := load(ctx, cfg, sql, func(conn *pgx.Conn, _ int64, rng *rand.Rand) error {
		lfns := randomLFNs(cfg, rng)
		rows, err := conn.Query(ctx, "q", lfns)
		if err != nil {
			return err
		}
		found := 0
		var lfn, pfn string
		for rows.Next() {
			if err := rows.Scan(&lfn, &pfn); err != nil {
				rows.Close()
				return err
			}
			found++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if found < distinct(lfns) {
			return fmt.Errorf("%d rows for %d distinct LFNs", found, distinct(lfns))
		}
		return nil
	})
	res.Op = "bulk-query"
	res.Method = fmt.Sprintf("prepared SELECT lfn, pfn WHERE lfn = ANY($1), %d LFNs a call, pgx, one connection per client", cfg.batch)
	res.Batch = cfg.batch
	return res, err
}

// randomLFNs draws cfg.batch random loaded sunums.
func randomLFNs(cfg config, rng *rand.Rand) []string {
	lfns := make([]string, cfg.batch)
	for i := range lfns {
		lfns[i] = strconv.FormatInt(cfg.lfnBase+rng.Int64N(cfg.lfnCount), 10)
	}
	return lfns
}

func distinct(names []string) int {
	seen := make(map[string]struct{}, len(names))
	for _, n := range names {
		seen[n] = struct{}{}
	}
	return len(seen)
}

// rlsLoad drives rlsd with generated Go stubs: "rls-query" asks QueryLFN
// for random loaded sunums; "rls-create" makes durable Create calls with new
// LFNs from --lfn-base on.
func rlsLoad(ctx context.Context, cfg config, sub string) (result, error) {
	if cfg.addr == "" {
		return result{}, errors.New("--addr is required")
	}
	if cfg.grpcConns < 1 {
		return result{}, errors.New("--conns must be positive")
	}
	clients := make([]rlsv1.CatalogClient, cfg.grpcConns)
	for k := range clients {
		cc, err := (*secure.Dialer)(nil).Dial(cfg.addr) // a local plaintext rlsd

		if err != nil {
			return result{}, err
		}
		defer cc.Close()
		clients[k] = rlsv1.NewCatalogClient(cc)
	}
	if sub == "rls-create" {
		res, err := drive(ctx, cfg, func(w int, i int64, _ *rand.Rand) error {
			lfn := strconv.FormatInt(cfg.lfnBase+i, 10)
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			_, err := clients[w%len(clients)].Create(cctx, &rlsv1.MappingRequest{Lfn: lfn, Pfn: "/SUM0/D" + lfn})
			return err
		})
		res.Op = "rls-create"
		res.Method = fmt.Sprintf("rls.v1.Catalog/Create, generated Go stub, %d gRPC connection(s)", cfg.grpcConns)
		res.Server = "rlsd " + cfg.addr
		return res, err
	}
	if sub == "rls-bulkquery" {
		if cfg.batch < 1 {
			return result{}, errors.New("--batch must be positive")
		}
		res, err := drive(ctx, cfg, func(w int, _ int64, rng *rand.Rand) error {
			names := randomLFNs(cfg, rng)
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			resp, err := clients[w%len(clients)].BulkQuery(cctx, &rlsv1.BulkQueryRequest{Type: rlsv1.ObjectType_OBJECT_TYPE_LFN, Names: names})
			if err != nil {
				return err
			}
			for i, r := range resp.GetResults() {
				if len(r.GetNames()) == 0 {
					return fmt.Errorf("lfn %s: no PFN (%s)", names[i], r.GetStatus().GetMessage())
				}
			}
			if len(resp.GetResults()) != len(names) {
				return fmt.Errorf("%d results for %d names", len(resp.GetResults()), len(names))
			}
			return nil
		})
		res.Op = "rls-bulkquery"
		res.Method = fmt.Sprintf("rls.v1.Catalog/BulkQuery, %d LFNs a call, generated Go stub, %d gRPC connection(s)", cfg.batch, cfg.grpcConns)
		res.Server = "rlsd " + cfg.addr
		res.Batch = cfg.batch
		return res, err
	}
	res, err := drive(ctx, cfg, func(w int, _ int64, rng *rand.Rand) error {
		lfn := strconv.FormatInt(cfg.lfnBase+rng.Int64N(cfg.lfnCount), 10)
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		resp, err := clients[w%len(clients)].QueryLFN(cctx, &rlsv1.NameRequest{Name: lfn})
		if err != nil {
			return err
		}
		if len(resp.GetNames()) == 0 {
			return fmt.Errorf("lfn %s: no PFN", lfn)
		}
		return nil
	})
	res.Op = "rls-query"
	res.Method = fmt.Sprintf("rls.v1.Catalog/QueryLFN, generated Go stub, %d gRPC connection(s)", cfg.grpcConns)
	res.Server = "rlsd " + cfg.addr
	return res, err
}

// load prepares sql as "q" on cfg.conc connections, one per worker, and
// drives op over them.
func load(ctx context.Context, cfg config, sql string, op func(conn *pgx.Conn, i int64, rng *rand.Rand) error) (result, error) {
	if cfg.conc < 1 || cfg.n < 1 {
		return result{}, errors.New("-n and -c must be positive")
	}
	conns := make([]*pgx.Conn, cfg.conc)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close(context.Background())
			}
		}
	}()
	for w := range conns {
		c, err := pgx.Connect(ctx, cfg.dsn)
		if err != nil {
			return result{}, err
		}
		conns[w] = c
		if _, err := c.Prepare(ctx, "q", sql); err != nil {
			return result{}, err
		}
	}
	return drive(ctx, cfg, func(w int, i int64, rng *rand.Rand) error { return op(conns[w], i, rng) })
}

// drive runs cfg.n calls of op, numbered 0..n-1, over cfg.conc workers
// numbered 0..conc-1. With cfg.rps > 0 operation i is not sent before
// start+i/rps (latency counts from the send, as ghz does). It stops early at
// cfg.maxTime.
func drive(ctx context.Context, cfg config, op func(w int, i int64, rng *rand.Rand) error) (result, error) {
	if cfg.conc < 1 || cfg.n < 1 {
		return result{}, errors.New("-n and -c must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.maxTime)
	defer cancel()
	var (
		next, ok, bad atomic.Int64
		firstErr      atomic.Value
		wg            sync.WaitGroup
		lats          = make([][]time.Duration, cfg.conc)
	)
	start := time.Now()
	for w := range cfg.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			own := make([]time.Duration, 0, cfg.n/int64(cfg.conc)+1)
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= cfg.n {
					break
				}
				if cfg.rps > 0 {
					due := start.Add(time.Duration(float64(i) / cfg.rps * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				}
				t0 := time.Now()
				err := op(w, i, rng)
				own = append(own, time.Since(t0))
				if err != nil {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
			lats[w] = own
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()

	all := slices.Concat(lats...)
	slices.Sort(all)
	res := result{
		N: cfg.n, OK: ok.Load(), Errors: bad.Load(), Conc: cfg.conc, RPS: cfg.rps, Seconds: secs,
		Rate: float64(ok.Load()) / secs, P50ms: pct(all, 0.50), P99ms: pct(all, 0.99),
	}
	if s, isStr := firstErr.Load().(string); isStr {
		res.FirstErr = s
	}
	if done := ok.Load() + bad.Load(); done < cfg.n {
		fmt.Fprintf(os.Stderr, "warning: stopped after %d of %d operations (--max-time %s)\n", done, cfg.n, cfg.maxTime)
	}
	return res, nil
}

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i].Nanoseconds()) / 1e6
}
