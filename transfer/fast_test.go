package transfer_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/solar-archive/rls/transfer"
)

// fastPeer is a Source as a FastManifester, with hooks: it counts its
// calls, can corrupt bytes, and can run a function (or wait) before the
// Manifest call that brings the digests.
type fastPeer struct {
	*transfer.Source
	// corrupt: how many chunks that start a file still get a flipped byte.
	corrupt atomic.Int64
	// onRead runs before each Read call, with its number (from 1) and
	// its ranges.
	onRead func(n int64, ranges []transfer.Range)
	// beforeDigests runs at the start of each Manifest call, with its
	// context.
	beforeDigests func(ctx context.Context)
	// gate, if not nil, holds Manifest calls until it is closed.
	gate chan struct{}

	fastCalls, manifestCalls, reads atomic.Int64
}

func (p *fastPeer) FastManifest(ctx context.Context, pfn string) (*transfer.Manifest, error) {
	p.fastCalls.Add(1)
	return p.Source.FastManifest(ctx, pfn)
}

func (p *fastPeer) Manifest(ctx context.Context, pfn string) (*transfer.Manifest, error) {
	p.manifestCalls.Add(1)
	if p.beforeDigests != nil {
		p.beforeDigests(ctx)
	}
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return p.Source.Manifest(ctx, pfn)
}

func (p *fastPeer) Read(ctx context.Context, ranges []transfer.Range, fn func(int, int64, []byte) error) error {
	n := p.reads.Add(1)
	if p.onRead != nil {
		p.onRead(n, ranges)
	}
	return p.Source.Read(ctx, ranges, func(i int, off int64, b []byte) error {
		if off == 0 && len(b) > 0 && p.corrupt.Load() > 0 && p.corrupt.Add(-1) >= 0 {
			b = bytes.Clone(b)
			b[0] ^= 0xff
		}
		return fn(i, off, b)
	})
}

// fastOpts are the fast-listing tests' pull options. The stall timeout,
// which also bounds the call for the digests, is a guard against a hang:
// a test may hold the digests until every byte is written and synced,
// which on a loaded machine can take seconds, and no test here is about
// stalls.
func fastOpts(p transfer.Peer) transfer.PullOptions {
	return transfer.PullOptions{Sources: []transfer.Peer{p}, RangeSize: 1 << 20, Streams: 2, StallTimeout: time.Minute}
}

// whenJournaled returns o with a hook, and a channel that is closed once
// the pull's Read calls have brought total bytes and the pull has
// written, synced and journaled them: the event the fast-listing tests
// wait for, instead of a sleep.
func whenJournaled(o transfer.PullOptions, total int64) (transfer.PullOptions, <-chan struct{}) {
	all := make(chan struct{})
	var n atomic.Int64
	var once sync.Once
	return transfer.WithFetchedHook(o, func(k int64) {
		if n.Add(k) >= total {
			once.Do(func() { close(all) })
		}
	}), all
}

// await waits for ch, or fails the test if the pull (done) ends first or
// a generous guard against a hang passes.
func await(t *testing.T, ch <-chan struct{}, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-done:
		t.Fatalf("the pull ended before %s", what)
	case <-time.After(time.Minute): // a guard against a hang, not a timing
		t.Fatalf("no %s in a minute", what)
	}
}

// awaitCtx waits for ch in a peer's call: false if ctx ended first.
func awaitCtx(ctx context.Context, ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

func journalOf(t *testing.T, dest string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(transfer.StagingDir(dest), "journal"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// fastUnitSize is the size of the big file of the fast-listing tests'
// unit, 6 MiB and a bit: not a multiple of the range size.
const fastUnitSize = 6<<20 + 77

// fastUnit makes the unit the fast-listing tests pull, under a root of
// its own, and returns the root, the unit and its tree digest.
func fastUnit(t *testing.T) (root, unit, want string) {
	root = t.TempDir()
	unit = makeUnit(t, root, "D1", fastUnitSize)
	return root, unit, treeDigest(t, unit)
}

// unitSize is the bytes of the files under unit, read from the file
// system (not from a Source, which would hash them).
func unitSize(t *testing.T, unit string) int64 {
	t.Helper()
	var n int64
	must(t, filepath.WalkDir(unit, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	}))
	return n
}

// TestPullFastListing: a unit listed without digests is fetched while its
// source hashes it; nothing is verified or placed before the digests come.
func TestPullFastListing(t *testing.T) {
	root, unit, want := fastUnit(t)
	size := unitSize(t, unit)

	t.Run("fresh source: listed, fetched, then verified", func(t *testing.T) {
		p := &fastPeer{Source: newSource(t, root), gate: make(chan struct{})}
		dest := filepath.Join(t.TempDir(), "D1")
		opts, all := whenJournaled(fastOpts(p), size)
		var res *transfer.PullResult
		var err error
		done := make(chan struct{})
		go func() { defer close(done); res, err = transfer.Pull(context.Background(), unit, dest, opts) }()
		// Every byte arrives, and is journaled, while the digests are held
		// back; nothing is journaled as verified, nothing placed.
		await(t, all, done, "every byte journaled")
		if j := journalOf(t, dest); strings.Contains(j, `"verified"`) {
			t.Errorf("journal records files verified before their digests came:\n%s", j)
		}
		if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unit placed before its digests came: %v", err)
		}
		close(p.gate)
		<-done
		if err != nil {
			t.Fatal(err)
		}
		if got := treeDigest(t, dest); got != want {
			t.Errorf("pulled tree differs:\n got %s\nwant %s", got, want)
		}
		if p.fastCalls.Load() != 1 || p.manifestCalls.Load() != 1 || res.Fetched != res.Bytes {
			t.Errorf("%d fast listings, %d manifests, result %+v; want one each, every byte once", p.fastCalls.Load(), p.manifestCalls.Load(), res)
		}
	})

	t.Run("ManifestFirst waits for the digests", func(t *testing.T) {
		p := &fastPeer{Source: newSource(t, root)}
		opts := fastOpts(p)
		opts.ManifestFirst = true
		if _, err := transfer.Pull(context.Background(), unit, filepath.Join(t.TempDir(), "D1"), opts); err != nil {
			t.Fatal(err)
		}
		if p.fastCalls.Load() != 0 || p.manifestCalls.Load() != 1 {
			t.Errorf("%d fast listings, %d manifests; want 0 and 1", p.fastCalls.Load(), p.manifestCalls.Load())
		}
	})
}

// TestPullFastCorrupt: bytes of a unit listed fast are still checked
// against the digests that come later.
func TestPullFastCorrupt(t *testing.T) {
	root, unit, want := fastUnit(t)

	t.Run("bytes corrupted in transit are fetched again", func(t *testing.T) {
		p := &fastPeer{Source: newSource(t, root)}
		p.corrupt.Store(3)
		dest := filepath.Join(t.TempDir(), "D1")
		res, err := transfer.Pull(context.Background(), unit, dest, fastOpts(p))
		if err != nil {
			t.Fatal(err)
		}
		if got := treeDigest(t, dest); got != want {
			t.Errorf("pulled tree differs:\n got %s\nwant %s", got, want)
		}
		if res.Refetched == 0 {
			t.Errorf("result %+v: nothing fetched again after 3 corrupt chunks", res)
		}
	})

	t.Run("a source that always corrupts: nothing placed", func(t *testing.T) {
		p := &fastPeer{Source: newSource(t, root)}
		p.corrupt.Store(1 << 40)
		dest := filepath.Join(t.TempDir(), "D1")
		_, err := transfer.Pull(context.Background(), unit, dest, fastOpts(p))
		if !errors.Is(err, transfer.ErrCorrupt) {
			t.Errorf("pull from a corrupting source: %v, want ErrCorrupt", err)
		}
		if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("corrupt unit placed: %v", err)
		}
		if j := journalOf(t, dest); strings.Contains(j, `"verified","path":"a/big.fits"`) {
			t.Errorf("journal records the corrupt file verified:\n%s", j)
		}
	})
}

// sneakyRewrite rewrites a file in place, same size, mtime put back: only
// its ctime tells. It may run in a peer's goroutine: it reports failures
// with t.Error.
func sneakyRewrite(t *testing.T, unit, rel string) {
	t.Helper()
	name := filepath.Join(unit, rel)
	fi, err := os.Stat(name)
	if err == nil {
		err = os.WriteFile(name, randBytes(t, int(fi.Size())), 0o644)
	}
	if err == nil {
		err = os.Chtimes(name, fi.ModTime(), fi.ModTime())
	}
	var after fs.FileInfo
	if err == nil {
		after, err = os.Stat(name)
	}
	switch {
	case err != nil:
		t.Errorf("rewriting %s: %v", rel, err)
	case ctimeOf(after) == ctimeOf(fi):
		// A file system with coarse timestamps, and the rewrite in the
		// tick of the last change: no stat can see it.
		t.Errorf("rewriting %s left its ctime as it was: the change is invisible to stat", rel)
	}
}

func ctimeOf(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctim.Nano()
	}
	return 0
}

// TestPullFastChanged: a unit that changes at the source between its
// listing and its digests is not placed (ErrChanged), and a pull after
// the change brings the new version whole.
func TestPullFastChanged(t *testing.T) {
	t.Run("file changed at the source mid-pull", func(t *testing.T) {
		root := t.TempDir()
		unit := makeUnit(t, root, "D2", 6<<20)
		p := &fastPeer{Source: newSource(t, root)}
		// The big file is rewritten as the second Read of its pieces
		// starts: that Read finds the file another version than the one
		// listed, whatever else the pull did meanwhile. (The second Read
		// of the pull may be of the small files instead, and be late; if
		// the rewrite came after every piece was read and the digests of
		// the version listed had come, the pull rightly placed that
		// version.)
		var bigReads atomic.Int64
		p.onRead = func(_ int64, ranges []transfer.Range) {
			if slices.ContainsFunc(ranges, func(r transfer.Range) bool { return r.Path == "a/big.fits" }) && bigReads.Add(1) == 2 {
				sneakyRewrite(t, unit, "a/big.fits")
			}
		}
		dest := filepath.Join(t.TempDir(), "D2")
		_, err := transfer.Pull(context.Background(), unit, dest, fastOpts(p))
		if !errors.Is(err, transfer.ErrChanged) {
			t.Errorf("pull of a unit changed mid-pull: %v, want ErrChanged", err)
		}
		if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unit placed though it changed mid-pull: %v", err)
		}
		// Pulled again, it is the new version, whole.
		if _, err := transfer.Pull(context.Background(), unit, dest, fastOpts(p)); err != nil {
			t.Fatal(err)
		}
		if got, want := treeDigest(t, dest), treeDigest(t, unit); got != want {
			t.Errorf("pull after the change differs:\n got %s\nwant %s", got, want)
		}
	})

	t.Run("file changed after its bytes were sent, before the digests", func(t *testing.T) {
		root := t.TempDir()
		unit := makeUnit(t, root, "D3", 3<<20)
		p := &fastPeer{Source: newSource(t, root)}
		opts, all := whenJournaled(fastOpts(p), unitSize(t, unit))
		p.beforeDigests = func(ctx context.Context) {
			// Once every byte is sent and journaled, change a small file.
			if awaitCtx(ctx, all) {
				sneakyRewrite(t, unit, "small/f007")
			}
		}
		dest := filepath.Join(t.TempDir(), "D3")
		_, err := transfer.Pull(context.Background(), unit, dest, opts)
		if !errors.Is(err, transfer.ErrChanged) || !strings.Contains(err.Error(), "small/f007") {
			t.Errorf("pull of a unit changed before its digests: %v, want ErrChanged naming small/f007", err)
		}
		if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unit placed though it changed: %v", err)
		}
	})
}

// TestPullFastResume: a pull that died with every byte written and none
// verified (the digests had not come) is resumed without fetching again.
func TestPullFastResume(t *testing.T) {
	root, unit, want := fastUnit(t)
	p := &fastPeer{Source: newSource(t, root), gate: make(chan struct{})}
	dest := filepath.Join(t.TempDir(), "D1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts, all := whenJournaled(fastOpts(p), unitSize(t, unit))
	var killed atomic.Bool
	p.beforeDigests = func(mctx context.Context) {
		if awaitCtx(mctx, all) {
			killed.Store(true)
			cancel() // the puller dies with every byte written and journaled, none verified
		}
	}
	if _, err := transfer.Pull(ctx, unit, dest, opts); err == nil || !killed.Load() {
		t.Fatalf("pull to be cancelled once every byte was journaled: %v, cancelled %v", err, killed.Load())
	}
	if j := journalOf(t, dest); strings.Contains(j, `"verified"`) || !strings.Contains(j, `"range"`) {
		t.Fatalf("journal of the dead pull:\n%s", j)
	}
	again := &fastPeer{Source: p.Source}
	sent := p.Source.Stats().BytesSent
	res, err := transfer.Pull(context.Background(), unit, dest, fastOpts(again))
	if err != nil {
		t.Fatal(err)
	}
	if got := treeDigest(t, dest); got != want {
		t.Errorf("resumed tree differs:\n got %s\nwant %s", got, want)
	}
	if res.Resumed != res.Bytes || res.Fetched != 0 || p.Source.Stats().BytesSent != sent {
		t.Errorf("resumed pull %+v, source sent %d more: want everything resumed", res, p.Source.Stats().BytesSent-sent)
	}
}

// TestFastManifest: the hashing a fast listing starts is the one the
// manifest made after uses; each byte is hashed once. (What the listings
// hold, and reads of a listed version, are in the Peer suite.)
func TestFastManifest(t *testing.T) {
	root := t.TempDir()
	unit := makeUnit(t, root, "D1", 2<<20)
	src := newSource(t, root)
	ctx := context.Background()
	if _, err := src.FastManifest(ctx, unit); err != nil {
		t.Fatal(err)
	}
	full, err := src.Manifest(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if st := src.Stats(); st.BytesHashed != full.TotalBytes() {
		t.Errorf("hashed %d bytes for a unit of %d", st.BytesHashed, full.TotalBytes())
	}
}

func TestSourceDigestDB(t *testing.T) {
	root := t.TempDir()
	unit := makeUnit(t, root, "D1", 2<<20)
	db := filepath.Join(t.TempDir(), "digests")
	ctx := context.Background()
	open := func() *transfer.Source {
		s, err := transfer.NewSource([]string{root}, &transfer.SourceOptions{DigestDB: db})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	m1, err := s.Manifest(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.BytesHashed != m1.TotalBytes() || st.DigestsLoaded != 0 {
		t.Errorf("first manifest: %+v; want every byte hashed, nothing loaded", st)
	}
	must(t, s.Close())

	// Restarted: no byte hashed, every digest from the database.
	s = open()
	m2, err := s.Manifest(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.BytesHashed != 0 || st.FilesHashed != 0 || st.DigestsLoaded != int64(m1.Files()) {
		t.Errorf("manifest after a restart: %+v; want nothing hashed, %d digests loaded", st, m1.Files())
	}
	if !sameManifest(m1, m2) {
		t.Error("manifest after a restart differs")
	}
	must(t, s.Close())

	// Changed while the source was down (same size, mtime put back): that
	// file alone is hashed again.
	name := filepath.Join(unit, "small/f003")
	fi, err := os.Stat(name)
	must(t, err)
	must(t, os.WriteFile(name, randBytes(t, int(fi.Size())), 0o644))
	must(t, os.Chtimes(name, fi.ModTime(), fi.ModTime()))
	s = open()
	defer s.Close()
	m3, err := s.Manifest(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.FilesHashed != 1 || st.BytesHashed != fi.Size() {
		t.Errorf("after one change: %+v; want that one file hashed", st)
	}
	for i, e := range m3.Entries {
		if changed := e.Path == "small/f003"; (e.SHA256 != m1.Entries[i].SHA256) != changed {
			t.Errorf("%s: digest %s, was %s", e.Path, e.SHA256, m1.Entries[i].SHA256)
		}
	}
	// The pull from it is right, of course.
	dest := filepath.Join(t.TempDir(), "D1")
	if _, err := transfer.Pull(ctx, unit, dest, transfer.PullOptions{Sources: []transfer.Peer{s}, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	if got, want := treeDigest(t, dest), treeDigest(t, unit); got != want {
		t.Errorf("pulled tree differs:\n got %s\nwant %s", got, want)
	}
}

func sameManifest(a, b *transfer.Manifest) bool {
	if len(a.Entries) != len(b.Entries) {
		return false
	}
	for i := range a.Entries {
		x, y := a.Entries[i], b.Entries[i]
		if x.Path != y.Path || x.SHA256 != y.SHA256 || x.Version != y.Version || x.Size != y.Size || !x.MTime.Equal(y.MTime) {
			return false
		}
	}
	return true
}
