package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

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
		w := watchDest(dest, want)

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

// destWatcher looks at a pull's destination path until stopped and checks
// the first unit it sees there against the source's digest.
type destWatcher struct {
	done chan struct{}
	wg   sync.WaitGroup
	err  error
}

func watchDest(dest, want string) *destWatcher {
	w := &destWatcher{done: make(chan struct{})}
	w.wg.Go(func() {
		for {
			select {
			case <-w.done:
				return
			default:
			}
			if _, err := os.Lstat(dest); err == nil {
				got, err := transfertest.TreeDigestErr(dest)
				if err != nil || got != want {
					w.err = fmt.Errorf("%s appeared as something other than the whole unit (%v):\nwant\n%s\ngot\n%s", dest, err, want, got)
				}
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	return w
}

// stop ends the watch and returns what it found wrong, if anything.
func (w *destWatcher) stop() error {
	close(w.done)
	w.wg.Wait()
	return w.err
}
