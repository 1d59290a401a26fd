package main

import (
	"context"
	"log/slog"
	"maps"
	"net/http/pprof"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/index"
	"github.com/solar-archive/rls/internal/statuspage"
	"github.com/solar-archive/rls/mirror"
	"github.com/solar-archive/rls/transfer"
)

// observe adds what lets an operator watch the daemon, once the roles have
// started and filled d.page: the status page at / and, with --pprof, Go's
// profiles under /debug/pprof/ (both on the HTTP listener, when there is
// one), and the "rlsd stats" log line every --stats-interval.
func (d *daemon) observe() {
	d.page.Info = statuspage.Info{Site: d.cfg.Site, Version: d.admin.Version, Roles: d.cfg.Roles, Started: d.admin.Started}
	d.page.RPCs = func() (uint64, error) { return handledRPCs(d.metrics) }
	d.http.Handle("GET /{$}", statuspage.New(&d.page))
	if d.cfg.PProf {
		d.http.HandleFunc("GET /debug/pprof/", pprof.Index)
		d.http.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		d.http.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		d.http.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		d.http.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		d.http.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	if d.cfg.StatsInterval > 0 {
		sl := newStatsLogger(&d.page, d.log)
		d.run(func(ctx context.Context) error {
			t := time.NewTicker(d.cfg.StatsInterval)
			defer t.Stop()
			sl.run(ctx, t.C)
			return nil
		})
	}
}

// handledRPCs sums grpc_server_handled_total: the gRPC calls the daemon
// finished since it started, health checks included.
func handledRPCs(g prometheus.Gatherer) (uint64, error) {
	mfs, err := g.Gather()
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "grpc_server_handled_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return uint64(n), err
}

// statsLogger writes the periodic "rlsd stats" line. It is used by one
// goroutine, its run's.
type statsLogger struct {
	src *statuspage.Sources
	log *slog.Logger
	// prev is the snapshot of the last line.
	prev statuspage.Snapshot
}

// newStatsLogger returns a stats logger whose first line counts from now.
func newStatsLogger(src *statuspage.Sources, log *slog.Logger) *statsLogger {
	return &statsLogger{src: src, log: log, prev: src.Snapshot(context.Background())}
}

// run logs a line at each tick until ctx is done.
func (s *statsLogger) run(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			s.logLine(ctx)
		}
	}
}

// logLine logs one "rlsd stats" line: the RPCs handled and transfer bytes
// sent since the last line, and the figures of each running role.
func (s *statsLogger) logLine(ctx context.Context) {
	cur := s.src.Snapshot(ctx)
	prev := s.prev
	s.prev = cur
	attrs := []slog.Attr{slog.Duration("uptime", cur.Uptime.Round(time.Second))}
	if cur.RPCsKnown && prev.RPCsKnown {
		attrs = append(attrs, slog.Uint64("rpcs", cur.RPCs-min(prev.RPCs, cur.RPCs)))
	}
	if c := cur.Catalog; c != nil {
		attrs = append(attrs, slog.Uint64("catalog_mappings", c.Mappings), slog.Uint64("catalog_lfns", c.LFNs))
	} else if cur.CatalogErr != nil {
		attrs = append(attrs, slog.String("catalog_error", cur.CatalogErr.Error()))
	}
	if x := cur.Index; x != nil {
		var entries uint64
		for _, site := range x.Sites {
			entries += site.Entries
		}
		attrs = append(attrs, slog.Int("index_sites", len(x.Sites)), slog.Uint64("index_entries", entries))
	}
	if len(cur.Sends) > 0 {
		failing := 0
		for _, st := range cur.Sends {
			if st.LastError != "" {
				failing++
			}
		}
		attrs = append(attrs, slog.Int("send_targets", len(cur.Sends)), slog.Int("send_targets_failing", failing))
	}
	if t := cur.Transfer; t != nil {
		var before uint64
		if prev.Transfer != nil {
			before = min(prev.Transfer.BytesSent, t.BytesSent)
		}
		attrs = append(attrs, slog.Uint64("transfer_bytes_sent", t.BytesSent-before), slog.Uint64("transfer_bytes_sent_total", t.BytesSent))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "rlsd stats", attrs...)
}

// The role types' views for the status page and the stats line.

type catalogStatus struct{ cat catalog.StatsReporter }

// catalogStatusTimeout bounds the catalog's part of a status page or stats
// line.
const catalogStatusTimeout = 5 * time.Second

func (c catalogStatus) CatalogStatus() (statuspage.CatalogStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), catalogStatusTimeout)
	defer cancel()
	st, err := c.cat.Stats(ctx)
	if err != nil {
		return statuspage.CatalogStatus{}, err
	}
	out := statuspage.CatalogStatus{LFNs: st.LFNs, PFNs: st.PFNs, Mappings: st.Mappings, Seq: st.Seq}
	if r, ok := c.cat.(catalog.StorageReporter); ok {
		ss, err := r.StorageStats(ctx)
		if err != nil {
			return statuspage.CatalogStatus{}, err
		}
		out.DiskBytes = ss.DiskBytes
	}
	return out, nil
}

type indexStatus struct{ x *index.Index }

func (x indexStatus) IndexStatus() statuspage.IndexStatus {
	st := x.x.Stats()
	out := statuspage.IndexStatus{ExactEntries: st.ExactEntries, BloomBits: st.BloomBits, MemoryBytes: st.MemoryBytes}
	for _, s := range x.x.Sites() {
		out.Sites = append(out.Sites, statuspage.IndexSite{
			Site: s.Site, Endpoint: s.Endpoint, Mode: s.Mode.String(), Generation: s.Generation,
			Entries: s.Entries, Deltas: s.Deltas, Updated: s.Updated, Received: s.Received, Expires: s.Expires, Via: s.Via,
		})
	}
	return out
}

type senderStatus struct{ s *index.Sender }

func (s senderStatus) SendStatus() []statuspage.SendStatus {
	var out []statuspage.SendStatus
	for _, t := range s.s.Targets() {
		st := statuspage.SendStatus{
			From: "catalog", Target: t.Addr, Mode: t.Mode.String(), Interval: t.Interval,
			Generation: t.Generation, LastSuccess: t.LastSuccess, Failures: t.Failures,
		}
		if t.Deltas && t.Mode != index.ModeDelta {
			st.Mode += "+deltas"
		}
		if t.LastErr != nil {
			st.LastError = t.LastErr.Error()
		}
		out = append(out, st)
	}
	return out
}

type transferStatus struct{ src *transfer.Source }

func (t transferStatus) TransferStatus() statuspage.TransferStatus {
	st := t.src.Stats()
	return statuspage.TransferStatus{
		BytesSent: uint64(st.BytesSent), FilesHashed: uint64(st.FilesHashed),
		BytesHashed: uint64(st.BytesHashed), CachedFiles: uint64(st.CachedFiles),
	}
}

// mirrorStatus adapts the mirror engine to the status page: units per state
// from the store's counts (cheap), recent failures from one page of FAIL
// records, and coverage per series, which asks the authorities and is
// therefore kept while the counts stay the same, for at most coverageEvery.
type mirrorStatus struct {
	e *mirror.Engine

	mu       sync.Mutex
	coverage []statuspage.SeriesCoverage
	at       time.Time
	counts   map[mirror.State]int64 // when coverage was computed
}

const coverageEvery = 30 * time.Second

func (m *mirrorStatus) MirrorStatus(ctx context.Context) (statuspage.MirrorStatus, error) {
	var st statuspage.MirrorStatus
	counts := m.e.Store().Counts()
	for _, s := range mirror.States {
		st.States = append(st.States, statuspage.MirrorState{State: s.String(), Units: uint64(counts[s])})
	}
	fails, _, err := m.e.List(mirror.ListQuery{State: mirror.FAIL, Limit: 200})
	if err != nil {
		return st, err
	}
	slices.SortFunc(fails, func(a, b *mirror.Record) int { return b.Changed.Compare(a.Changed) })
	for _, r := range fails[:min(len(fails), 10)] {
		st.Failures = append(st.Failures, statuspage.MirrorFailure{
			Sunum: strconv.FormatUint(r.Sunum, 10), Reason: r.Reason, At: r.Changed, Retry: r.Due,
		})
	}
	st.Series = m.seriesCoverage(ctx, counts)
	return st, nil
}

// seriesCoverage returns the coverage per series, asking the authorities
// at most every coverageEvery (and for at most 2 s); a series whose
// authority cannot be asked counts the units known here as its total.
func (m *mirrorStatus) seriesCoverage(ctx context.Context, counts map[mirror.State]int64) []statuspage.SeriesCoverage {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.coverage != nil && maps.Equal(counts, m.counts) && time.Since(m.at) < coverageEvery {
		return m.coverage
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cov, err := m.e.Coverage(ctx, "")
	if err != nil {
		return m.coverage
	}
	out := make([]statuspage.SeriesCoverage, 0, len(cov))
	for _, c := range cov {
		done := uint64(c.States[mirror.DONE.String()])
		total := uint64(c.Authority)
		if c.Error != "" || total < done {
			total = 0
			for _, n := range c.States {
				total += uint64(n)
			}
		}
		out = append(out, statuspage.SeriesCoverage{Series: c.Series, Done: done, Total: total})
	}
	m.coverage, m.at, m.counts = out, time.Now(), counts
	return out
}
