package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/solar-archive/rls/api/rlsv1"
)

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openTest(t testing.TB, dir string, clk *clock) *Index {
	t.Helper()
	opts := &Options{Site: "rli-test", ExpireInterval: time.Hour, NoSync: true, Logger: slog.New(slog.DiscardHandler)}
	if clk != nil {
		opts.Now = clk.now
	}
	x, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func recvFrom(msgs []*rlsv1.UpdateRequest) func() (*rlsv1.UpdateRequest, error) {
	return func() (*rlsv1.UpdateRequest, error) {
		if len(msgs) == 0 {
			return nil, io.EOF
		}
		m := msgs[0]
		msgs = msgs[1:]
		return m, nil
	}
}

func header(site string, mode Mode, gen uint64) *rlsv1.UpdateHeader {
	return &rlsv1.UpdateHeader{
		Site: site, Endpoint: site + ":7600", Mode: ModeProto(mode), Generation: gen,
		Validity: durationpb.New(time.Hour),
	}
}

func listMsgs(site string, gen uint64, lfns ...string) []*rlsv1.UpdateRequest {
	h := header(site, ModeList, gen)
	h.Entries = uint64(len(lfns))
	msgs := []*rlsv1.UpdateRequest{{Body: &rlsv1.UpdateRequest_Header{Header: h}}}
	for c := range slices.Chunk(lfns, 1000) {
		msgs = append(msgs, &rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Lfns{Lfns: &rlsv1.LFNChunk{Lfns: c}}})
	}
	return msgs
}

func newFilter(fp float64, lfns ...string) (*bloom.BloomFilter, BloomParams) {
	m, k := BloomGeometry(uint64(len(lfns)), fp)
	f := bloom.New(uint(m), uint(k))
	for _, l := range lfns {
		f.AddString(l)
	}
	return f, BloomParams{Version: BloomVersion, M: m, K: k, Entries: uint64(len(lfns))}
}

func wordBytes(words []uint64) []byte {
	b := make([]byte, 0, 8*len(words))
	for _, w := range words {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return b
}

func bloomMsgs(site string, gen uint64, f *bloom.BloomFilter, p BloomParams) []*rlsv1.UpdateRequest {
	h := header(site, ModeBloom, gen)
	h.Bloom = &rlsv1.BloomHeader{Version: p.Version, M: p.M, K: p.K, Entries: p.Entries}
	msgs := []*rlsv1.UpdateRequest{{Body: &rlsv1.UpdateRequest_Header{Header: h}}}
	for c := range slices.Chunk(f.BitSet().Words(), 100) {
		msgs = append(msgs, &rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Bloom{Bloom: &rlsv1.BloomChunk{Words: wordBytes(c)}}})
	}
	return msgs
}

func deltaMsgs(site string, base, gen uint64, added, removed []string) []*rlsv1.UpdateRequest {
	h := header(site, ModeDelta, gen)
	h.BaseGeneration = base
	h.Entries = uint64(len(added) + len(removed))
	return []*rlsv1.UpdateRequest{
		{Body: &rlsv1.UpdateRequest_Header{Header: h}},
		{Body: &rlsv1.UpdateRequest_Delta{Delta: &rlsv1.DeltaChunk{Added: added, Removed: removed}}},
	}
}

func mustReceive(t testing.TB, x *Index, msgs []*rlsv1.UpdateRequest) Ack {
	t.Helper()
	ack, err := x.Receive(recvFrom(msgs))
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return ack
}

// where returns "site/how" for each candidate of each LFN.
func where(t testing.TB, x *Index, lfns ...string) []string {
	t.Helper()
	res, err := x.Locate(lfns)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(res))
	for i, cands := range res {
		var s []string
		for _, c := range cands {
			s = append(s, c.Site+"/"+c.KnownBy.String())
		}
		out[i] = strings.Join(s, ",")
	}
	return out
}

func wantWhere(t *testing.T, x *Index, lfns []string, want ...string) {
	t.Helper()
	if got := where(t, x, lfns...); !slices.Equal(got, want) {
		t.Fatalf("Locate(%q) =\n  %q\nwant\n  %q", lfns, got, want)
	}
}

func TestListUpdates(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	if ack := mustReceive(t, x, listMsgs("nso", 10, "3", "1", "2", "2")); ack.Entries != 3 { // unsorted, duplicate
		t.Fatalf("ack = %+v, want 3 entries (a duplicate dropped)", ack)
	}
	ack := mustReceive(t, x, listMsgs("jsoc", 5, "1", "2", "4"))
	if ack.Generation != 5 || ack.Entries != 3 {
		t.Fatalf("ack = %+v", ack)
	}
	lfns := []string{"1", "2", "3", "4", "5"}
	wantWhere(t, x, lfns, "jsoc/list,nso/list", "jsoc/list,nso/list", "nso/list", "jsoc/list", "")

	// A new full list replaces the old one.
	mustReceive(t, x, listMsgs("nso", 11, "5"))
	wantWhere(t, x, lfns, "jsoc/list", "jsoc/list", "", "jsoc/list", "nso/list")

	sites := x.Sites()
	if len(sites) != 2 || sites[0].Site != "jsoc" || sites[1].Generation != 11 || sites[1].Entries != 1 || sites[1].Mode != ModeList {
		t.Fatalf("Sites = %+v", sites)
	}
}

func TestBloomUpdates(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	var a, b []string
	for i := range 5000 {
		a = append(a, fmt.Sprint(i))
		if i%2 == 0 {
			b = append(b, fmt.Sprint(i))
		}
	}
	fa, pa := newFilter(0.01, a...)
	fb, pb := newFilter(0.001, b...) // another geometry, another group
	mustReceive(t, x, bloomMsgs("sao", 1, fa, pa))
	mustReceive(t, x, bloomMsgs("nso", 1, fb, pb))
	// A lone site's rows are its filter: the slicing costs no memory.
	if st := x.Stats(); st.BloomGroups != 2 || st.BloomSites != 2 || st.MemoryBytes != (pa.M+pb.M)/8 {
		t.Fatalf("stats = %+v, want 2 groups of one site, %d bytes", st, (pa.M+pb.M)/8)
	}
	res, err := x.Locate(a)
	if err != nil {
		t.Fatal(err)
	}
	for i, cands := range res {
		var sites []string
		for _, c := range cands {
			if c.KnownBy != ModeBloom {
				t.Fatalf("%s known by %v", a[i], c.KnownBy)
			}
			sites = append(sites, c.Site)
		}
		if !slices.Contains(sites, "sao") || (i%2 == 0 && !slices.Contains(sites, "nso")) {
			t.Fatalf("Locate(%s) = %v: a false negative", a[i], sites)
		}
	}
	// Absent names: only what the filters' own Test says (false positives
	// come from the filter, not from the slicing).
	for i := range 2000 {
		lfn := fmt.Sprint("absent-", i)
		var want []string
		if fb.TestString(lfn) {
			want = append(want, "nso/bloom")
		}
		if fa.TestString(lfn) {
			want = append(want, "sao/bloom")
		}
		wantWhere(t, x, []string{lfn}, strings.Join(want, ","))
	}
}

// TestBitSlicedMatchesFilters checks the bit-sliced store against each
// site's own filter, with more sites than one row word holds, sites
// replaced (their columns reused) and dropped.
func TestBitSlicedMatchesFilters(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	x := openTest(t, t.TempDir(), clk)
	filters := map[string]*bloom.BloomFilter{}
	put := func(site string, gen uint64, n int) {
		var lfns []string
		for i := range n {
			lfns = append(lfns, fmt.Sprintf("%s-%d-%d", site, gen, i))
		}
		f, p := newFilter(0.01, lfns...)
		mustReceive(t, x, bloomMsgs(site, gen, f, p))
		filters[site] = f
	}
	for i := range 150 {
		put(fmt.Sprintf("s%03d", i), 1, 50+i%3*40) // 3 geometries... or fewer
	}
	for i := 0; i < 150; i += 7 {
		put(fmt.Sprintf("s%03d", i), 2, 60)
	}
	check := func() {
		t.Helper()
		var probes []string
		for i := range 150 {
			probes = append(probes, fmt.Sprintf("s%03d-1-%d", i, i%50), fmt.Sprintf("s%03d-2-%d", i, i%50))
		}
		res, err := x.Locate(probes)
		if err != nil {
			t.Fatal(err)
		}
		for i, lfn := range probes {
			var want []string
			for site, f := range filters {
				if f.TestString(lfn) {
					want = append(want, site)
				}
			}
			slices.Sort(want)
			var got []string
			for _, c := range res[i] {
				got = append(got, c.Site)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("Locate(%s) = %v, the filters say %v", lfn, got, want)
			}
		}
	}
	check()
	// Half the sites stop sending: they expire and their columns free up.
	for i := 0; i < 150; i += 2 {
		mustReceive(t, x, listMsgs(fmt.Sprintf("s%03d", i), 3, "x")) // now a list site
		delete(filters, fmt.Sprintf("s%03d", i))
	}
	clk.add(30 * time.Minute)
	for i := 1; i < 150; i += 4 {
		put(fmt.Sprintf("s%03d", i), 4, 70) // refreshed, the others expire
	}
	clk.add(45 * time.Minute)
	if n := x.ExpireNow(); n == 0 {
		t.Fatal("nothing expired")
	}
	for i := 1; i < 150; i += 2 {
		if (i-1)%4 != 0 {
			delete(filters, fmt.Sprintf("s%03d", i))
		}
	}
	check()
	for i := 300; i < 340; i++ {
		put(fmt.Sprintf("s%03d", i), 1, 50) // reuse freed columns
	}
	check()
}

func TestDeltas(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	mustReceive(t, x, listMsgs("nso", 10, "1", "2"))
	f, p := newFilter(0.01, "1", "2")
	mustReceive(t, x, bloomMsgs("sao", 20, f, p))
	lfns := []string{"1", "2", "3"}

	mustReceive(t, x, deltaMsgs("nso", 10, 12, []string{"3"}, []string{"1"}))
	mustReceive(t, x, deltaMsgs("sao", 20, 21, []string{"3"}, []string{"2"}))
	wantWhere(t, x, lfns, "sao/bloom", "nso/list", "nso/delta,sao/delta")

	// Out of sequence: the wrong base, an unknown site.
	for _, msgs := range [][]*rlsv1.UpdateRequest{
		deltaMsgs("nso", 10, 13, []string{"9"}, nil),
		deltaMsgs("kis", 0, 1, []string{"9"}, nil),
	} {
		if _, err := x.Receive(recvFrom(msgs)); !errors.Is(err, ErrOutOfSequence) {
			t.Fatalf("Receive = %v, want ErrOutOfSequence", err)
		}
	}
	// Back and forth.
	mustReceive(t, x, deltaMsgs("nso", 12, 14, []string{"1"}, []string{"3"}))
	mustReceive(t, x, deltaMsgs("sao", 21, 22, []string{"2"}, []string{"3"}))
	wantWhere(t, x, lfns, "nso/list,sao/bloom", "nso/list,sao/delta", "")
	info := x.Sites()
	if info[0].Generation != 14 || info[0].FullGeneration != 10 || info[0].Deltas != 2 || info[1].Generation != 22 {
		t.Fatalf("Sites = %+v", info)
	}
	// A full update clears the overlay.
	mustReceive(t, x, listMsgs("nso", 30, "7"))
	wantWhere(t, x, []string{"1", "7"}, "sao/bloom", "nso/list")
}

func TestExpiry(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	dir := t.TempDir()
	x := openTest(t, dir, clk)
	mustReceive(t, x, listMsgs("nso", 1, "1"))
	f, p := newFilter(0.01, "1")
	mustReceive(t, x, bloomMsgs("sao", 1, f, p))
	clk.add(59 * time.Minute)
	wantWhere(t, x, []string{"1"}, "nso/list,sao/bloom")
	clk.add(time.Minute) // validity is one hour
	wantWhere(t, x, []string{"1"}, "")
	if n := len(x.Sites()); n != 0 {
		t.Fatalf("%d sites listed after expiry", n)
	}
	if n := x.ExpireNow(); n != 2 {
		t.Fatalf("ExpireNow dropped %d, want 2", n)
	}
	if st := x.Stats(); st.BloomGroups != 0 {
		t.Fatalf("empty group kept: %+v", st)
	}
	x.Close()
	x = openTest(t, dir, clk)
	if n := len(x.Sites()); n != 0 {
		t.Fatalf("expired sites came back: %d", n)
	}
}

func TestRestartKeepsStateAndExpiry(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	dir := t.TempDir()
	x := openTest(t, dir, clk)
	mustReceive(t, x, listMsgs("nso", 1, "1", "2"))
	f, p := newFilter(0.01, "1", "3")
	mustReceive(t, x, bloomMsgs("sao", 1, f, p))
	mustReceive(t, x, deltaMsgs("nso", 1, 2, []string{"4"}, []string{"2"}))
	mustReceive(t, x, deltaMsgs("sao", 1, 5, []string{"5"}, []string{"3"}))
	clk.add(10 * time.Minute)
	mustReceive(t, x, listMsgs("kis", 1, "1"))
	lfns := []string{"1", "2", "3", "4", "5"}
	before := where(t, x, lfns...)
	sitesBefore := x.Sites()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x = openTest(t, dir, clk)
	if got := where(t, x, lfns...); !slices.Equal(got, before) {
		t.Fatalf("after reopen Locate = %q, before %q", got, before)
	}
	sitesAfter := x.Sites()
	for i := range sitesBefore {
		a, b := sitesBefore[i], sitesAfter[i]
		if a.Site != b.Site || !a.Expires.Equal(b.Expires) || a.Generation != b.Generation || a.FullGeneration != b.FullGeneration || a.Deltas != b.Deltas {
			t.Fatalf("site %d before %+v after %+v", i, a, b)
		}
	}
	// Deltas keep applying on top of what was loaded.
	mustReceive(t, x, deltaMsgs("sao", 5, 6, []string{"3"}, nil))
	clk.add(55 * time.Minute) // nso expires; kis and sao (refreshed by the delta) not yet
	x.Close()
	x = openTest(t, dir, clk)
	wantWhere(t, x, lfns, "kis/list,sao/bloom", "", "sao/delta", "", "sao/delta")
}

func TestBadUpdates(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	mustReceive(t, x, listMsgs("nso", 1, "1"))
	f, p := newFilter(0.01, "1")
	good := bloomMsgs("sao", 1, f, p)
	hdr := func(mod func(h *rlsv1.UpdateHeader)) []*rlsv1.UpdateRequest {
		msgs := listMsgs("nso", 2, "2")
		mod(msgs[0].GetHeader())
		return msgs
	}
	bloomHdr := func(mod func(h *rlsv1.BloomHeader)) []*rlsv1.UpdateRequest {
		msgs := bloomMsgs("sao", 1, f, p)
		mod(msgs[0].GetHeader().Bloom)
		return msgs
	}
	cases := []struct {
		name string
		msgs []*rlsv1.UpdateRequest
		want string
	}{
		{"empty stream", nil, "empty stream"},
		{"no header", listMsgs("nso", 2, "2")[1:], "not a header"},
		{"no mode", hdr(func(h *rlsv1.UpdateHeader) { h.Mode = 0 }), "header.mode"},
		{"no site", hdr(func(h *rlsv1.UpdateHeader) { h.Site = "" }), "header.site"},
		{"NUL site", hdr(func(h *rlsv1.UpdateHeader) { h.Site = "a\x00b" }), "header.site"},
		{"no endpoint", hdr(func(h *rlsv1.UpdateHeader) { h.Endpoint = "" }), "header.endpoint"},
		{"no validity", hdr(func(h *rlsv1.UpdateHeader) { h.Validity = nil }), "header.validity"},
		{"negative validity", hdr(func(h *rlsv1.UpdateHeader) { h.Validity = durationpb.New(-time.Second) }), "header.validity"},
		{"loop", hdr(func(h *rlsv1.UpdateHeader) { h.Via = []string{"rli-test"} }), "header.via"},
		{"too few names", hdr(func(h *rlsv1.UpdateHeader) { h.Entries = 2 }), "header.entries says 2"},
		{"too many names", hdr(func(h *rlsv1.UpdateHeader) { h.Entries = 0 }), "more names than header.entries"},
		{"empty lfn", listMsgs("nso", 2, "1", ""), "lfns[1]"},
		{"NUL lfn", listMsgs("nso", 2, "a\x00"), "lfns[0]"},
		{"long lfn", listMsgs("nso", 2, strings.Repeat("x", 1025)), "lfns[0]"},
		{"second header", append(listMsgs("nso", 2, "1"), listMsgs("nso", 2, "1")[0]), "second header"},
		{"bloom chunk in a list", append(listMsgs("nso", 2, "1"), good[1]), "Bloom chunk in a list update"},
		{"empty body", append(listMsgs("nso", 2, "1"), &rlsv1.UpdateRequest{}), "no body"},
		{"bloom version", bloomHdr(func(h *rlsv1.BloomHeader) { h.Version = 2 }), "bloom.version 2"},
		{"bloom m", bloomHdr(func(h *rlsv1.BloomHeader) { h.M = 8 }), "bloom.m 8"},
		{"bloom k", bloomHdr(func(h *rlsv1.BloomHeader) { h.K = 0 }), "bloom.k 0"},
		{"bloom k big", bloomHdr(func(h *rlsv1.BloomHeader) { h.K = 99 }), "bloom.k 99"},
		{"bloom missing", hdr(func(h *rlsv1.UpdateHeader) { h.Mode = rlsv1.UpdateMode_UPDATE_MODE_BLOOM; h.Entries = 0 }), "header.bloom: missing"},
		{"bloom short", good[:len(good)-1], "words sent"},
		{"bloom long", append(slices.Clone(good), good[1]), "more than the"},
		{"bloom ragged", append(good[:1:1], &rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Bloom{Bloom: &rlsv1.BloomChunk{Words: []byte{1, 2, 3}}}}), "not a whole number"},
		{"delta twice", deltaMsgs("nso", 1, 2, []string{"5"}, []string{"5"}), "appears twice"},
		{"delta base after gen", deltaMsgs("nso", 3, 2, []string{"5"}, nil), "header.base_generation"},
		// Limits on what a peer can make the index hold or believe.
		{"bloom m over the cap", bloomHdr(func(h *rlsv1.BloomHeader) { h.M = DefaultMaxBloomBits + 64 }),
			"header.bloom.m 2147483712 is more than the 2147483648 bits"},
		{"endpoint without port", hdr(func(h *rlsv1.UpdateHeader) { h.Endpoint = "nso.example.org" }), `header.endpoint: "nso.example.org" is not host:port`},
		{"endpoint without host", hdr(func(h *rlsv1.UpdateHeader) { h.Endpoint = ":7600" }), `header.endpoint: ":7600" has no host`},
		{"endpoint port 0", hdr(func(h *rlsv1.UpdateHeader) { h.Endpoint = "nso:0" }), `"nso:0": port "0"`},
		{"endpoint port too big", hdr(func(h *rlsv1.UpdateHeader) { h.Endpoint = "nso:65536" }), `"nso:65536": port "65536"`},
		{"endpoint port by name", hdr(func(h *rlsv1.UpdateHeader) { h.Endpoint = "nso:grpc" }), `port "grpc"`},
		{"endpoint a URL", hdr(func(h *rlsv1.UpdateHeader) { h.Endpoint = "http://nso:7600/x" }), "header.endpoint"},
		{"via repeated", hdr(func(h *rlsv1.UpdateHeader) { h.Via = []string{"rli-a", "rli-b", "rli-a"} }), `header.via[2]: index "rli-a" already at via[0]`},
		{"bloom all ones", filled(good, 1), "fill ratio 1.000"},
		{"bloom nearly full", filled(good, 0.95), "fill ratio 0.9"},
	}
	before := where(t, x, "1", "2")
	for _, c := range cases {
		_, err := x.Receive(recvFrom(c.msgs))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Receive = %v, want ErrInvalid naming %q", c.name, err, c.want)
		}
	}
	if got := where(t, x, "1", "2"); !slices.Equal(got, before) {
		t.Fatalf("bad updates changed the index: %q, before %q", got, before)
	}
	if _, err := x.Locate([]string{"ok", ""}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "lfns[1]") {
		t.Fatalf("Locate with an empty name = %v", err)
	}
}

// filled returns msgs (a Bloom update) with its filter replaced by one
// whose bits are set with probability fill: what a peer that wants to be
// named for every LFN sends.
func filled(msgs []*rlsv1.UpdateRequest, fill float64) []*rlsv1.UpdateRequest {
	p := msgs[0].GetHeader().GetBloom()
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([]uint64, (p.GetM()+63)/64)
	for b := range p.GetM() {
		if rng.Float64() < fill {
			words[b/64] |= 1 << (b % 64)
		}
	}
	out := msgs[:1:1]
	for c := range slices.Chunk(words, 100) {
		out = append(out, &rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Bloom{Bloom: &rlsv1.BloomChunk{Words: wordBytes(c)}}})
	}
	return out
}

// TestFillRatio checks where the fill check draws its line: a filter
// holding as many names as its geometry is made for (half its bits set)
// passes, and so does one with twice as many; one with four times as many
// matches most names and is refused.
func TestFillRatio(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	m, k := BloomGeometry(2000, 0.01)
	n := int(float64(m) * math.Ln2 / float64(k)) // fill 1/2
	for _, tc := range []struct {
		names int
		ok    bool
	}{{n, true}, {2 * n, true}, {4 * n, false}} {
		f := bloom.New(uint(m), uint(k))
		for i := range tc.names {
			f.AddString(fmt.Sprint(i))
		}
		p := BloomParams{Version: BloomVersion, M: m, K: k, Entries: uint64(tc.names)}
		_, err := x.Receive(recvFrom(bloomMsgs(fmt.Sprint("site", tc.names), 1, f, p)))
		refused := errors.Is(err, ErrInvalid) && strings.Contains(err.Error(), "fill ratio")
		if tc.ok != (err == nil) || (err != nil && !refused) {
			t.Errorf("%d names in a filter for %d (m=%d k=%d, fill %.2f): Receive = %v", tc.names, n, m, k,
				float64(f.BitSet().Count())/float64(m), err)
		}
	}
	if got := len(x.Sites()); got != 2 {
		t.Fatalf("%d sites held, want 2 (the refused filter changed the index)", got)
	}
}

// TestMaxSites checks that an index holding MaxSites sites refuses a new
// one with ErrFull and changes nothing, keeps taking updates of the sites
// it holds, and admits a new site once one expired.
func TestMaxSites(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	x, err := Open(t.TempDir(), &Options{Site: "rli-test", ExpireInterval: time.Hour, NoSync: true, MaxSites: 2,
		Logger: slog.New(slog.DiscardHandler), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	mustReceive(t, x, listMsgs("nso", 1, "1"))
	f, p := newFilter(0.01, "1")
	mustReceive(t, x, bloomMsgs("sao", 1, f, p))
	for _, msgs := range [][]*rlsv1.UpdateRequest{listMsgs("kis", 1, "1"), bloomMsgs("kis", 1, f, p)} {
		_, err := x.Receive(recvFrom(msgs))
		if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), `new site "kis"`) {
			t.Fatalf("a third site: Receive = %v, want ErrFull naming it", err)
		}
	}
	wantWhere(t, x, []string{"1"}, "nso/list,sao/bloom")
	if st := x.Stats(); st.Sites != 2 || st.BloomGroups != 1 {
		t.Fatalf("refused site left state behind: %+v", st)
	}
	// The sites held still update, in full and by delta.
	clk.add(30 * time.Minute)
	mustReceive(t, x, listMsgs("nso", 2, "1", "2"))
	mustReceive(t, x, deltaMsgs("nso", 2, 3, []string{"3"}, nil))
	// sao expires (not yet dropped): its place is free.
	clk.add(45 * time.Minute)
	mustReceive(t, x, listMsgs("kis", 1, "1"))
	wantWhere(t, x, []string{"1", "3"}, "kis/list,nso/list", "nso/delta")
}

func TestWildcard(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	mustReceive(t, x, listMsgs("nso", 1, "hmi.1", "hmi.2", "aia.1"))
	mustReceive(t, x, listMsgs("jsoc", 1, "hmi.1", "hmi.3"))
	mustReceive(t, x, deltaMsgs("jsoc", 1, 2, []string{"hmi.4"}, []string{"hmi.3"}))
	f, p := newFilter(0.01, "hmi.9")
	mustReceive(t, x, bloomMsgs("sao", 1, f, p))
	got, more, unsearched, err := x.Wildcard("hmi.*", 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, m := range got {
		s = append(s, m.LFN+"@"+m.Site+"/"+m.KnownBy.String())
	}
	if want := []string{"hmi.1@nso/list", "hmi.2@nso/list"}; !slices.Equal(s, want) || !more || !slices.Equal(unsearched, []string{"sao"}) {
		t.Fatalf("Wildcard = %q more=%v unsearched=%q, want %q more unsearched [sao]", s, more, unsearched, want)
	}
	got, more, _, _ = x.Wildcard("hmi.*", 3, 10)
	if len(got) != 1 || got[0].LFN != "hmi.4" || got[0].KnownBy != ModeDelta || more {
		t.Fatalf("last page = %+v more=%v", got, more)
	}
	if _, _, _, err := x.Wildcard("a\\", 0, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad pattern: %v", err)
	}
}

// TestConcurrentLocateAndUpdates runs lookups while sites are replaced,
// regrouped and expired; under -race it checks the locking of the
// bit-sliced rows. Names a site sends in every update must never go
// missing.
func TestConcurrentLocateAndUpdates(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	const sites = 80
	stable := func(s int) string { return fmt.Sprintf("stable-%d", s) }
	send := func(s, round int) error {
		lfns := []string{stable(s)}
		for i := range 20 + round%3*200 { // the geometry changes with round
			lfns = append(lfns, fmt.Sprintf("%d-%d-%d", s, round, i))
		}
		f, p := newFilter(0.01, lfns...)
		_, err := x.Receive(recvFrom(bloomMsgs(fmt.Sprint("site", s), uint64(round), f, p)))
		return err
	}
	for s := range sites {
		if err := send(s, 0); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 4)
	for w := range 2 {
		wg.Go(func() {
			for round := 1; round < 8; round++ {
				for s := w; s < sites; s += 2 {
					if err := send(s, round); err != nil {
						errc <- err
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		var probes []string
		for s := range sites {
			probes = append(probes, stable(s))
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := x.Locate(probes)
			if err != nil {
				errc <- err
				return
			}
			for s, cands := range res {
				if !slices.ContainsFunc(cands, func(c Candidate) bool { return c.Site == fmt.Sprint("site", s) }) {
					errc <- fmt.Errorf("%s went missing during an update: %+v", probes[s], cands)
					return
				}
			}
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	deadline := time.After(time.Minute)
	for finished := 0; finished < 2; {
		select {
		case err := <-errc:
			close(stop)
			t.Fatal(err)
		case <-deadline:
			close(stop)
			t.Fatal("updates did not finish within a minute")
		case <-time.After(10 * time.Millisecond):
			// Writers done when only the reader is left running.
			if len(x.Sites()) == sites && allRound(x, 7) {
				finished = 2
			}
		}
	}
	close(stop)
	<-done
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}

func allRound(x *Index, round uint64) bool {
	for _, s := range x.Sites() {
		if s.Generation != round {
			return false
		}
	}
	return true
}

// TestDeltaOverlayLifetime checks that names a delta added are found by
// name, and forgotten when a full update replaces the site's state or the
// site expires.
func TestDeltaOverlayLifetime(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	x := openTest(t, t.TempDir(), clk)
	mustReceive(t, x, listMsgs("nso", 1, "1"))
	f, p := newFilter(0.01, "1")
	mustReceive(t, x, bloomMsgs("sao", 1, f, p))
	mustReceive(t, x, deltaMsgs("nso", 1, 2, []string{"z", "y"}, nil))
	mustReceive(t, x, deltaMsgs("sao", 1, 2, []string{"z"}, nil))
	wantWhere(t, x, []string{"z", "y"}, "nso/delta,sao/delta", "nso/delta")

	mustReceive(t, x, listMsgs("nso", 3, "1")) // a full list without them
	wantWhere(t, x, []string{"z", "y"}, "sao/delta", "")
	clk.add(2 * time.Hour)
	mustReceive(t, x, listMsgs("kis", 1, "1"))
	x.ExpireNow()
	wantWhere(t, x, []string{"z", "1"}, "", "kis/list")
	x.mu.RLock()
	n := len(x.addedBy)
	x.mu.RUnlock()
	if n != 0 {
		t.Fatalf("%d names still indexed by delta after their sites went", n)
	}
}
