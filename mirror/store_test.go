package mirror

import (
	"bytes"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func openTestStore(t *testing.T, fs vfs.FS) *Store {
	t.Helper()
	s, err := OpenStore("mirror", &StoreOptions{FS: fs, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRecordRoundTrip(t *testing.T) {
	now := time.Unix(1700000000, 123)
	r := &Record{Sunum: 7, State: FAIL, Series: "hmi.M_45s", Lane: LaneUser, Reason: "timed out",
		Attempts: 40, Streak: 3, Source: "nso", Bytes: 1 << 40, Files: 3,
		Enqueued: now, Changed: now.Add(time.Second), Due: now.Add(time.Hour)}
	for i := range 20 {
		r.addAttempt(Attempt{At: now.Add(time.Duration(i)), Source: "jsoc", Err: "x"})
	}
	if len(r.History) != MaxHistory || r.Attempts != 60 {
		t.Fatalf("history %d attempts %d", len(r.History), r.Attempts)
	}
	got, err := decodeRecord(7, r.encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
	b := r.encode(nil)
	for i := range len(b) {
		if _, err := decodeRecord(7, b[:i]); err == nil {
			t.Fatalf("truncated at %d: no error", i)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add((&Record{State: DONE, Series: "aia.lev1"}).encode(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(1, b)
		if err != nil {
			return
		}
		if r2, err := decodeRecord(1, r.encode(nil)); err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func TestAcceptIdempotentAndLanes(t *testing.T) {
	s := openTestStore(t, vfs.NewMem())
	defer s.Close()
	now := time.Unix(1000, 0)
	added, _, err := s.Accept([]Request{{Sunum: 1}, {Sunum: 2, Series: "hmi.x"}, {Sunum: 1}}, now)
	if err != nil || len(added) != 2 {
		t.Fatalf("added %v, %v", added, err)
	}
	added, promoted, err := s.Accept([]Request{{Sunum: 2, Priority: LaneUser}, {Sunum: 1}}, now.Add(time.Second))
	if err != nil || len(added) != 0 || !reflect.DeepEqual(promoted, []uint64{2}) {
		t.Fatalf("added %v promoted %v, %v", added, promoted, err)
	}
	if c := s.Counts(); c[NQUE] != 2 {
		t.Fatalf("counts %v", c)
	}
	user, _, _ := s.due(LaneUser, now.Add(time.Minute), 10, nil)
	bulk, _, _ := s.due(LaneBulk, now.Add(time.Minute), 10, nil)
	if !reflect.DeepEqual(user, []uint64{2}) || !reflect.DeepEqual(bulk, []uint64{1}) {
		t.Fatalf("user %v bulk %v", user, bulk)
	}
	// DONE stays DONE.
	if _, err := s.update([]uint64{1}, now, func(_ uint64, r *Record) (*Record, mutation) {
		r.State = DONE
		return r, write
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Accept([]Request{{Sunum: 1, Priority: LaneUser}}, now); err != nil {
		t.Fatal(err)
	}
	rs, _ := s.Get([]uint64{1})
	if rs[0].State != DONE || rs[0].Lane != LaneBulk {
		t.Fatalf("record %+v", rs[0])
	}
	if bulk, _, _ := s.due(LaneBulk, now.Add(time.Minute), 10, nil); len(bulk) != 0 {
		t.Fatalf("DONE still due: %v", bulk)
	}
}

func TestDueOrderAndWindow(t *testing.T) {
	s := openTestStore(t, vfs.NewMem())
	defer s.Close()
	t0 := time.Unix(1000, 0)
	for i := range 5 {
		if _, _, err := s.Accept([]Request{{Sunum: uint64(10 - i)}}, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	got, next, err := s.due(LaneBulk, t0.Add(2*time.Second), 10, func(n uint64) bool { return n == 9 })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []uint64{10, 8}) || !next.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("due %v next %v", got, next)
	}
}

func TestParseSunum(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{{"0", true}, {"123456789", true}, {"18446744073709551615", true},
		{"", false}, {"012", false}, {"+1", false}, {"-1", false}, {" 1", false}, {"1 ", false},
		{"18446744073709551616", false}, {"1e3", false}} {
		_, err := ParseSunum(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseSunum(%q): %v", c.in, err)
		}
	}
}

// recordSeries reads the series of every record encode writes.
func TestRecordSeries(t *testing.T) {
	for _, r := range []*Record{
		{State: NQUE},
		{State: FAIL, Series: "hmi.M_45s", Attempts: 1 << 30, Streak: 300, Bytes: -5, Files: 1 << 50,
			Enqueued: time.Unix(1, 0), Due: time.Unix(1<<33, 7), Reason: "r", Source: "s"},
	} {
		got, ok := recordSeries(r.encode(nil))
		if !ok || string(got) != r.Series {
			t.Errorf("recordSeries of %+v: %q, %v", r, got, ok)
		}
	}
	if _, ok := recordSeries([]byte{recordVersion, byte(NQUE), 0, 0x80}); ok {
		t.Error("recordSeries of a truncated record: ok")
	}
}

// checkCache fails unless every record the cache holds is the record
// Pebble holds, byte for byte once encoded.
func checkCache(t testing.TB, s *Store) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.mu.Lock()
	cached := maps.Clone(s.cache.m)
	s.cache.mu.Unlock()
	for n, c := range cached {
		r, err := s.get(s.db, n)
		switch {
		case err != nil:
			t.Fatal(err)
		case r == nil:
			t.Fatalf("sunum %d: cached as %v, not in the store", n, c.State)
		case !bytes.Equal(c.encode(nil), r.encode(nil)):
			t.Fatalf("sunum %d: cached %+v, stored %+v", n, c, r)
		case c.State == DONE || c.State == INVD:
			t.Fatalf("sunum %d: final state %v cached", n, c.State)
		}
	}
}

// The record cache, far smaller than the records written, evicts and
// reloads them; what it holds, and what Get and update see, is always
// what Pebble holds. Units in flight are read from Pebble at most once.
func TestStoreCache(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := OpenStore("mirror", &StoreOptions{FS: vfs.NewMem(), NoSync: true, CachedRecords: 8, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Unix(1000, 0)
	var all []uint64
	for n := range uint64(40) {
		all = append(all, n)
	}
	if _, _, err := s.Accept([]Request{{Sunum: 1}, {Sunum: 2}}, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Accept(func() (q []Request) {
		for _, n := range all {
			q = append(q, Request{Sunum: n, Series: "s" + strconv.Itoa(int(n%3))})
		}
		return q
	}(), now); err != nil {
		t.Fatal(err)
	}
	checkCache(t, s)
	if len(s.cache.m) > 8 {
		t.Fatalf("cache holds %d records, want at most 8", len(s.cache.m))
	}
	// Walk every record through states, a few at a time, some removed.
	for step, st := range []State{REDY, BQUED, QUED, FAIL, PNDG, DONE} {
		for i := 0; i < len(all); i += 5 {
			ns := all[i:min(i+5, len(all))]
			if _, err := s.update(ns, now.Add(time.Duration(step)*time.Second), func(n uint64, r *Record) (*Record, mutation) {
				if r == nil {
					return r, keep
				}
				if n%7 == 3 && st == PNDG {
					return nil, remove
				}
				r.State, r.Due, r.Reason = st, now.Add(time.Duration(n)*time.Minute), st.String()
				r.addAttempt(Attempt{At: now, Source: "nso"})
				return r, write
			}); err != nil {
				t.Fatal(err)
			}
			checkCache(t, s)
		}
		got, err := s.Get(all)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range all {
			want, err := s.get(s.db, n)
			if err != nil {
				t.Fatal(err)
			}
			if (got[i] == nil) != (want == nil) || got[i] != nil && !bytes.Equal(got[i].encode(nil), want.encode(nil)) {
				t.Fatalf("step %v: Get(%d) = %+v, stored %+v", st, n, got[i], want)
			}
		}
	}
	// With room for every unit in flight, each is read from Pebble once.
	s2, err := OpenStore("mirror2", &StoreOptions{FS: vfs.NewMem(), NoSync: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, _, err := s2.Accept([]Request{{Sunum: 5}, {Sunum: 6}}, now); err != nil {
		t.Fatal(err)
	}
	before := s2.reads.Load()
	for _, st := range []State{REDY, BQUED, QUED, PNDG, PNDG, PNDG} {
		if _, err := s2.Get([]uint64{5, 6}); err != nil {
			t.Fatal(err)
		}
		if _, err := s2.update([]uint64{5, 6}, now, func(_ uint64, r *Record) (*Record, mutation) {
			r.State = st
			return r, write
		}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s2.reads.Load() - before; n != 0 {
		t.Fatalf("%d reads from Pebble for units in flight, want 0", n)
	}
	checkCache(t, s2)
}
