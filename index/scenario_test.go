package index

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/cockroachdb/datadriven"

	"github.com/solar-archive/rls/catalog"
)

// TestScenarios runs the soft-state scenarios of testdata/index: indexes
// on a fake clock, updates sent into them, lookups, expiry, restarts and
// forwarding, each command with the output it must give. The commands:
//
//	open name=N [site=S] [max-sites=N] [max-bloom-bits=N]
//	    opens index N (the first one opened is the default of at=; without
//	    any open, index "rli" of site rli-test is opened)
//	update [at=N] site=S mode=list|bloom|delta gen=G [base=B] [validity=D]
//	       [inc=HEX] [via=A,B] [endpoint=E] [entries=N] [updated=D]
//	       [fp=F] [fill=F] [version=V] [m=M] [k=K]
//	    sends one update: the input's names (one a line; Go-quoted if they
//	    start with "), +name and -name for a delta. A Bloom update is the
//	    filter of the names at rate fp (0.01), or with each bit set with
//	    probability fill; version, m and k override its header.
//	receive [at=N]
//	    sends the input's messages: "header ARGS" (as update's), "lfns
//	    NAMES", "zeros N" (a Bloom chunk of N zero words), "delta +A -B",
//	    "none"
//	locate [at=N] LFN...    the candidates of each LFN (and of the input's)
//	sites [at=N]            the sites held
//	stats [at=N]            the counts, and the LFNs indexed by delta
//	wildcard [at=N] pattern=P [offset=O] [limit=L]
//	advance D               moves the clock
//	expire [at=N]           drops the expired sites
//	restart [at=N]          closes and opens the index again
//	forward from=N to=N [full] [patterns=P,Q] [self=S]
//	    one round of N's forwarder to N (what it sends, and the result);
//	    it names itself S in Via (default: N's site)
//
// Times print relative to the clock's start.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/index", func(t *testing.T, path string) {
		h := &scenario{t: t, clk: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
			idx: map[string]*Index{}, dirs: map[string]string{}, opts: map[string]*Options{}, fwd: map[string]map[string]held{}}
		h.start = h.clk.now()
		datadriven.RunTest(t, path, h.cmd)
	})
}

type scenario struct {
	t     *testing.T
	clk   *clock
	start time.Time
	idx   map[string]*Index
	dirs  map[string]string
	opts  map[string]*Options
	first string
	fwd   map[string]map[string]held // from>to: what the parent holds
}

// args are a command's arguments.
type args []datadriven.CmdArg

func (a args) get(key, def string) string {
	for _, c := range a {
		if c.Key == key {
			if len(c.Vals) == 0 {
				return "true"
			}
			return strings.Join(c.Vals, ",")
		}
	}
	return def
}

func (a args) has(key string) bool { return a.get(key, "") != "" }

func (a args) uint(t *testing.T, key string, def uint64) uint64 {
	v, err := strconv.ParseUint(a.get(key, strconv.FormatUint(def, 10)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return v
}

func (a args) float(t *testing.T, key string, def float64) float64 {
	v, err := strconv.ParseFloat(a.get(key, strconv.FormatFloat(def, 'g', -1, 64)), 64)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return v
}

func (a args) dur(t *testing.T, key string, def time.Duration) time.Duration {
	v, err := time.ParseDuration(a.get(key, def.String()))
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return v
}

func (a args) list(key string) []string {
	if v := a.get(key, ""); v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

func (h *scenario) rel(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := t.Sub(h.start)
	if d < 0 {
		return d.String()
	}
	return "+" + d.String()
}

func (h *scenario) open(name string, opts *Options) {
	if _, ok := h.dirs[name]; !ok {
		h.dirs[name] = h.t.TempDir()
		h.opts[name] = opts
	}
	x, err := Open(h.dirs[name], h.opts[name])
	if err != nil {
		h.t.Fatalf("open %s: %v", name, err)
	}
	h.t.Cleanup(func() { _ = x.Close() })
	h.idx[name] = x
	if h.first == "" {
		h.first = name
	}
}

// at returns the index the command names (at=), or the default one.
func (h *scenario) at(a args) *Index {
	if h.first == "" {
		h.open("rli", &Options{Site: "rli-test", ExpireInterval: time.Hour, NoSync: true, Logger: quietLogger(), Now: h.clk.now})
	}
	name := a.get("at", h.first)
	x, ok := h.idx[name]
	if !ok {
		h.t.Fatalf("no index %q", name)
	}
	return x
}

func (h *scenario) cmd(t *testing.T, d *datadriven.TestData) string {
	a := args(d.CmdArgs)
	switch d.Cmd {
	case "open":
		o := &Options{Site: a.get("site", a.get("name", "rli")), ExpireInterval: time.Hour, NoSync: true, Logger: quietLogger(), Now: h.clk.now,
			MaxSites: int(a.uint(t, "max-sites", 0)), MaxBloomBits: a.uint(t, "max-bloom-bits", 0)}
		h.open(a.get("name", "rli"), o)
		return ""
	case "update":
		return h.result(h.at(a).Receive(recvFrom(h.update(t, a, d.Input))))
	case "receive":
		return h.result(h.at(a).Receive(recvFrom(h.rawMessages(t, d.Input))))
	case "locate":
		return h.locate(h.at(a), a, d.Input)
	case "sites":
		return h.sites(h.at(a))
	case "stats":
		x := h.at(a)
		st := x.Stats()
		x.mu.RLock()
		byDelta := len(x.addedBy)
		x.mu.RUnlock()
		return fmt.Sprintf("sites=%d list=%d bloom=%d exact=%d bloom-bits=%d groups=%d memory=%d by-delta=%d",
			st.Sites, st.ListSites, st.BloomSites, st.ExactEntries, st.BloomBits, st.BloomGroups, st.MemoryBytes, byDelta)
	case "wildcard":
		return h.wildcard(h.at(a), a)
	case "advance":
		dd, err := time.ParseDuration(d.CmdArgs[0].Key)
		if err != nil {
			t.Fatal(err)
		}
		h.clk.add(dd)
		return ""
	case "expire":
		return fmt.Sprintf("dropped %d", h.at(a).ExpireNow())
	case "restart":
		name := a.get("at", h.first)
		if err := h.at(a).Close(); err != nil {
			t.Fatal(err)
		}
		h.open(name, nil)
		return ""
	case "forward":
		return h.forward(t, a)
	}
	t.Fatalf("unknown command %q", d.Cmd)
	return ""
}

func (h *scenario) result(ack Ack, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("ok gen=%d entries=%d expires=%s", ack.Generation, ack.Entries, h.rel(ack.Expires))
}

// header builds a header from a command's arguments.
func (h *scenario) header(t *testing.T, a args) Header {
	site := name(t, a.get("site", ""))
	hd := Header{
		Site: site, Endpoint: name(t, a.get("endpoint", site+":7600")),
		Generation: a.uint(t, "gen", 0), BaseGeneration: a.uint(t, "base", 0),
		Validity: a.dur(t, "validity", time.Hour), Via: a.list("via"), Entries: a.uint(t, "entries", 0),
	}
	if m, err := ParseMode(a.get("mode", "")); err == nil {
		hd.Mode = m
	}
	if a.has("updated") {
		hd.Updated = h.clk.now().Add(a.dur(t, "updated", 0))
	}
	if v := a.get("inc", ""); v != "" {
		b, err := hex.DecodeString(v)
		if err != nil {
			t.Fatalf("inc: %v", err)
		}
		if len(b) == 1 { // a byte repeated: a whole incarnation
			b = slices.Repeat(b, catalog.IncarnationLen)
		}
		hd.Incarnation = b
	}
	if hd.Mode == ModeBloom || a.has("m") {
		hd.Bloom = BloomParams{Version: uint32(a.uint(t, "version", BloomVersion)), M: a.uint(t, "m", 0),
			K: uint32(a.uint(t, "k", 0)), Entries: a.uint(t, "n", 0)}
	}
	return hd
}

// name parses one name of the input: as it is, or Go-quoted.
func name(t *testing.T, s string) string {
	if strings.HasPrefix(s, `"`) {
		u, err := strconv.Unquote(s)
		if err != nil {
			t.Fatalf("name %s: %v", s, err)
		}
		return u
	}
	return s
}

// update builds the messages of an update command.
func (h *scenario) update(t *testing.T, a args, input string) []Message {
	hd := h.header(t, a)
	var names, added, removed []string
	for _, l := range strings.Split(input, "\n") {
		switch l = strings.TrimSpace(l); {
		case l == "":
		case hd.Mode == ModeDelta && l[0] == '+':
			added = append(added, name(t, l[1:]))
		case hd.Mode == ModeDelta && l[0] == '-':
			removed = append(removed, name(t, l[1:]))
		default:
			names = append(names, name(t, l))
		}
	}
	var u Update
	switch hd.Mode {
	case ModeList:
		if !a.has("entries") {
			hd.Entries = uint64(len(names))
		}
		u = Update{Header: hd, LFNs: slices.Values(names)}
	case ModeBloom:
		m, k := BloomGeometry(uint64(len(names)), a.float(t, "fp", DefaultFalsePositiveRate))
		f := bloom.New(uint(m), uint(k))
		for _, n := range names {
			f.AddString(n)
		}
		words := f.BitSet().Words()
		if fill := a.float(t, "fill", 0); fill > 0 {
			rng := rand.New(rand.NewPCG(1, 2))
			for b := range m {
				if rng.Float64() < fill {
					words[b/64] |= 1 << (b % 64)
				}
			}
		}
		over := hd.Bloom
		hd.Bloom = BloomParams{Version: over.Version, M: m, K: k, Entries: uint64(len(names))}
		if a.has("m") {
			hd.Bloom.M = over.M
		}
		if a.has("k") {
			hd.Bloom.K = over.K
		}
		u = Update{Header: hd, Words: words}
	default:
		if !a.has("entries") {
			hd.Entries = uint64(len(added) + len(removed))
		}
		u = Update{Header: hd, Added: added, Removed: removed}
	}
	msgs := []Message{{Part: PartHeader, Header: u.Header}}
	rest, err := messages(Update{Header: Header{Mode: hd.Mode, Entries: uint64(len(names))}, LFNs: u.LFNs, Words: u.Words, Added: u.Added, Removed: u.Removed})
	if err != nil {
		t.Fatal(err)
	}
	return append(msgs, rest[1:]...)
}

// rawMessages parses a receive command's messages.
func (h *scenario) rawMessages(t *testing.T, input string) []Message {
	var msgs []Message
	for _, l := range strings.Split(input, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "header":
			var a args
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				a = append(a, datadriven.CmdArg{Key: k, Vals: []string{v}})
			}
			msgs = append(msgs, Message{Part: PartHeader, Header: h.header(t, a)})
		case "lfns":
			var names []string
			for _, n := range f[1:] {
				names = append(names, name(t, n))
			}
			msgs = append(msgs, Message{Part: PartLFNs, LFNs: names})
		case "zeros":
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, Message{Part: PartBloom, Words: make([]uint64, n)})
		case "delta":
			m := Message{Part: PartDelta}
			for _, n := range f[1:] {
				if n[0] == '+' {
					m.Added = append(m.Added, name(t, n[1:]))
				} else {
					m.Removed = append(m.Removed, name(t, n[1:]))
				}
			}
			msgs = append(msgs, m)
		case "none":
			msgs = append(msgs, Message{})
		default:
			t.Fatalf("unknown message %q", l)
		}
	}
	return msgs
}

func (h *scenario) locate(x *Index, a args, input string) string {
	var lfns []string
	for _, c := range a {
		if c.Key != "at" {
			lfns = append(lfns, c.Key)
		}
	}
	for _, l := range strings.Split(input, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lfns = append(lfns, name(h.t, l))
		}
	}
	res, err := x.Locate(lfns)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for i, cands := range res {
		q := strconv.Quote(lfns[i])
		fmt.Fprintf(&b, "%s:", q[1:len(q)-1])
		if len(cands) == 0 {
			b.WriteString(" -")
		}
		for _, c := range cands {
			fmt.Fprintf(&b, " %s/%v", c.Site, c.KnownBy)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (h *scenario) sites(x *Index) string {
	var b strings.Builder
	for _, s := range x.Sites() {
		fmt.Fprintf(&b, "%s %v gen=%d full=%d entries=%d deltas=%d endpoint=%s updated=%s received=%s expires=%s",
			s.Site, s.Mode, s.Generation, s.FullGeneration, s.Entries, s.Deltas, s.Endpoint,
			h.rel(s.Updated), h.rel(s.Received), h.rel(s.Expires))
		if len(s.Via) > 0 {
			fmt.Fprintf(&b, " via=%s", strings.Join(s.Via, ","))
		}
		if s.Mode == ModeBloom {
			fmt.Fprintf(&b, " bloom=v%d/m%d/k%d/n%d", s.Bloom.Version, s.Bloom.M, s.Bloom.K, s.Bloom.Entries)
		}
		if len(s.Incarnation) > 0 {
			fmt.Fprintf(&b, " inc=%x", s.Incarnation[:1])
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (h *scenario) wildcard(x *Index, a args) string {
	ms, more, unsearched, err := x.Wildcard(name(h.t, a.get("pattern", "")), int(a.uint(h.t, "offset", 0)), int(a.uint(h.t, "limit", 0)))
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s@%s/%v\n", m.LFN, m.Site, m.KnownBy)
	}
	fmt.Fprintf(&b, "more=%v unsearched=%s\n", more, strings.Join(unsearched, ","))
	return b.String()
}

// forward runs one round of forwarding from one index to another, through
// a Sink that prints what it sends.
func (h *scenario) forward(t *testing.T, a args) string {
	from, to := a.get("from", ""), a.get("to", "")
	fx, tx := h.idx[from], h.idx[to]
	if fx == nil || tx == nil {
		t.Fatalf("forward from %q to %q: no such index", from, to)
	}
	p := Parent{Addr: to}
	for _, s := range a.list("patterns") {
		pat, err := catalog.CompilePattern(s)
		if err != nil {
			t.Fatal(err)
		}
		p.Patterns = append(p.Patterns, pat)
	}
	key := from + ">" + to
	if h.fwd[key] == nil {
		h.fwd[key] = map[string]held{}
	}
	f := &Forwarder{x: fx, self: a.get("self", fx.opts.Site), log: quietLogger()}
	var b strings.Builder
	sink := &traceSink{next: localSink{tx}, out: &b, h: h}
	res := f.forwardAll(context.Background(), sink, p, h.fwd[key], a.has("full"), quietLogger())
	fmt.Fprintf(&b, "forwarded sites=%d entries=%d", res.Sites, res.Entries)
	if res.Err != nil {
		fmt.Fprintf(&b, " error: %v", res.Err)
	}
	return b.String()
}

// traceSink prints each update it passes on, and the answer.
type traceSink struct {
	next Sink
	out  *strings.Builder
	h    *scenario
}

func (s *traceSink) Send(ctx context.Context, u Update) (Ack, error) {
	hd := u.Header
	fmt.Fprintf(s.out, "send %s %v gen=%d", hd.Site, hd.Mode, hd.Generation)
	switch hd.Mode {
	case ModeList:
		names := slices.Collect(u.LFNs)
		u.LFNs = slices.Values(names)
		fmt.Fprintf(s.out, " lfns=%s", strings.Join(names, ","))
	case ModeBloom:
		fmt.Fprintf(s.out, " bloom=m%d/k%d/n%d", hd.Bloom.M, hd.Bloom.K, hd.Bloom.Entries)
	case ModeDelta:
		a, r := slices.Sorted(slices.Values(u.Added)), slices.Sorted(slices.Values(u.Removed))
		fmt.Fprintf(s.out, " base=%d added=%s removed=%s", hd.BaseGeneration, strings.Join(a, ","), strings.Join(r, ","))
	}
	fmt.Fprintf(s.out, " via=%s validity=%v\n", strings.Join(hd.Via, ","), hd.Validity)
	ack, err := s.next.Send(ctx, u)
	fmt.Fprintf(s.out, "  %s\n", s.h.result(ack, err))
	return ack, err
}
