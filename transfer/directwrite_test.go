package transfer

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDirectWriter writes a file through a directWriter in uneven pieces:
// random blocks, blocks of zeros (which stay holes) and an unaligned
// tail, with a Drain in the middle, and reads it back.
func TestDirectWriter(t *testing.T) {
	const size = 5*directBlock + 3*directAlign + 123
	want := make([]byte, size)
	for _, blk := range []int{0, 2, 5} { // blocks 1, 3 and 4 stay zero
		end := min((blk+1)*directBlock, size)
		if _, err := rand.Read(want[blk*directBlock : end]); err != nil {
			t.Fatal(err)
		}
	}
	name := filepath.Join(t.TempDir(), "f")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	w := newDirectWriter(f, 0)
	if w == nil {
		t.Skip("the temp dir's file system refuses O_DIRECT")
	}
	off, drained := 0, false
	for i := 0; off < size; i++ {
		n := min(1<<20+i*4099, size-off) // pieces that straddle blocks
		if err := w.Write(want[off:off+n], int64(off)); err != nil {
			t.Fatal(err)
		}
		off += n
		if !drained && off > 2*directBlock {
			end, err := w.Drain()
			if err != nil || end != 2*directBlock {
				t.Fatalf("Drain after %d bytes: %d, %v; want %d", off, end, err, 2*directBlock)
			}
			drained = true
		}
	}
	if err := w.Write([]byte{1}, 7); err == nil {
		t.Error("a write out of order was taken")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file differs from what was written (%d bytes, want %d)", len(got), len(want))
	}
	var st syscall.Stat_t
	if err := syscall.Stat(name, &st); err != nil {
		t.Fatal(err)
	}
	if alloc := st.Blocks * 512; alloc > 3*directBlock+directBlock/2 {
		t.Errorf("%d bytes allocated: the zero blocks were written, not left as holes", alloc)
	}
	// O_DIRECT is off again: an unaligned write through f works.
	if _, err := f.WriteAt([]byte("x"), 3); err != nil {
		t.Errorf("unaligned write after Close: %v", err)
	}
}
