package transfer_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/solar-archive/rls/transfer"
)

// rangeLog records every Range a Peer is asked for, and can hold a Read
// after some bytes until released.
type rangeLog struct {
	transfer.Peer
	mu     sync.Mutex
	ranges []transfer.Range
	sent   int64
	holdAt int64         // hold the Read that reaches this many bytes (0: never)
	held   chan struct{} // closed when a Read is held
	once   sync.Once
}

func (l *rangeLog) Read(ctx context.Context, ranges []transfer.Range, fn func(int, int64, []byte) error) error {
	l.mu.Lock()
	l.ranges = append(l.ranges, ranges...)
	l.mu.Unlock()
	return l.Peer.Read(ctx, ranges, func(i int, off int64, p []byte) error {
		l.mu.Lock()
		l.sent += int64(len(p))
		hold := l.holdAt > 0 && l.sent >= l.holdAt
		l.mu.Unlock()
		if err := fn(i, off, p); err != nil {
			return err
		}
		if hold {
			l.once.Do(func() { close(l.held) })
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
}

// TestPullWholeFiles: from one source, with the default RangeSize, a
// large file is asked for whole and arrives intact, holes kept; a stream
// held in the middle of it has already checkpointed (synced and journaled)
// what arrived, and a new pull resumes from there.
func TestPullWholeFiles(t *testing.T) {
	root := t.TempDir()
	const big = 40<<20 + 5000
	unit := makeUnit(t, root, "D300", big)
	src := newSource(t, root)

	t.Run("whole", func(t *testing.T) {
		l := &rangeLog{Peer: src}
		dest := filepath.Join(t.TempDir(), "D300")
		res, err := transfer.Pull(context.Background(), unit, dest, transfer.PullOptions{Sources: []transfer.Peer{l}})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := treeDigest(t, dest), treeDigest(t, unit); got != want {
			t.Errorf("pulled tree differs:\n got %s\nwant %s", got, want)
		}
		if res.Fetched != res.Bytes {
			t.Errorf("result %+v", res)
		}
		for _, r := range l.ranges {
			if r.Path == "a/big.fits" && (r.Offset != 0 || r.Length != big) {
				t.Errorf("asked for bytes %d+%d of the big file, want it whole", r.Offset, r.Length)
			}
		}
	})

	t.Run("corrupted in transit", func(t *testing.T) {
		// A fresh source (the digests come from its hashing as it reads)
		// and every file's first chunk flipped on the way, once: each file
		// fails its digest (the big one as it arrives, through the direct
		// writer), is fetched again, and the unit is right.
		p := &fastPeer{Source: newSource(t, root)}
		p.corrupt.Store(43) // the unit's non-empty files
		dest := filepath.Join(t.TempDir(), "D300")
		res, err := transfer.Pull(context.Background(), unit, dest, transfer.PullOptions{Sources: []transfer.Peer{p}})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := treeDigest(t, dest), treeDigest(t, unit); got != want {
			t.Errorf("pulled tree differs:\n got %s\nwant %s", got, want)
		}
		if res.Refetched < big || p.corrupt.Load() > 0 {
			t.Errorf("refetched %d bytes, %d corruptions left; want every file corrupted once and the big one (%d bytes) fetched again",
				res.Refetched, p.corrupt.Load(), big)
		}
	})

	t.Run("checkpoint and resume", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "D300")
		l := &rangeLog{Peer: src, holdAt: 24 << 20, held: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, err := transfer.Pull(ctx, unit, dest, transfer.PullOptions{
				Sources: []transfer.Peer{l}, CheckpointBytes: 8 << 20, Streams: 1,
			})
			errc <- err
		}()
		select {
		case <-l.held:
		case err := <-errc:
			t.Fatalf("pull ended before the hold: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("the source never got 24 MiB into the pull")
		}
		// The stream is still open in the middle of the big file: what the
		// journal holds of it came from checkpoints.
		j := journalOf(t, dest)
		if !strings.Contains(j, `"op":"range","path":"a/big.fits","len":16777216`) {
			t.Errorf("journal while the big file arrives:\n%s\nwant a checkpoint of its first 16 MiB", j)
		}
		cancel()
		if err := <-errc; err == nil {
			t.Fatal("a pull cancelled in the middle of the big file succeeded")
		}
		res, err := transfer.Pull(context.Background(), unit, dest, transfer.PullOptions{Sources: []transfer.Peer{src}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Resumed < 16<<20 || res.Fetched+res.Resumed != res.Bytes {
			t.Errorf("resumed pull %+v: want at least 16 MiB resumed", res)
		}
		if got, want := treeDigest(t, dest), treeDigest(t, unit); got != want {
			t.Errorf("resumed tree differs:\n got %s\nwant %s", got, want)
		}
		if _, err := os.Stat(transfer.StagingDir(dest)); err == nil {
			t.Error("staging left behind")
		}
	})
}
