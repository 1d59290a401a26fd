package mirror

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/solar-archive/rls/transfer"
)

// world is the fake federation around the engine under test: which site
// holds which sunum, the faults a source injects, the own catalog, and a
// log of what was pulled. Safe for concurrent use.
type world struct {
	mu        sync.Mutex
	authority string
	holds     map[string]map[uint64]bool // site → sunums
	series    map[uint64]string
	faults    map[string]map[uint64][]error // site → sunum → errors, consumed in order
	sticky    map[string]map[uint64]error   // site → sunum → error every time
	catalog   map[string]Placed             // own LFN → unit registered
	pulled    map[uint64]int                // sunum → times its bytes were fetched
	calls     []string                      // pull calls since the last "pulls"
	locateErr error
	authErr   error
	delay     time.Duration // per pull call, before anything is placed
	placedFor time.Duration // per pull call, after its units are placed
	regFor    time.Duration // per Register call
	crashAt   int           // a pull call places this many units, then hangs (0: off)
	regHang   bool          // Register writes, then hangs until the engine stops
	hookHang  bool          // the on-done hook hangs until the engine stops
	onDone    []string
}

func newWorld() *world {
	return &world{authority: "jsoc", holds: map[string]map[uint64]bool{}, series: map[uint64]string{},
		faults: map[string]map[uint64][]error{}, sticky: map[string]map[uint64]error{},
		catalog: map[string]Placed{}, pulled: map[uint64]int{}}
}

func endpoint(site string) string { return site + ":7000" }
func pfnAt(site string, n uint64) string {
	return "/" + site + "/D" + strconv.FormatUint(n, 10)
}

func (w *world) Locate(ctx context.Context, lfns []string) ([][]Location, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.locateErr != nil {
		return nil, w.locateErr
	}
	out := make([][]Location, len(lfns))
	sites := slices.Sorted(maps.Keys(w.holds))
	for i, l := range lfns {
		n, _ := ParseSunum(l)
		for _, s := range sites {
			if w.holds[s][n] {
				out[i] = append(out[i], Location{Source: Source{Site: s, Endpoint: endpoint(s)}, PFN: pfnAt(s, n)})
			}
		}
	}
	return out, nil
}

// fakeAuthority is the world's authoritative site.
type fakeAuthority struct{ w *world }

func (a fakeAuthority) Source() Source {
	return Source{Site: a.w.authority, Endpoint: endpoint(a.w.authority)}
}

func (a fakeAuthority) Lookup(ctx context.Context, lfns []string) ([]string, error) {
	w := a.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.authErr != nil {
		return nil, w.authErr
	}
	out := make([]string, len(lfns))
	for i, l := range lfns {
		n, _ := ParseSunum(l)
		if w.holds[w.authority][n] {
			out[i] = pfnAt(w.authority, n)
		}
	}
	return out, nil
}

func (a fakeAuthority) Units(ctx context.Context, series string) ([]uint64, error) {
	w := a.w
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []uint64
	for n := range w.holds[w.authority] {
		if w.series[n] == series {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (w *world) Pull(ctx context.Context, src Source, units []PullUnit) []PullResult {
	w.mu.Lock()
	delay, placedFor, crashAt := w.delay, w.placedFor, w.crashAt
	w.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			out := make([]PullResult, len(units))
			for i := range out {
				out[i].Err = fmt.Errorf("pull: %w", ctx.Err())
			}
			w.mu.Lock()
			w.calls = append(w.calls, src.Site+": (stopped)")
			w.mu.Unlock()
			return out
		}
	}
	if placedFor > 0 {
		defer time.Sleep(placedFor) // after the unlock below
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]PullResult, len(units))
	var got []string
	for i, u := range units {
		if crashAt > 0 && i == crashAt {
			w.mu.Unlock()
			<-ctx.Done() // the process dies here
			w.mu.Lock()
			for j := i; j < len(units); j++ {
				out[j].Err = ctx.Err()
			}
			break
		}
		got = append(got, strconv.FormatUint(u.Sunum, 10))
		if u.PFN != pfnAt(src.Site, u.Sunum) {
			out[i].Err = fmt.Errorf("%w: pfn %s", transfer.ErrInvalid, u.PFN)
			continue
		}
		if q := w.faults[src.Site][u.Sunum]; len(q) > 0 {
			out[i].Err, w.faults[src.Site][u.Sunum] = q[0], q[1:]
			continue
		}
		if err := w.sticky[src.Site][u.Sunum]; err != nil {
			out[i].Err = err
			continue
		}
		if !w.holds[src.Site][u.Sunum] {
			out[i].Err = fmt.Errorf("pull %s: %w", u.PFN, transfer.ErrNotFound)
			continue
		}
		out[i] = PullResult{Bytes: 100, Files: 2, SHA256: "abc"}
		if u.Place != nil && !u.Place() {
			out[i] = PullResult{Err: ErrCancelled}
			got[len(got)-1] += "(taken-back)"
			continue
		}
		if _, err := os.Stat(u.Dest); err == nil {
			out[i].InPlace = true
			got[len(got)-1] += "(in-place)"
			continue
		}
		if err := os.Mkdir(u.Dest, 0o755); err != nil {
			out[i].Err = err
			continue
		}
		out[i].Fetched = 100
		w.pulled[u.Sunum]++
	}
	// Units of one call in sunum order: which lane's goroutine added a
	// unit to a batch first is not the point.
	slices.SortFunc(got, func(a, b string) int {
		x, _ := strconv.Atoi(strings.TrimRight(a, "(abcdefghijklmnopqrstuvwxyz-)"))
		y, _ := strconv.Atoi(strings.TrimRight(b, "(abcdefghijklmnopqrstuvwxyz-)"))
		return x - y
	})
	w.calls = append(w.calls, src.Site+": "+strings.Join(got, " "))
	return out
}

func (w *world) Register(ctx context.Context, units []Placed) ([]error, error) {
	w.mu.Lock()
	regFor, hang := w.regFor, w.regHang
	w.mu.Unlock()
	time.Sleep(regFor)
	w.mu.Lock()
	for _, u := range units {
		w.catalog[u.LFN] = u
	}
	w.mu.Unlock()
	if hang {
		<-ctx.Done() // the process dies after the catalog's commit
		return nil, ctx.Err()
	}
	return make([]error, len(units)), nil
}

func (w *world) Registered(ctx context.Context, lfns, pfns []string) ([]*Placed, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*Placed, len(lfns))
	for i := range lfns {
		if p, ok := w.catalog[lfns[i]]; ok && p.PFN == pfns[i] {
			out[i] = &p
		}
	}
	return out, nil
}

// harness runs an engine over a world inside a synctest bubble.
type harness struct {
	t      *testing.T
	w      *world
	dir    string
	cfg    Config
	store  *Store
	eng    *Engine
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	trans map[uint64][]string // transitions since the last print
	reads int64               // store.reads at the last "reads"
}

func (h *harness) onChange(old, new *Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case new == nil:
		h.trans[old.Sunum] = append(h.trans[old.Sunum], "removed")
	case old == nil || old.State != new.State:
		s := new.State.String()
		if new.State == DONE {
			s += "(" + new.Source + ")"
		}
		h.trans[new.Sunum] = append(h.trans[new.Sunum], s)
	}
}

func (h *harness) start() {
	h.t.Helper()
	s, err := OpenStore(filepath.Join(h.dir, "state"), &StoreOptions{NoSync: true, OnChange: h.onChange,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		h.t.Fatal(err)
	}
	h.store, h.reads = s, 0
	h.eng, err = New(s, h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		if err := h.eng.Run(ctx); err != nil {
			h.t.Error(err)
		}
	}()
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.cancel = nil
	checkCache(h.t, h.store)
	if err := h.store.Close(); err != nil {
		h.t.Fatal(err)
	}
}

// transitions prints and forgets the transitions recorded so far, one
// line per sunum, compressing runs of sunums with the same history.
func (h *harness) transitions() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	ns := slices.Sorted(maps.Keys(h.trans))
	for i := 0; i < len(ns); {
		j := i + 1
		line := strings.Join(h.trans[ns[i]], " ")
		for j < len(ns) && ns[j] == ns[j-1]+1 && strings.Join(h.trans[ns[j]], " ") == line {
			j++
		}
		if j-i > 1 {
			fmt.Fprintf(&b, "%d-%d: %s\n", ns[i], ns[j-1], line)
		} else {
			fmt.Fprintf(&b, "%d: %s\n", ns[i], line)
		}
		i = j
	}
	clear(h.trans)
	if b.Len() == 0 {
		return "(no change)\n"
	}
	return b.String()
}

// sunums parses "1-5 7 9" into sunums.
func sunums(t *testing.T, s string) []uint64 {
	var out []uint64
	for _, f := range strings.Fields(s) {
		a, b, ok := strings.Cut(f, "-")
		lo, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		hi := lo
		if ok {
			if hi, err = strconv.ParseUint(b, 10, 64); err != nil {
				t.Fatal(err)
			}
		}
		for n := lo; n <= hi; n++ {
			out = append(out, n)
		}
	}
	return out
}

func parseErr(s string) error {
	switch s {
	case "timeout":
		return fmt.Errorf("read: %w", transfer.ErrTimeout)
	case "unavailable":
		return fmt.Errorf("dial: %w", transfer.ErrUnavailable)
	case "corrupt":
		return fmt.Errorf("file a.fits: %w", transfer.ErrCorrupt)
	case "notfound":
		return fmt.Errorf("pull: %w", transfer.ErrNotFound)
	}
	panic("unknown error " + s)
}

func TestEngine(t *testing.T) {
	datadriven.Walk(t, "testdata/engine", func(t *testing.T, path string) {
		synctest.Test(t, func(t *testing.T) {
			h := &harness{t: t, w: newWorld(), dir: t.TempDir(), trans: map[uint64][]string{}}
			defer h.stop()
			datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
				return h.cmd(t, d)
			})
		})
	})
}

func (h *harness) cmd(t *testing.T, d *datadriven.TestData) string {
	arg := func(key, def string) string {
		for _, a := range d.CmdArgs {
			if a.Key == key && len(a.Vals) > 0 {
				return a.Vals[0]
			}
		}
		return def
	}
	num := func(key string, def int) int {
		n, err := strconv.Atoi(arg(key, strconv.Itoa(def)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	dur := func(key string) time.Duration {
		v, err := time.ParseDuration(arg(key, "0s"))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	w := h.w
	switch d.Cmd {
	case "init":
		h.cfg = Config{Site: arg("site", "nso"), Tier: num("tier", 1), StoreDir: filepath.Join(h.dir, "store"),
			Locator: w, Authority: fakeAuthority{w}, Puller: w, Registrar: w,
			UserWorkers: num("user-workers", 1), BulkWorkers: num("bulk-workers", 2),
			MinPerSource: num("per-source", 4), MaxPerSource: num("per-source", 4),
			Retry:           RetryPolicy{Fast: 2, FastDelay: 5 * time.Second, Base: time.Minute, Cap: time.Hour},
			PendingInterval: 10 * time.Minute,
			Batch:           BatchPolicy{Units: num("batch", 48), Bytes: 512 << 20, Idle: 2 * time.Second, Large: 64 << 20},
			Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
			Jitter:          func() float64 { return 0.5 },
			OnDone: func(ctx context.Context, n uint64, path, series string) error {
				w.mu.Lock()
				if w.hookHang {
					w.mu.Unlock()
					<-ctx.Done() // the process dies in the hook
					return ctx.Err()
				}
				defer w.mu.Unlock()
				w.onDone = append(w.onDone, fmt.Sprintf("%d %s %s", n, filepath.Base(path), series))
				return nil
			},
		}
		if err := os.MkdirAll(h.cfg.StoreDir, 0o755); err != nil {
			t.Fatal(err)
		}
		h.start()
		return ""
	case "hold":
		w.mu.Lock()
		site := arg("site", "jsoc")
		if w.holds[site] == nil {
			w.holds[site] = map[uint64]bool{}
		}
		for _, n := range sunums(t, d.Input) {
			w.holds[site][n] = true
			if s := arg("series", ""); s != "" {
				w.series[n] = s
			}
		}
		w.mu.Unlock()
		return ""
	case "fault":
		w.mu.Lock()
		site, err := arg("site", "jsoc"), parseErr(arg("err", ""))
		for _, n := range sunums(t, d.Input) {
			if arg("times", "") == "always" {
				if w.sticky[site] == nil {
					w.sticky[site] = map[uint64]error{}
				}
				w.sticky[site][n] = err
				continue
			}
			if w.faults[site] == nil {
				w.faults[site] = map[uint64][]error{}
			}
			for range num("times", 1) {
				w.faults[site][n] = append(w.faults[site][n], err)
			}
		}
		w.mu.Unlock()
		return ""
	case "clear-faults":
		w.mu.Lock()
		clear(w.faults)
		clear(w.sticky)
		w.locateErr, w.authErr = nil, nil
		w.mu.Unlock()
		return ""
	case "set":
		w.mu.Lock()
		w.delay = dur("pull-delay")
		w.placedFor = dur("placed-for")
		w.regFor = dur("register-for")
		w.crashAt = num("crash-at", 0)
		w.regHang = arg("register-hang", "false") == "true"
		w.hookHang = arg("hook-hang", "false") == "true"
		if arg("locate-err", "") != "" {
			w.locateErr = parseErr(arg("locate-err", ""))
		}
		if arg("authority-err", "") != "" {
			w.authErr = parseErr(arg("authority-err", ""))
		}
		w.mu.Unlock()
		return ""
	case "place":
		// A unit put in the store and the catalog by hand.
		for _, n := range sunums(t, d.Input) {
			dest := filepath.Join(h.cfg.StoreDir, "D"+strconv.FormatUint(n, 10))
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			w.mu.Lock()
			w.catalog[LFN(n)] = Placed{LFN: LFN(n), PFN: dest}
			w.mu.Unlock()
		}
		return ""
	case "enqueue":
		lane, err := ParseLane(arg("lane", "bulk"))
		if err != nil {
			t.Fatal(err)
		}
		var reqs []Request
		for _, n := range sunums(t, d.Input) {
			reqs = append(reqs, Request{Sunum: n, Series: arg("series", ""), Priority: lane})
		}
		if err := h.eng.Accept(context.Background(), reqs); err != nil {
			return "error: " + err.Error() + "\n"
		}
		synctest.Wait()
		return h.transitions()
	case "advance":
		time.Sleep(dur("by"))
		synctest.Wait()
		return h.transitions()
	case "status":
		rs, err := h.eng.Status(sunums(t, d.Input))
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		var b strings.Builder
		for _, r := range rs {
			fmt.Fprintf(&b, "%d %s lane=%s series=%s source=%s attempts=%d streak=%d reason=%q",
				r.Sunum, r.State, r.Lane, r.Series, r.Source, r.Attempts, r.Streak, r.Reason)
			if !r.Due.IsZero() {
				fmt.Fprintf(&b, " due=+%s", time.Until(r.Due))
			}
			b.WriteString("\n")
			if arg("history", "") != "" {
				for _, a := range r.History {
					fmt.Fprintf(&b, "  %s %s\n", a.Source, cmpOr(a.Err, "ok"))
				}
			}
		}
		return b.String()
	case "reads":
		// Records read from Pebble (not from the cache) since the last
		// "reads".
		n := h.store.reads.Load()
		defer func() { h.reads = n }()
		return fmt.Sprintf("%d\n", n-h.reads)
	case "counts":
		c := h.store.Counts()
		var b strings.Builder
		for _, s := range States {
			if c[s] > 0 {
				fmt.Fprintf(&b, "%s=%d ", s, c[s])
			}
		}
		return strings.TrimSpace(b.String()) + "\n"
	case "pulls":
		w.mu.Lock()
		defer w.mu.Unlock()
		out := strings.Join(slices.Sorted(slices.Values(w.calls)), "\n") + "\n"
		w.calls = nil
		twice := 0
		for _, k := range w.pulled {
			if k > 1 {
				twice++
			}
		}
		if twice > 0 {
			out += fmt.Sprintf("PULLED TWICE: %d units\n", twice)
		}
		return out
	case "hooks":
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.onDone) == 0 {
			return "(none)\n"
		}
		hooks := slices.Clone(w.onDone)
		slices.SortStableFunc(hooks, func(a, b string) int { // by sunum
			x, _ := strconv.ParseUint(strings.Fields(a)[0], 10, 64)
			y, _ := strconv.ParseUint(strings.Fields(b)[0], 10, 64)
			return cmp.Compare(x, y)
		})
		return strings.Join(hooks, "\n") + "\n"
	case "retry":
		var ns []uint64
		var st State
		if s := arg("state", ""); s != "" {
			var err error
			if st, err = ParseState(s); err != nil {
				t.Fatal(err)
			}
		} else {
			ns = sunums(t, d.Input)
		}
		got, err := h.eng.Retry(ns, st)
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		synctest.Wait()
		return fmt.Sprintf("retried %d\n", len(got)) + h.transitions()
	case "cancel":
		got, err := h.eng.Cancel(sunums(t, d.Input))
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		synctest.Wait()
		return fmt.Sprintf("cancelled %v placed %v kept %v\n", got.Cancelled, got.Placed, got.Kept) + h.transitions()
	case "registered":
		// The own catalog, and the store directory.
		w.mu.Lock()
		defer w.mu.Unlock()
		var b strings.Builder
		for _, n := range sunums(t, d.Input) {
			_, err := os.Stat(filepath.Join(h.cfg.StoreDir, "D"+strconv.FormatUint(n, 10)))
			fmt.Fprintf(&b, "%d registered=%v placed=%v\n", n, w.catalog[LFN(n)].PFN != "", err == nil)
		}
		return b.String()
	case "restart":
		h.stop()
		h.start()
		synctest.Wait()
		return h.transitions()
	case "sources":
		var b strings.Builder
		for _, s := range h.eng.Sources() {
			fmt.Fprintf(&b, "%s units=%d failures=%d corrupt=%d fail-rate=%.2f pulls=%v\n",
				s.Site, s.Units, s.Failures, s.Corrupt, s.FailureRate, s.Pulls)
		}
		return b.String()
	case "coverage":
		cs, err := h.eng.Coverage(context.Background(), arg("series", ""))
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		var b strings.Builder
		for _, c := range cs {
			fmt.Fprintf(&b, "%s authority=%d states=%v present=%v missing=%v\n", c.Series, c.Authority, c.States, c.Present, c.Missing)
		}
		return b.String()
	}
	t.Fatalf("unknown command %q", d.Cmd)
	return ""
}
