package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/solar-archive/rls/internal/rlsdtest"
	"github.com/solar-archive/rls/internal/transfertest"
	"github.com/solar-archive/rls/transfer"
)

// TestFaultTransferKill pulls a fresh unit each round with rlsctl transfer
// pull and, once or twice per round, kills with SIGKILL either the puller
// or the source rlsd (restarted on its data directory, so its digest
// database recovers too) after a random delay; then it runs the pull again
// until it is done. Delays and victims come from the logged seed. Checked
// every round:
//
//   - a watcher that looks at the destination path all along never sees a
//     unit there that differs from the source (no half unit is visible);
//   - the unit placed is the source's: every file's SHA-256, size, mode and
//     mtime, and every directory;
//   - a pull that exits 0 leaves no staging directory behind.
func TestFaultTransferKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills rlsd and rlsctl processes")
	}
	rng := rlsdtest.FaultRand(t)
	rounds := rlsdtest.FaultRounds(t)
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	rlsctl := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsctl")
	root, srcData, dst := t.TempDir(), t.TempDir(), t.TempDir()
	src := startSourceOn(t, rlsd, root, srcData)

	for round := range rounds {
		unit := filepath.Join(root, fmt.Sprintf("D%d", 9000+round))
		size := int64(16+rng.IntN(24)) << 20
		writeUnit(t, unit, size, 4<<20)
		want := transfertest.TreeDigest(t, unit)
		dest := filepath.Join(dst, filepath.Base(unit))
		w := watchDest(t, dest, want)

		// At 32 MiB/s, the pull's bytes take size/32MiB seconds: kills fall
		// in that time, or (when the source hashes first) before it.
		const rate = 32 << 20
		span := time.Duration(size * int64(time.Second) / rate)
		noStaging := func(what string) {
			t.Helper()
			if _, err := os.Lstat(transfer.StagingDir(dest)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("round %d: staging directory left after %s that exited 0: %v", round, what, err)
			}
		}
		pull := func() []string {
			return []string{"-o", "json", "--timeout", "3s", "transfer", "pull", "--from", src.Addr, unit, "--to", dest}
		}
		var log []string
		for range 1 + rng.IntN(2) {
			killPuller := rng.IntN(2) == 0
			delay := rlsdtest.Delay(rng, 0, span)
			// A puller killed just after placing the unit leaves it in
			// place: the next pull is then refused, exit 4.
			_, err := os.Lstat(dest)
			placedBefore := err == nil
			cmd, out, errb := rlsctlCmd(rlsctl, append(pull(), "--limit-rate", fmt.Sprint(rate>>20, "M"))...)
			must(t, cmd.Start())
			time.Sleep(delay) // the fault's random moment, not a wait for a state
			if killPuller {
				_ = cmd.Process.Kill()
				r, err := wait(cmd, out, errb, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if r.code == 0 {
					noStaging("a pull killed too late")
				}
				log = append(log, fmt.Sprintf("puller killed after %v (exit %d)", delay, r.code))
				continue
			}
			src.Kill()
			r, err := wait(cmd, out, errb, time.Minute)
			if err != nil {
				t.Fatalf("pull from a killed source: %v", err)
			}
			if r.code != 0 && r.code != 5 && (r.code != 4 || !placedBefore) {
				t.Fatalf("pull from a source killed after %v: exit %d, want 0 (done before), 5, or 4 if a killed pull had placed the unit already (placed before: %v); stderr %q",
					delay, r.code, placedBefore, r.stderr)
			}
			if r.code == 0 {
				noStaging("a pull whose source was killed too late")
			}
			src = startSourceOn(t, rlsd, root, srcData)
			log = append(log, fmt.Sprintf("source killed after %v (pull exit %d)", delay, r.code))
		}

		_, err := os.Lstat(dest)
		placed := err == nil
		r := runRlsctl(t, rlsctl, pull()...)
		switch {
		case placed && r.code == 4:
			// A killed pull had placed it already.
		case !placed && r.code == 0:
			noStaging("the final pull")
		default:
			t.Fatalf("round %d: final pull (unit placed before: %v): exit %d, stderr %q", round, placed, r.code, r.stderr)
		}
		if err := w.stop(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		sameTree(t, unit, dest)
		t.Logf("round %d: %q, then the pull exits %d", round, log, r.code)
		if t.Failed() {
			return
		}
	}
}

// destWatcher checks the first unit that appears at a pull's destination
// path against the source's digest. It learns of the appearance from
// inotify on the destination's parent (created there, or renamed into
// place), as it happens, rather than by looking again and again.
type destWatcher struct {
	dest string
	f    *os.File // the inotify instance; closing it ends the watch
	done chan struct{}
	err  error // set before done is closed
}

func watchDest(t *testing.T, dest, want string) *destWatcher {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(dest), unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ONLYDIR); err != nil {
		unix.Close(fd)
		t.Fatalf("inotify watch on %s: %v", filepath.Dir(dest), err)
	}
	// A non-blocking descriptor makes a pollable File: Close ends a Read.
	w := &destWatcher{dest: dest, f: os.NewFile(uintptr(fd), "inotify"), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		if err := w.awaitDest(); err != nil {
			return // stopped before the unit appeared
		}
		got, err := transfertest.TreeDigestErr(dest)
		if err != nil || got != want {
			w.err = fmt.Errorf("%s appeared as something other than the whole unit (%v):\nwant\n%s\ngot\n%s", dest, err, want, got)
		}
	}()
	return w
}

// awaitDest reads inotify events until one names the destination (or the
// queue overflowed and the destination exists), or the File is closed.
func (w *destWatcher) awaitDest() error {
	name := filepath.Base(w.dest)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return err
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			size := int(binary.NativeEndian.Uint32(buf[off+12:]))
			evName := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+size]), "\x00")
			off += unix.SizeofInotifyEvent + size
			if evName == name {
				return nil
			}
			if mask&unix.IN_Q_OVERFLOW != 0 {
				if _, err := os.Lstat(w.dest); err == nil {
					return nil
				}
			}
		}
	}
}

// stop ends the watch and returns what it found wrong, if anything.
func (w *destWatcher) stop() error {
	w.f.Close()
	<-w.done
	return w.err
}

// TestDestWatcher checks the watcher itself: a unit renamed into place
// whole passes, one built in place is caught half made.
func TestDestWatcher(t *testing.T) {
	dir := t.TempDir()
	unit := filepath.Join(dir, "staged")
	must(t, os.Mkdir(unit, 0o755))
	must(t, os.WriteFile(filepath.Join(unit, "a.fits"), []byte("whole"), 0o644))
	want := transfertest.TreeDigest(t, unit)

	whole := filepath.Join(dir, "D1")
	w := watchDest(t, whole, want)
	must(t, os.Rename(unit, whole))
	<-w.done // the rename's event
	if err := w.stop(); err != nil {
		t.Errorf("a unit renamed into place: %v", err)
	}

	half := filepath.Join(dir, "D2")
	w = watchDest(t, half, want)
	must(t, os.Mkdir(half, 0o755)) // the file comes after the watcher looked
	<-w.done
	must(t, os.WriteFile(filepath.Join(half, "a.fits"), []byte("whole"), 0o644))
	if err := w.stop(); err == nil {
		t.Error("a unit built in place was not caught")
	}

	w = watchDest(t, filepath.Join(dir, "D3"), want)
	if err := w.stop(); err != nil {
		t.Errorf("stopped before anything appeared: %v", err)
	}
}
