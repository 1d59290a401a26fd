package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	rlsv1 "github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/internal/rlsdtest"
)

// TestFaultLRCKill is the catalog's crash contract under a mixed load, for
// RLS_FAULT_ROUNDS rounds on one data directory: workers create, add,
// delete, bulk create and delete, rename and set attributes, each on LFNs
// of its own, keeping a model of what the catalog must hold; rlsd is killed
// with SIGKILL after a random delay (drawn from the logged seed). After each
// restart on the same directory:
//
//   - every acknowledged write is there, and nothing that a call refused
//     with a definite error (ALREADY_EXISTS, NOT_FOUND, ...) is: the whole
//     catalog, scanned with a "*" wildcard, equals the model, attribute
//     values included;
//   - a call cut by the kill (at most one per worker) left all of its items
//     or none;
//   - admin stats counts what the scan finds;
//   - the change feed of the catalog as the kill left it (a copy, opened
//     with package catalog) has dense sequence numbers from 1 to the stats'
//     seq, consistent LFN flags, and replays to exactly the scanned
//     mappings.
func TestFaultLRCKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills rlsd processes")
	}
	rng := rlsdtest.FaultRand(t)
	rounds := rlsdtest.FaultRounds(t)
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"--site", "faults", "--data", data, "--listen", "127.0.0.1:0", "--roles", "lrc"}

	const workers = 8
	ws := make([]*lrcWorker, workers)
	for i := range ws {
		ws[i] = &lrcWorker{id: i, model: map[string]lfnState{}}
	}
	var feedDir string // the catalog as the last kill left it
	for round := range rounds {
		p := rlsdtest.Start(t, rlsd, "rls.v1.Catalog", args...)
		cc := dial(t, p.Addr)
		cat := rlsv1.NewCatalogClient(cc)
		if round == 0 {
			if _, err := cat.DefineAttribute(context.Background(), &rlsv1.DefineAttributeRequest{Def: &rlsv1.AttributeDef{
				Name: "size", Object: rlsv1.ObjectType_OBJECT_TYPE_LFN, Type: rlsv1.ValueType_VALUE_TYPE_INT,
			}}); err != nil {
				t.Fatal(err)
			}
		} else {
			checkLRC(t, cc, ws, feedDir, fmt.Sprintf("after kill %d", round))
		}

		delay := rlsdtest.Delay(rng, 20*time.Millisecond, 700*time.Millisecond)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, w := range ws {
			w.rng = rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
			wg.Go(func() { w.run(ctx, t, cat) })
		}
		time.Sleep(delay) // the fault's random moment, not a wait for a state
		p.Kill()
		wg.Wait()
		cancel()
		cc.Close()
		feedDir = copyCatalog(t, filepath.Join(data, "catalog"))
		var acked, cut int
		for _, w := range ws {
			acked += w.acked
			if w.uncertain != nil {
				cut++
			}
			w.acked = 0
		}
		t.Logf("round %d: kill -9 after %v: %d calls acknowledged, %d cut by the kill", round, delay, acked, cut)
		if t.Failed() {
			return
		}
	}
	p := rlsdtest.Start(t, rlsd, "rls.v1.Catalog", args...)
	checkLRC(t, dial(t, p.Addr), ws, feedDir, fmt.Sprintf("after kill %d", rounds))
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("rlsd exited %d on SIGTERM, want 0\n%s", code, p.Log())
	}
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// lfnState is what the catalog holds for one LFN: its PFNs, sorted, and
// its "size" attribute. The zero value is an LFN that does not exist.
type lfnState struct {
	pfns    []string
	size    int64
	hasSize bool
}

func (s lfnState) exists() bool { return len(s.pfns) > 0 }

func (s lfnState) equal(o lfnState) bool {
	return slices.Equal(s.pfns, o.pfns) && s.hasSize == o.hasSize && (!s.hasSize || s.size == o.size)
}

func (s lfnState) String() string {
	if !s.exists() && !s.hasSize {
		return "absent"
	}
	if s.hasSize {
		return fmt.Sprintf("%q size=%d", s.pfns, s.size)
	}
	return fmt.Sprintf("%q", s.pfns)
}

func (s lfnState) with(pfn string) lfnState {
	s.pfns = append(slices.Clone(s.pfns), pfn)
	slices.Sort(s.pfns)
	return s
}

func (s lfnState) without(pfn string) lfnState {
	s.pfns = slices.DeleteFunc(slices.Clone(s.pfns), func(p string) bool { return p == pfn })
	if len(s.pfns) == 0 {
		return lfnState{} // the LFN goes, and its attribute values with it
	}
	return s
}

// cutCall is a call that the kill cut: the LFNs it touches were pre before
// it, and are post if it was applied.
type cutCall struct {
	desc      string
	pre, post map[string]lfnState
}

// lrcWorker writes to LFNs of its own ("w<id>-..."), one call at a time,
// so that its model is exact: after each acknowledged call, model holds
// what the catalog holds for those LFNs. It is used by one goroutine at a
// time.
type lrcWorker struct {
	id    int
	rng   *rand.Rand
	model map[string]lfnState // existing LFNs only
	live  []string            // the model's keys, for picking one at random
	next  int                 // for fresh names
	acked int
	// uncertain is the call the kill cut, if any; it is resolved after the
	// restart.
	uncertain *cutCall
}

func (w *lrcWorker) fresh(kind string) string {
	w.next++
	if kind == "pfn" {
		return fmt.Sprintf("/w%d/p%d", w.id, w.next)
	}
	return fmt.Sprintf("w%d-%d", w.id, w.next)
}

func (w *lrcWorker) set(lfn string, s lfnState) {
	_, had := w.model[lfn]
	switch {
	case s.exists() && !had:
		w.model[lfn] = s
		w.live = append(w.live, lfn)
	case s.exists():
		w.model[lfn] = s
	case had:
		delete(w.model, lfn)
		w.live = slices.DeleteFunc(w.live, func(l string) bool { return l == lfn })
	}
}

// pick returns an existing LFN, or "" if there is none.
func (w *lrcWorker) pick() string {
	if len(w.live) == 0 {
		return ""
	}
	return w.live[w.rng.IntN(len(w.live))]
}

// definite reports whether a call's error says that nothing was written.
func definite(c codes.Code) bool {
	switch c {
	case codes.AlreadyExists, codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition:
		return true
	}
	return false
}

// run issues random calls until ctx ends or a call fails without a
// definite answer (rlsd was killed).
func (w *lrcWorker) run(ctx context.Context, t *testing.T, cat rlsv1.CatalogClient) {
	for ctx.Err() == nil {
		op := w.op()
		pre := map[string]lfnState{}
		for l := range op.post {
			pre[l] = w.model[l]
		}
		codes, err := op.call(ctx, cat)
		if err != nil {
			if c := status.Code(err); definite(c) {
				t.Errorf("worker %d: %s: %v, want it to succeed", w.id, op.desc, err)
				return
			}
			w.uncertain = &cutCall{desc: op.desc, pre: pre, post: op.post}
			return
		}
		if !slices.Equal(codes, op.want) {
			t.Errorf("worker %d: %s: item codes %v, want %v", w.id, op.desc, codes, op.want)
			return
		}
		for l, s := range op.post {
			w.set(l, s)
		}
		w.acked++
	}
}

// lrcOp is one call: what it does, the item codes it must answer (one for
// a single call: OK or the definite error), and the state of each LFN it
// touches once it applied.
type lrcOp struct {
	desc string
	want []codes.Code
	post map[string]lfnState
	call func(ctx context.Context, cat rlsv1.CatalogClient) ([]codes.Code, error)
}

// single wraps a single-item call: a definite error becomes its item code.
func single(f func(ctx context.Context, cat rlsv1.CatalogClient) error) func(context.Context, rlsv1.CatalogClient) ([]codes.Code, error) {
	return func(ctx context.Context, cat rlsv1.CatalogClient) ([]codes.Code, error) {
		err := f(ctx, cat)
		if c := status.Code(err); err != nil && !definite(c) {
			return nil, err
		}
		return []codes.Code{status.Code(err)}, nil
	}
}

func bulkCodes(r *rlsv1.BulkResponse, err error) ([]codes.Code, error) {
	if err != nil {
		return nil, err
	}
	var out []codes.Code
	for _, s := range r.GetResults() {
		out = append(out, codes.Code(s.GetCode()))
	}
	return out, nil
}

// op draws the next call. Calls meant to fail pick names that make them
// fail for sure, as the worker alone writes its LFNs.
func (w *lrcWorker) op() lrcOp {
	lfn := w.pick()
	kind := w.rng.IntN(12)
	if lfn == "" {
		kind = 0
	}
	post := map[string]lfnState{}
	mapping := func(l, p string) *rlsv1.MappingRequest { return &rlsv1.MappingRequest{Lfn: l, Pfn: p} }
	switch kind {
	case 0, 1: // create a new LFN
		l, p := w.fresh("lfn"), w.fresh("pfn")
		post[l] = lfnState{pfns: []string{p}}
		return lrcOp{"create " + l, []codes.Code{codes.OK}, post, single(func(ctx context.Context, c rlsv1.CatalogClient) error {
			_, err := c.Create(ctx, mapping(l, p))
			return err
		})}
	case 2: // create an existing LFN: refused
		p := w.fresh("pfn")
		post[lfn] = w.model[lfn]
		return lrcOp{"create existing " + lfn + " " + p, []codes.Code{codes.AlreadyExists}, post, single(func(ctx context.Context, c rlsv1.CatalogClient) error {
			_, err := c.Create(ctx, mapping(lfn, p))
			return err
		})}
	case 3: // another PFN
		p := w.fresh("pfn")
		post[lfn] = w.model[lfn].with(p)
		return lrcOp{"add " + lfn + " " + p, []codes.Code{codes.OK}, post, single(func(ctx context.Context, c rlsv1.CatalogClient) error {
			_, err := c.Add(ctx, mapping(lfn, p))
			return err
		})}
	case 4: // delete a mapping
		s := w.model[lfn]
		p := s.pfns[w.rng.IntN(len(s.pfns))]
		post[lfn] = s.without(p)
		return lrcOp{"delete " + lfn + " " + p, []codes.Code{codes.OK}, post, single(func(ctx context.Context, c rlsv1.CatalogClient) error {
			_, err := c.Delete(ctx, mapping(lfn, p))
			return err
		})}
	case 5: // delete a mapping that does not exist: refused
		p := w.fresh("pfn")
		post[lfn] = w.model[lfn]
		return lrcOp{"delete missing " + lfn + " " + p, []codes.Code{codes.NotFound}, post, single(func(ctx context.Context, c rlsv1.CatalogClient) error {
			_, err := c.Delete(ctx, mapping(lfn, p))
			return err
		})}
	case 6, 7: // bulk create: new LFNs, an existing one, and a repeat
		var ms []*rlsv1.Mapping
		var want []codes.Code
		for range 2 + w.rng.IntN(40) {
			l, p := w.fresh("lfn"), w.fresh("pfn")
			ms = append(ms, &rlsv1.Mapping{Lfn: l, Pfn: p})
			want = append(want, codes.OK)
			post[l] = lfnState{pfns: []string{p}}
		}
		ms = append(ms, &rlsv1.Mapping{Lfn: lfn, Pfn: w.fresh("pfn")}, &rlsv1.Mapping{Lfn: ms[0].Lfn, Pfn: w.fresh("pfn")})
		want = append(want, codes.AlreadyExists, codes.AlreadyExists)
		post[lfn] = w.model[lfn]
		w.rng.Shuffle(len(ms)-1, func(i, j int) { // the repeat stays after its first
			ms[i], ms[j] = ms[j], ms[i]
			want[i], want[j] = want[j], want[i]
		})
		return lrcOp{fmt.Sprintf("bulk create of %d", len(ms)), want, post, func(ctx context.Context, c rlsv1.CatalogClient) ([]codes.Code, error) {
			return bulkCodes(c.BulkWrite(ctx, &rlsv1.BulkWriteRequest{Op: rlsv1.WriteOp_WRITE_OP_CREATE, Mappings: ms}))
		}}
	case 8: // bulk delete: a few mappings, and one that does not exist
		var ms []*rlsv1.Mapping
		var want []codes.Code
		for range 1 + w.rng.IntN(5) {
			l := w.pick()
			s, ok := post[l]
			if !ok {
				s = w.model[l]
			}
			if !s.exists() {
				continue
			}
			p := s.pfns[w.rng.IntN(len(s.pfns))]
			ms = append(ms, &rlsv1.Mapping{Lfn: l, Pfn: p})
			want = append(want, codes.OK)
			post[l] = s.without(p)
		}
		ms = append(ms, &rlsv1.Mapping{Lfn: lfn, Pfn: w.fresh("pfn")})
		want = append(want, codes.NotFound)
		if _, ok := post[lfn]; !ok {
			post[lfn] = w.model[lfn]
		}
		return lrcOp{fmt.Sprintf("bulk delete of %d", len(ms)), want, post, func(ctx context.Context, c rlsv1.CatalogClient) ([]codes.Code, error) {
			return bulkCodes(c.BulkWrite(ctx, &rlsv1.BulkWriteRequest{Op: rlsv1.WriteOp_WRITE_OP_DELETE, Mappings: ms}))
		}}
	case 9: // rename to a new name, or (refused) to an existing one
		to, want := w.fresh("lfn"), codes.OK
		post[lfn], post[to] = lfnState{}, w.model[lfn]
		if other := w.pick(); other != lfn && w.rng.IntN(3) == 0 {
			to, want = other, codes.AlreadyExists
			post = map[string]lfnState{lfn: w.model[lfn], other: w.model[other]}
		}
		return lrcOp{"rename " + lfn + " to " + to, []codes.Code{want}, post, single(func(ctx context.Context, c rlsv1.CatalogClient) error {
			_, err := c.RenameLFN(ctx, &rlsv1.RenameRequest{OldName: lfn, NewName: to})
			return err
		})}
	default: // set the size, or (refused) set it on an LFN that does not exist
		v := w.rng.Int64N(1 << 40)
		target, want := lfn, codes.OK
		if kind == 10 && w.rng.IntN(3) == 0 {
			target, want = w.fresh("lfn"), codes.NotFound
			post[target] = lfnState{}
		} else {
			s := w.model[lfn]
			s.size, s.hasSize = v, true
			post[lfn] = s
		}
		return lrcOp{fmt.Sprintf("set size of %s to %d", target, v), []codes.Code{want}, post, single(func(ctx context.Context, c rlsv1.CatalogClient) error {
			_, err := c.SetAttribute(ctx, &rlsv1.SetAttributeRequest{
				Object: rlsv1.ObjectType_OBJECT_TYPE_LFN, ObjectName: target, Name: "size",
				Value: &rlsv1.Value{V: &rlsv1.Value_Int{Int: v}},
			})
			return err
		})}
	}
}

// readStates reads the state of lfns from the catalog.
func readStates(ctx context.Context, cat rlsv1.CatalogClient, lfns []string) (map[string]lfnState, error) {
	out := map[string]lfnState{}
	for c := range slices.Chunk(lfns, 5000) {
		q, err := cat.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Type: rlsv1.ObjectType_OBJECT_TYPE_LFN, Names: c})
		if err != nil {
			return nil, err
		}
		a, err := cat.BulkGetAttributes(ctx, &rlsv1.BulkGetAttributesRequest{Object: rlsv1.ObjectType_OBJECT_TYPE_LFN, ObjectNames: c, Names: []string{"size"}})
		if err != nil {
			return nil, err
		}
		for i, l := range c {
			var s lfnState
			switch r := q.GetResults()[i]; codes.Code(r.GetStatus().GetCode()) {
			case codes.OK:
				s.pfns = slices.Sorted(slices.Values(r.GetNames()))
			case codes.NotFound:
			default:
				return nil, fmt.Errorf("query %s: %v", l, r.GetStatus())
			}
			for _, at := range a.GetResults()[i].GetAttributes() {
				s.size, s.hasSize = at.GetValue().GetInt(), true
			}
			out[l] = s
		}
	}
	return out, nil
}

// copyCatalog copies the catalog directory dir, as the kill left it, for
// reading its change feed with package catalog while rlsd serves dir. (It
// must be taken before rlsd starts: Pebble replaces files as it opens.)
func copyCatalog(t *testing.T, dir string) string {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "catalog")
	if err := os.CopyFS(cp, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return cp
}

// checkLRC checks the catalog served on cc against the workers' models
// (resolving the calls the kill cut), its stats, and the change feed of
// feedDir, a copy of the catalog as the kill left it.
func checkLRC(t *testing.T, cc *grpc.ClientConn, ws []*lrcWorker, feedDir, when string) {
	t.Helper()
	defer os.RemoveAll(feedDir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cat := rlsv1.NewCatalogClient(cc)

	// The calls the kill cut: all of it or nothing.
	for _, w := range ws {
		u := w.uncertain
		if u == nil {
			continue
		}
		w.uncertain = nil
		got, err := readStates(ctx, cat, slices.Sorted(maps.Keys(u.post)))
		if err != nil {
			t.Fatal(err)
		}
		matches := func(want map[string]lfnState) bool {
			for l, s := range want {
				if !got[l].equal(s) {
					return false
				}
			}
			return true
		}
		if !matches(u.pre) && !matches(u.post) {
			var b strings.Builder
			for _, l := range slices.Sorted(maps.Keys(u.post)) {
				fmt.Fprintf(&b, "\n  %s: before %v, applied %v, found %v", l, u.pre[l], u.post[l], got[l])
			}
			t.Fatalf("%s: worker %d's call %q, cut by the kill, is half applied:%s", when, w.id, u.desc, b.String())
		}
		for l, s := range got {
			w.set(l, s)
		}
	}

	// The whole catalog equals the models.
	want := map[string]lfnState{}
	for _, w := range ws {
		maps.Copy(want, w.model)
	}
	scanned := map[string]lfnState{}
	pfns := map[string]bool{}
	var mappings uint64
	for off := uint64(0); ; {
		r, err := cat.QueryWildcard(ctx, &rlsv1.WildcardRequest{Pattern: "*", Offset: off, Limit: 100_000})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range r.GetMappings() {
			scanned[m.GetLfn()] = scanned[m.GetLfn()].with(m.GetPfn())
			pfns[m.GetPfn()] = true
			mappings++
		}
		off += uint64(len(r.GetMappings()))
		if !r.GetMore() {
			break
		}
	}
	attrs, err := readStates(ctx, cat, slices.Sorted(maps.Keys(scanned)))
	if err != nil {
		t.Fatal(err)
	}
	for l, s := range attrs {
		if !slices.Equal(s.pfns, scanned[l].pfns) {
			t.Fatalf("%s: %s has PFNs %q in a query but %q in the scan", when, l, s.pfns, scanned[l].pfns)
		}
		scanned[l] = s
	}
	var diffs []string
	for _, l := range slices.Sorted(maps.Keys(want)) {
		if !scanned[l].equal(want[l]) {
			diffs = append(diffs, fmt.Sprintf("%s: want %v, found %v", l, want[l], scanned[l]))
		}
	}
	for _, l := range slices.Sorted(maps.Keys(scanned)) {
		if _, ok := want[l]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: never acknowledged, found %v", l, scanned[l]))
		}
	}
	if len(diffs) > 0 {
		t.Fatalf("%s: the catalog differs from what was acknowledged (%d LFNs):\n  %s", when, len(diffs), strings.Join(diffs[:min(len(diffs), 20)], "\n  "))
	}

	// Stats count what the scan found.
	st, err := rlsv1.NewAdminClient(cc).Stats(ctx, &rlsv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cs := st.GetCatalog()
	if cs.GetLfns() != uint64(len(scanned)) || cs.GetPfns() != uint64(len(pfns)) || cs.GetMappings() != mappings {
		t.Fatalf("%s: stats count %d LFNs, %d PFNs, %d mappings; a full scan finds %d, %d, %d",
			when, cs.GetLfns(), cs.GetPfns(), cs.GetMappings(), len(scanned), len(pfns), mappings)
	}

	// The feed: dense, consistent, and it replays to the catalog.
	fc, err := catalog.Open(feedDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	fs, err := fc.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fs.FirstSeq != 1 || fs.Seq != cs.GetSeq() || cs.GetFirstSeq() != 1 {
		t.Fatalf("%s: the feed holds %d..%d (stats: %d..%d); want 1..%d, nothing pruned",
			when, fs.FirstSeq, fs.Seq, cs.GetFirstSeq(), cs.GetSeq(), cs.GetSeq())
	}
	replay := map[string][]string{}
	next := uint64(1)
	for {
		chs, err := fc.Changes(context.Background(), next, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		if len(chs) == 0 {
			break
		}
		for _, ch := range chs {
			if ch.Seq != next {
				t.Fatalf("%s: feed record %d follows %d: a gap", when, ch.Seq, next-1)
			}
			next++
			if err := replayChange(replay, ch); err != nil {
				t.Fatalf("%s: feed record %d (%v %s %s %s): %v", when, ch.Seq, ch.Kind, ch.LFN, ch.PFN, ch.Old, err)
			}
		}
	}
	if next-1 != cs.GetSeq() {
		t.Fatalf("%s: the feed ends at %d, stats say %d", when, next-1, cs.GetSeq())
	}
	for l := range replay {
		if !slices.Equal(replay[l], scanned[l].pfns) {
			t.Fatalf("%s: the feed replays %s to %q, the catalog holds %q", when, l, replay[l], scanned[l].pfns)
		}
	}
	for l := range scanned {
		if _, ok := replay[l]; !ok {
			t.Fatalf("%s: %s is in the catalog but not in the feed's replay", when, l)
		}
	}
}

// replayChange applies ch to mappings (LFN to sorted PFNs) and checks its
// LFN flags against the state before it.
func replayChange(mappings map[string][]string, ch catalog.Change) error {
	had := len(mappings[ch.LFN]) > 0
	switch ch.Kind {
	case catalog.ChangeCreate, catalog.ChangeAdd:
		if slices.Contains(mappings[ch.LFN], ch.PFN) {
			return errors.New("the mapping exists already")
		}
		if ch.LFNAdded == had || ch.LFNRemoved || (ch.Kind == catalog.ChangeCreate) == had {
			return fmt.Errorf("flags added=%v removed=%v, but the LFN had %d PFNs", ch.LFNAdded, ch.LFNRemoved, len(mappings[ch.LFN]))
		}
		mappings[ch.LFN] = append(mappings[ch.LFN], ch.PFN)
		slices.Sort(mappings[ch.LFN])
	case catalog.ChangeDelete:
		i := slices.Index(mappings[ch.LFN], ch.PFN)
		if i < 0 {
			return errors.New("a tombstone of a mapping that does not exist")
		}
		mappings[ch.LFN] = slices.Delete(mappings[ch.LFN], i, i+1)
		if ch.LFNRemoved != (len(mappings[ch.LFN]) == 0) || ch.LFNAdded {
			return fmt.Errorf("flags added=%v removed=%v, but %d PFNs are left", ch.LFNAdded, ch.LFNRemoved, len(mappings[ch.LFN]))
		}
		if len(mappings[ch.LFN]) == 0 {
			delete(mappings, ch.LFN)
		}
	case catalog.ChangeRenameLFN:
		if len(mappings[ch.Old]) == 0 || had {
			return fmt.Errorf("a rename of an LFN with %d PFNs to one with %d", len(mappings[ch.Old]), len(mappings[ch.LFN]))
		}
		mappings[ch.LFN] = mappings[ch.Old]
		delete(mappings, ch.Old)
	default:
		return fmt.Errorf("unexpected kind %v", ch.Kind)
	}
	return nil
}
