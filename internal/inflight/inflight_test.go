package inflight

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// chunks returns a next function over cs.
func chunks(cs ...Chunk[int]) func() (Chunk[int], bool) {
	i := 0
	return func() (Chunk[int], bool) {
		if i == len(cs) {
			return Chunk[int]{}, false
		}
		i++
		return cs[i-1], true
	}
}

// TestOrderWithSeveralInFlight sends 4 chunks with k=4 whose sends finish
// in reverse order (each waits until the next one's send finished): done
// still sees them in input order, and all four were in flight at once.
func TestOrderWithSeveralInFlight(t *testing.T) {
	const n = 4
	finished := make([]chan struct{}, n+1)
	for i := range finished {
		finished[i] = make(chan struct{})
	}
	close(finished[n])
	var cs []Chunk[int]
	for i := range n {
		cs = append(cs, Chunk[int]{Items: i, Keys: []string{fmt.Sprint("lfn", i)}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []int
	err := Run(ctx, n, chunks(cs...), func(ctx context.Context, i int) (string, error) {
		select {
		case <-finished[i+1]: // the chunk after this one is done sending
		case <-ctx.Done():
			return "", fmt.Errorf("chunk %d: the chunk after it was never sent concurrently: %w", i, ctx.Err())
		}
		close(finished[i])
		return fmt.Sprint("result ", i), nil
	}, func(i int, r string) error {
		if r != fmt.Sprint("result ", i) {
			t.Errorf("done(%d, %q): result of another chunk", i, r)
		}
		got = append(got, i)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("done order %v, want %v", got, want)
	}
}

// keyTracker fails the test when two sends sharing a key overlap.
type keyTracker struct {
	t       *testing.T
	mu      sync.Mutex
	holders map[string]int
	started map[int]chan struct{}
}

func (k *keyTracker) enter(i int, keys []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, key := range keys {
		if h, ok := k.holders[key]; ok {
			k.t.Errorf("chunk %d sent while chunk %d, which shares key %q, was in flight", i, h, key)
		}
	}
	for _, key := range keys {
		k.holders[key] = i
	}
	close(k.started[i])
}

func (k *keyTracker) leave(keys []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, key := range keys {
		delete(k.holders, key)
	}
}

// TestSharedKeyWaits sends chunks where chunk 1 shares an LFN with chunk 0
// and chunk 3 with chunk 2: chunk 0's send stays in flight until chunk 1's
// send starts (or a while passed), so that a chunk 1 sent too early is
// caught; the chunks without common keys (1 and 2) are in flight together.
func TestSharedKeyWaits(t *testing.T) {
	keys := [][]string{{"a", "b"}, {"c", "b", "c"}, {"d"}, {"e", "d"}}
	kt := &keyTracker{t: t, holders: map[string]int{}, started: map[int]chan struct{}{}}
	var cs []Chunk[int]
	for i, k := range keys {
		cs = append(cs, Chunk[int]{Items: i, Keys: k})
		kt.started[i] = make(chan struct{})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	overlapped12 := false
	var got []int
	err := Run(ctx, 4, chunks(cs...), func(ctx context.Context, i int) (int, error) {
		kt.enter(i, keys[i])
		defer kt.leave(keys[i])
		switch i {
		case 0, 2:
			// The chunk after shares a key: give it the chance to be
			// sent too early.
			select {
			case <-kt.started[i+1]:
			case <-time.After(100 * time.Millisecond):
			}
		case 1:
			select {
			case <-kt.started[2]:
				overlapped12 = true
			case <-ctx.Done():
			}
		}
		return i * 10, nil
	}, func(i, r int) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 10, 20, 30}; !slices.Equal(got, want) {
		t.Fatalf("results %v, want %v", got, want)
	}
	if !overlapped12 {
		t.Fatal("chunks 1 and 2 (no common key) were not in flight together")
	}
}

// TestAtMostK checks that no more than k chunks are in flight, and that k
// are.
func TestAtMostK(t *testing.T) {
	const k, n = 3, 12
	var mu sync.Mutex
	var once sync.Once
	cur, peak := 0, 0
	full := make(chan struct{})
	var cs []Chunk[int]
	for i := range n {
		cs = append(cs, Chunk[int]{Items: i})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := Run(ctx, k, chunks(cs...), func(ctx context.Context, i int) (int, error) {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		if cur == k { // the first k chunks, all in flight
			once.Do(func() { close(full) })
		}
		mu.Unlock()
		if i < k {
			select {
			case <-full:
			case <-ctx.Done():
				return 0, fmt.Errorf("chunk %d: %d chunks never in flight together", i, k)
			}
		}
		mu.Lock()
		cur--
		mu.Unlock()
		return i, nil
	}, func(int, int) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if peak != k {
		t.Fatalf("at most %d chunks in flight, want %d", peak, k)
	}
}

// TestFirstErrorStops: a failed send stops the sending of further chunks;
// chunks before it are delivered, and Run returns the error.
func TestFirstErrorStops(t *testing.T) {
	boom := errors.New("boom")
	var cs []Chunk[int]
	for i := range 100 {
		cs = append(cs, Chunk[int]{Items: i, Keys: []string{"same"}}) // one at a time
	}
	var mu sync.Mutex
	var sent, got []int
	err := Run(context.Background(), 4, chunks(cs...), func(_ context.Context, i int) (int, error) {
		mu.Lock()
		sent = append(sent, i)
		mu.Unlock()
		if i == 2 {
			return 0, boom
		}
		return i, nil
	}, func(i, _ int) error {
		got = append(got, i)
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want %v", err, boom)
	}
	if !slices.Equal(got, []int{0, 1}) || !slices.Equal(sent, []int{0, 1, 2}) {
		t.Fatalf("sent %v, delivered %v; want [0 1 2] and [0 1]", sent, got)
	}
}

// TestDoneErrorStops: done's error is Run's, and stops the sending.
func TestDoneErrorStops(t *testing.T) {
	bad := errors.New("bad result")
	var cs []Chunk[int]
	for i := range 100 {
		cs = append(cs, Chunk[int]{Items: i, Keys: []string{"same"}})
	}
	n := 0
	err := Run(context.Background(), 2, chunks(cs...), func(_ context.Context, i int) (int, error) {
		n++ // one at a time: every chunk shares the key
		return i, nil
	}, func(i, _ int) error {
		if i == 5 {
			return bad
		}
		return nil
	})
	if !errors.Is(err, bad) || n != 6 {
		t.Fatalf("Run = %v after %d sends; want %v after 6", err, n, bad)
	}
}
