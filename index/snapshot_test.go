package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// dumpState prints what x holds as Sites and Locate report it. It prints
// exactly as the program that wrote testdata/snapshot-v0 did (before this
// package had its own snapshot encoding), so that the two compare.
func dumpState(t *testing.T, x *Index) string {
	var b strings.Builder
	for _, s := range x.Sites() {
		fmt.Fprintf(&b, "site %s endpoint=%s mode=%v gen=%d full=%d entries=%d deltas=%d updated=%s received=%s expires=%s via=%s bloom=%d/%d/%d/%d incarnation=%x\n",
			s.Site, s.Endpoint, s.Mode, s.Generation, s.FullGeneration, s.Entries, s.Deltas,
			s.Updated.UTC().Format(time.RFC3339Nano), s.Received.UTC().Format(time.RFC3339Nano), s.Expires.UTC().Format(time.RFC3339Nano),
			strings.Join(s.Via, ","), s.Bloom.Version, s.Bloom.M, s.Bloom.K, s.Bloom.Entries, s.Incarnation)
	}
	lfns := []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "hmi.1", "hmi.2", "aia.1", "absent"}
	for i, w := range where(t, x, lfns...) {
		fmt.Fprintf(&b, "locate %s: %s\n", lfns[i], w)
	}
	return b.String()
}

// readFormat returns the snapshot format recorded in dir, -1 if none.
func readFormat(t *testing.T, dir string) int {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, closer, err := db.Get(keyFormat)
	if errors.Is(err, pebble.ErrNotFound) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	f, _ := binary.Uvarint(v)
	return int(f)
}

// TestSnapshotFormat0Loads opens a snapshot that the index wrote before it
// had its own encoding (its site records were the API's rls.v1.SiteInfo:
// testdata/snapshot-v0, written by the program whose output is
// testdata/snapshot-v0.want). Open migrates it, drops the site that has
// expired meanwhile, and holds what that program's index held after a
// reopen; the migrated snapshot reopens alike, and takes updates.
func TestSnapshotFormat0Loads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "index")
	if err := os.CopyFS(dir, os.DirFS("testdata/snapshot-v0")); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/snapshot-v0.want")
	if err != nil {
		t.Fatal(err)
	}
	if f := readFormat(t, dir); f != -1 {
		t.Fatalf("the fixture records format %d; it predates formats", f)
	}
	// The fixture's clock started at 2026-01-01 00:00 UTC; site "old" expired
	// at 00:40.
	clk := &clock{t: time.Date(2026, 1, 1, 1, 10, 0, 0, time.UTC)}
	x := openTest(t, dir, clk)
	if got := dumpState(t, x); got != string(want) {
		t.Fatalf("format 0 snapshot loads as\n%s\nwant (as the index that wrote it loaded it)\n%s", got, want)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if f := readFormat(t, dir); f != formatCurrent {
		t.Fatalf("after Open the snapshot records format %d, want %d", f, formatCurrent)
	}
	x = openTest(t, dir, clk)
	if got := dumpState(t, x); got != string(want) {
		t.Fatalf("migrated snapshot reopens as\n%s\nwant\n%s", got, want)
	}
	inc := []byte(strings.Repeat("\xaa", 16))
	msgs := deltaMsgs("nso", 12, 13, []string{"9"}, nil)
	msgs[0].Header.Incarnation = inc
	mustReceive(t, x, msgs)
	wantWhere(t, x, []string{"9", "4"}, "nso/delta", "nso/delta")
}

// TestSnapshotNewerFormatRefused checks that an index refuses to open a
// snapshot of a format newer than it reads, naming the formats, and
// leaves it as it was.
func TestSnapshotNewerFormatRefused(t *testing.T) {
	dir := t.TempDir()
	x := openTest(t, dir, nil)
	mustReceive(t, x, listMsgs("nso", 1, "1"))
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(keyFormat, binary.AppendUvarint(nil, formatCurrent+1), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(dir, &Options{Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("format %d; this version of rls reads formats up to %d", formatCurrent+1, formatCurrent)) {
		t.Fatalf("Open of a newer snapshot = %v, want a refusal naming the formats", err)
	}
	if f := readFormat(t, dir); f != formatCurrent+1 {
		t.Fatalf("the refused snapshot's format is now %d", f)
	}
}

// TestSiteRecord round-trips site records, at the edges of what a header
// may carry.
func TestSiteRecord(t *testing.T) {
	for _, s := range []*site{
		{name: "nso", endpoint: "nso:7600", mode: ModeList, gen: 12, base: 10, entries: 5, deltas: 1,
			updated: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), received: time.Unix(1e9, 1).UTC(),
			expires: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), via: []string{"a", "b"},
			incarnation: []byte(strings.Repeat("\x01", 16))},
		{name: "sao", endpoint: "[::1]:1", mode: ModeBloom, gen: 1<<64 - 1, base: 1 << 63, entries: 0,
			updated: time.Unix(-1, 5).UTC(), received: time.Unix(0, 0).UTC(), expires: time.Unix(1<<40, 0).UTC(),
			bloom: BloomParams{Version: 1, M: 1 << 34, K: 32, Entries: 1<<64 - 1}},
	} {
		got, err := decodeSite(encodeSite(s))
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Fatalf("round trip of %+v gives %+v", s, got)
		}
	}
	for _, b := range [][]byte{nil, {0}, append(encodeSite(&site{name: "a", mode: ModeList}), 0), encodeSite(&site{name: "a", mode: ModeDelta})} {
		if _, err := decodeSite(b); !errors.Is(err, errCorrupt) {
			t.Errorf("decodeSite(%x) = %v, want errCorrupt", b, err)
		}
	}
}

// FuzzDecodeSite feeds the site record decoders arbitrary bytes: they must
// not panic, and what a decoder accepts must encode to a record that
// decodes to the same site.
func FuzzDecodeSite(f *testing.F) {
	f.Add(false, encodeSite(&site{name: "nso", endpoint: "nso:7600", mode: ModeList, via: []string{"mid"}, incarnation: []byte{1}}))
	f.Add(false, encodeSite(&site{name: "sao", mode: ModeBloom, bloom: BloomParams{Version: 1, M: 1024, K: 7}}))
	f.Add(true, []byte("\x0a\x03nso\x12\x08nso:7600\x18\x01\x20\x0c\x32\x06\x08\x80\x80\x80\x80\x08\x4a\x03mid\x52\x06\x08\x01\x10\x80\x08\x18\x07"))
	f.Fuzz(func(t *testing.T, legacy bool, b []byte) {
		decode := decodeSite
		if legacy {
			decode = decodeLegacySite
		}
		s, err := decode(b)
		if err != nil {
			return
		}
		again, err := decodeSite(encodeSite(s))
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", s, err)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("%+v re-encodes as %+v", s, again)
		}
	})
}
