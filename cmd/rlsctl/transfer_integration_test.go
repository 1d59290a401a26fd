package main

// Integration tests of the transfer engine with real processes: rlsd
// --roles transfer serving export roots on loopback, rlsctl transfer pull
// as a subprocess (killed with SIGKILL in some cases), sources killed
// mid-pull, corruption and traversal attempts, and curl over HTTP.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/internal/rlsdtest"
	"github.com/solar-archive/rls/internal/transfertest"
	"github.com/solar-archive/rls/transfer"
)

type sourceProc struct {
	*rlsdtest.Proc
	http string // HTTP listener address
}

var httpAddrRE = regexp.MustCompile(`rlsd serving.*http_addr=([0-9.]+:[0-9]+)`)

func startSource(t *testing.T, rlsd, root string) sourceProc {
	t.Helper()
	return startSourceOn(t, rlsd, root, t.TempDir())
}

// startSourceOn starts a source with data directory data.
func startSourceOn(t *testing.T, rlsd, root, data string) sourceProc {
	t.Helper()
	p := rlsdtest.Start(t, rlsd, "rls.v1.Transfer", "--site", "src", "--data", data,
		"--roles", "transfer", "--export-root", root, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	m := httpAddrRE.FindStringSubmatch(p.Log())
	if m == nil {
		t.Fatalf("no http_addr in rlsd's log:\n%s", p.Log())
	}
	return sourceProc{p, m[1]}
}

// bytesSent reads rls_transfer_bytes_sent_total from the daemon's /metrics.
func (d sourceProc) bytesSent(t *testing.T) int64 {
	t.Helper()
	return d.metric(t, "rls_transfer_bytes_sent_total")
}

// metric reads a counter from the daemon's /metrics.
func (d sourceProc) metric(t *testing.T, name string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + d.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /metrics:\n%s", name, b)
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return int64(f)
}

// writeUnit makes a unit: nested directories, an empty directory, empty
// files, small files, and one file of bigSize bytes with 1 MiB of random
// bytes every stride bytes and holes between (sparse-ish: little disk, all
// bytes still travel and are hashed).
func writeUnit(t *testing.T, dir string, bigSize, stride int64) {
	t.Helper()
	for _, d := range []string{"a/b/c", "empty-dir", "small"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{"empty": nil, "a/b/empty": nil, "a/b/c/deep.txt": []byte("deep\n")}
	for i := range 30 {
		files[fmt.Sprintf("small/f%02d", i)] = random(t, 1000+i*97)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(dir, "a/big.fits"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(bigSize); err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < bigSize; off += stride {
		if _, err := f.WriteAt(random(t, int(min(1<<20, bigSize-off))), off); err != nil {
			t.Fatal(err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sameTree fails the test unless the trees hold the same paths, types,
// modes, sizes, file mtimes and contents.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	if w, g := transfertest.TreeDigest(t, want), transfertest.TreeDigest(t, got); w != g {
		t.Errorf("pulled unit %s differs from %s:\nwant\n%s\ngot\n%s", got, want, w, g)
	}
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) pull(t *testing.T) pullResult {
	t.Helper()
	var pr pullResult
	if err := json.Unmarshal([]byte(r.stdout), &pr); err != nil {
		t.Fatalf("pull output %q: %v (stderr %q)", r.stdout, err, r.stderr)
	}
	return pr
}

// rlsctlCmd is rlsctl run as a subprocess.
func rlsctlCmd(rlsctl string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.Command(rlsctl, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	return cmd, &out, &errb
}

func runRlsctl(t *testing.T, rlsctl string, args ...string) cliResult {
	t.Helper()
	cmd, out, errb := rlsctlCmd(rlsctl, args...)
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("rlsctl %q: %v", args, err)
	}
	return cliResult{cmd.ProcessState.ExitCode(), out.String(), errb.String()}
}

func wait(cmd *exec.Cmd, out, errb *bytes.Buffer, timeout time.Duration) (cliResult, error) {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // the exit status is in ProcessState
	select {
	case <-done:
		return cliResult{cmd.ProcessState.ExitCode(), out.String(), errb.String()}, nil
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return cliResult{}, fmt.Errorf("rlsctl still running after %v; stderr %q", timeout, errb.String())
	}
}

// waitJournal waits until a pull into dest has journaled at least n ranges
// of a/big.fits (small files, written whole before their digests are
// known, are journaled as ranges too).
func waitJournal(t *testing.T, dest string, n int, exited func() bool) {
	t.Helper()
	journal := filepath.Join(transfer.StagingDir(dest), "journal")
	rlsdtest.Eventually(t, 30*time.Second, func() error {
		b, _ := os.ReadFile(journal)
		if got := bytes.Count(b, []byte(`"op":"range","path":"a/big.fits"`)); got < n {
			if exited() {
				t.Fatalf("the pull ended before journaling %d ranges", n)
			}
			return fmt.Errorf("the pull journaled %d of %d ranges", got, n)
		}
		return nil
	})
}

func TestTransferIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts rlsd")
	}
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	rlsctl := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsctl")
	root := t.TempDir()
	src := startSource(t, rlsd, root)
	dst := t.TempDir()

	t.Run("pull with nested dirs, empty files and a 1 GiB file", func(t *testing.T) {
		unit := filepath.Join(root, "D1000")
		writeUnit(t, unit, 1<<30, 256<<20)
		dest := filepath.Join(dst, "D1000")
		before := src.bytesSent(t)
		r := runRlsctl(t, rlsctl, "-o", "json", "transfer", "pull", "--from", src.Addr, unit, "--to", dest)
		if r.code != 0 {
			t.Fatalf("pull: exit %d, stderr %q", r.code, r.stderr)
		}
		pr := r.pull(t)
		if pr.Bytes < 1<<30 || pr.FetchedBytes != pr.Bytes || pr.ResumedBytes != 0 || pr.Files != 34 || pr.Dirs != 5 {
			t.Errorf("pull result %+v", pr)
		}
		if sent := src.bytesSent(t) - before; sent != pr.Bytes {
			t.Errorf("source sent %d bytes for a unit of %d", sent, pr.Bytes)
		}
		sameTree(t, unit, dest)
		if _, err := os.Stat(filepath.Join(dst, ".rls-staging")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("staging left behind: %v", err)
		}
		// Pulling over it again is refused: exit 4.
		if r := runRlsctl(t, rlsctl, "transfer", "pull", "--from", src.Addr, unit, "--to", dest); r.code != 4 {
			t.Errorf("pull over an existing unit: exit %d, stderr %q", r.code, r.stderr)
		}
		t.Run("curl", func(t *testing.T) {
			testCurl(t, src, unit)
		})
	})

	for _, c := range []struct {
		name, unit string
		size       int64
		flags      []string
		limit      string // --limit-rate of the run that is killed
		ranges     int    // journaled ranges of the big file to wait for
		resumed    int64  // at least this much resumed
	}{
		// Ranges of 4 MiB, each journaled when it is in.
		{"resume after kill -9 of the puller", "D2000", 96 << 20, []string{"--range-size", "4", "--streams", "2"}, "24M", 4, 16 << 20},
		// One source and the default --range-size: the big file travels
		// whole in one stream, and checkpoints every 64 MiB let a killed
		// pull resume in the middle of it.
		{"resume after kill -9 of the puller, file arriving whole", "D2100", 200 << 20, nil, "64M", 1, transfer.DefaultCheckpointBytes},
	} {
		t.Run(c.name, func(t *testing.T) {
			unit := filepath.Join(root, c.unit)
			writeUnit(t, unit, c.size, 4<<20)
			dest := filepath.Join(dst, c.unit)
			args := append([]string{"-o", "json", "transfer", "pull", "--from", src.Addr, unit, "--to", dest}, c.flags...)
			cmd, _, errb := rlsctlCmd(rlsctl, append(args, "--limit-rate", c.limit)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			waitJournal(t, dest, c.ranges, func() bool {
				select {
				case <-exited:
					return true
				default:
					return false
				}
			})
			must(t, cmd.Process.Signal(syscall.SIGKILL))
			<-exited
			if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("killed pull left a unit at %s: %v (stderr %q)", dest, err, errb.String())
			}
			before := src.bytesSent(t)
			r := runRlsctl(t, rlsctl, args...)
			if r.code != 0 {
				t.Fatalf("resumed pull: exit %d, stderr %q", r.code, r.stderr)
			}
			pr := r.pull(t)
			sent := src.bytesSent(t) - before
			if pr.ResumedBytes < c.resumed || pr.FetchedBytes != pr.Bytes-pr.ResumedBytes || sent != pr.FetchedBytes {
				t.Errorf("resumed pull %+v; source sent %d: want at least %d bytes resumed and only the rest sent", pr, sent, c.resumed)
			}
			sameTree(t, unit, dest)
		})
	}

	t.Run("kill -9 of the only source, restart, resume", func(t *testing.T) {
		unit := filepath.Join(root, "D3000")
		writeUnit(t, unit, 96<<20, 4<<20)
		dest := filepath.Join(dst, "D3000")
		lone := startSource(t, rlsd, root)
		cmd, out, errb := rlsctlCmd(rlsctl, "-o", "json", "--timeout", "3s", "transfer", "pull", "--from", lone.Addr, unit,
			"--to", dest, "--range-size", "4", "--streams", "2", "--limit-rate", "24M")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitJournal(t, dest, 3, func() bool { return false })
		lone.Kill()
		r, err := wait(cmd, out, errb, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 5 || !strings.Contains(r.stderr, "unavailable") {
			t.Errorf("pull from a killed source: exit %d, stderr %q; want 5, unavailable", r.code, r.stderr)
		}
		if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("failed pull left a unit: %v", err)
		}
		again := startSource(t, rlsd, root)
		r = runRlsctl(t, rlsctl, "-o", "json", "transfer", "pull", "--from", again.Addr, unit, "--to", dest)
		if r.code != 0 {
			t.Fatalf("resumed pull: exit %d, stderr %q", r.code, r.stderr)
		}
		if pr := r.pull(t); pr.ResumedBytes == 0 || again.bytesSent(t) != pr.FetchedBytes || pr.FetchedBytes+pr.ResumedBytes != pr.Bytes {
			t.Errorf("resumed pull %+v, restarted source sent %d", pr, again.bytesSent(t))
		}
		sameTree(t, unit, dest)
	})

	t.Run("two sources, one killed mid-pull", func(t *testing.T) {
		unit := filepath.Join(root, "D4000")
		writeUnit(t, unit, 96<<20, 4<<20)
		dest := filepath.Join(dst, "D4000")
		victim := startSource(t, rlsd, root)
		cmd, out, errb := rlsctlCmd(rlsctl, "-o", "json", "transfer", "pull", "--from", victim.Addr+","+src.Addr, unit,
			"--to", dest, "--range-size", "4", "--streams", "2", "--limit-rate", "24M")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitJournal(t, dest, 4, func() bool { return false })
		victim.Kill()
		r, err := wait(cmd, out, errb, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 0 {
			t.Fatalf("pull with one source killed: exit %d, stderr %q", r.code, r.stderr)
		}
		pr := r.pull(t)
		if len(pr.Sources) != 2 || !pr.Sources[0].Dropped || pr.Sources[0].Bytes == 0 || pr.Sources[1].Dropped || pr.Sources[1].Bytes == 0 {
			t.Errorf("sources %+v: want the killed one dropped after sending some, the other used", pr.Sources)
		}
		sameTree(t, unit, dest)
	})

	t.Run("corruption at the source after the manifest", func(t *testing.T) {
		unit := filepath.Join(root, "D5000")
		writeUnit(t, unit, 48<<20, 4<<20)
		big := filepath.Join(unit, "a/big.fits")
		dest := filepath.Join(dst, "D5000")
		// Manifest-first: the source serves by its cached digest, which
		// the flip does not change. (From a listing without digests, the
		// flip's ctime makes the source refuse: see the next test.)
		cmd, out, errb := rlsctlCmd(rlsctl, "transfer", "pull", "--from", src.Addr, unit, "--manifest-first",
			"--to", dest, "--range-size", "4", "--streams", "2", "--limit-rate", "24M")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Once the pull has its manifest and is under way, flip a byte near
		// the end of the big file, keeping its size and mtime: bit rot that
		// the source cannot see without hashing again.
		waitJournal(t, dest, 2, func() bool { return false })
		fi, _ := os.Stat(big)
		f, err := os.OpenFile(big, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		_, err = f.ReadAt(b, fi.Size()-10)
		must(t, err)
		b[0] ^= 0x55
		_, err = f.WriteAt(b, fi.Size()-10)
		must(t, err)
		must(t, f.Close())
		must(t, os.Chtimes(big, fi.ModTime(), fi.ModTime()))

		r, err := wait(cmd, out, errb, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 1 || !strings.Contains(r.stderr, "corrupt") || !strings.Contains(r.stderr, "a/big.fits") {
			t.Errorf("pull of a corrupted file: exit %d, stderr %q; want 1 and corrupt a/big.fits", r.code, r.stderr)
		}
		if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("corrupt unit placed: %v", err)
		}
	})

	t.Run("file changed at the source while listed without digests", func(t *testing.T) {
		unit := filepath.Join(root, "D5500")
		writeUnit(t, unit, 48<<20, 4<<20)
		big := filepath.Join(unit, "a/big.fits")
		dest := filepath.Join(dst, "D5500")
		// A fresh source: the pull starts from a listing without digests.
		fresh := startSource(t, rlsd, root)
		cmd, out, errb := rlsctlCmd(rlsctl, "transfer", "pull", "--from", fresh.Addr, unit,
			"--to", dest, "--range-size", "4", "--streams", "2", "--limit-rate", "24M")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitJournal(t, dest, 2, func() bool { return false })
		// Rewritten in place, same size, mtime put back.
		fi, _ := os.Stat(big)
		f, err := os.OpenFile(big, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt(random(t, 1<<20), fi.Size()-1<<20)
		must(t, err)
		must(t, f.Close())
		must(t, os.Chtimes(big, fi.ModTime(), fi.ModTime()))

		r, err := wait(cmd, out, errb, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 1 || !strings.Contains(r.stderr, "changed at the source") || !strings.Contains(r.stderr, "a/big.fits") {
			t.Errorf("pull of a file changed mid-pull: exit %d, stderr %q; want 1 and a/big.fits changed at the source", r.code, r.stderr)
		}
		if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("changed unit placed: %v", err)
		}
		// Pulled again: the new version, whole, keeping what still holds.
		r = runRlsctl(t, rlsctl, "-o", "json", "transfer", "pull", "--from", fresh.Addr, unit, "--to", dest)
		if r.code != 0 {
			t.Fatalf("pull again: exit %d, stderr %q", r.code, r.stderr)
		}
		sameTree(t, unit, dest)
	})

	t.Run("restarted source: digests from its data directory", func(t *testing.T) {
		unit := filepath.Join(root, "D5600")
		writeUnit(t, unit, 8<<20, 1<<20)
		data := t.TempDir()
		first := startSourceOn(t, rlsd, root, data)
		r := runRlsctl(t, rlsctl, "-o", "json", "transfer", "manifest", "--from", first.Addr, unit)
		if r.code != 0 {
			t.Fatalf("manifest: exit %d, stderr %q", r.code, r.stderr)
		}
		if first.metric(t, "rls_transfer_bytes_hashed_total") < 8<<20 {
			t.Fatalf("first source hashed %d bytes", first.metric(t, "rls_transfer_bytes_hashed_total"))
		}
		if code := first.Stop(30 * time.Second); code != 0 {
			t.Fatalf("rlsd exit %d after SIGTERM", code)
		}
		// Changed while the source is down: that file alone is hashed again.
		must(t, os.WriteFile(filepath.Join(unit, "small/f03"), []byte("changed"), 0o644))
		again := startSourceOn(t, rlsd, root, data)
		dest := filepath.Join(dst, "D5600")
		r = runRlsctl(t, rlsctl, "-o", "json", "transfer", "pull", "--from", again.Addr, unit, "--to", dest)
		if r.code != 0 {
			t.Fatalf("pull: exit %d, stderr %q", r.code, r.stderr)
		}
		sameTree(t, unit, dest)
		if h := again.metric(t, "rls_transfer_bytes_hashed_total"); h != int64(len("changed")) {
			t.Errorf("restarted source hashed %d bytes, want only the changed file's %d", h, len("changed"))
		}
		if n := again.metric(t, "rls_transfer_digests_loaded_total"); n == 0 {
			t.Error("restarted source loaded no digest from its data directory")
		}
	})

	t.Run("several units at once", func(t *testing.T) {
		var pfns []string
		for i := range 5 {
			unit := filepath.Join(root, fmt.Sprintf("D70%02d", i))
			writeUnit(t, unit, 1<<20+int64(i), 1<<20)
			pfns = append(pfns, unit)
		}
		into := t.TempDir()
		r := runRlsctl(t, rlsctl, append(append([]string{"-o", "json", "transfer", "pull", "--from", src.Addr}, pfns...), "--to", into)...)
		if r.code != 0 {
			t.Fatalf("pull of %d units: exit %d, stderr %q", len(pfns), r.code, r.stderr)
		}
		var res pullUnitsResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("output %q: %v", r.stdout, err)
		}
		if res.Placed != len(pfns) || res.Failed != 0 || len(res.Units) != len(pfns) {
			t.Fatalf("result %+v", res)
		}
		for i, pfn := range pfns {
			if u := res.Units[i]; u.PFN != pfn || u.Dest != filepath.Join(into, filepath.Base(pfn)) || u.Error != "" || u.FetchedBytes != u.Bytes {
				t.Errorf("unit %d: %+v", i, u)
			}
			sameTree(t, pfn, filepath.Join(into, filepath.Base(pfn)))
		}
		// A missing unit fails alone: the others are placed, and the exit
		// status is that of the failures (3, not found).
		into = t.TempDir()
		r = runRlsctl(t, rlsctl, "-o", "json", "transfer", "pull", "--from", src.Addr, pfns[0], filepath.Join(root, "D7999"), "--to", into)
		if r.code != 3 {
			t.Fatalf("pull with a missing unit: exit %d, stderr %q; want 3", r.code, r.stderr)
		}
		res = pullUnitsResult{}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("output %q: %v", r.stdout, err)
		}
		if res.Placed != 1 || res.Failed != 1 || res.Units[0].Error != "" || !strings.Contains(res.Units[1].Error, "not found") {
			t.Errorf("result %+v", res)
		}
		sameTree(t, pfns[0], filepath.Join(into, filepath.Base(pfns[0])))
	})

	t.Run("traversal refused", func(t *testing.T) {
		outside := t.TempDir()
		secret := filepath.Join(outside, "secret")
		must(t, os.WriteFile(secret, []byte("secret"), 0o600))
		must(t, os.MkdirAll(filepath.Join(root, "D6000"), 0o755))
		must(t, os.Symlink(secret, filepath.Join(root, "D6000", "link-out")))
		must(t, os.Symlink(outside, filepath.Join(root, "D6001")))
		swapped := filepath.Join(root, "D6002")
		writeUnit(t, swapped, 1<<20, 1<<20)

		for _, pfn := range []string{
			root + "/../" + filepath.Base(outside),
			outside,
			"/etc",
			filepath.Join(root, "D6000"), // holds a symlink out
			filepath.Join(root, "D6001"), // is a symlink out
		} {
			r := runRlsctl(t, rlsctl, "transfer", "manifest", "--from", src.Addr, pfn)
			if r.code != 1 || !strings.Contains(r.stderr, "refused") {
				t.Errorf("manifest %q: exit %d, stderr %q; want 1, refused", pfn, r.code, r.stderr)
			}
			r = runRlsctl(t, rlsctl, "transfer", "pull", "--from", src.Addr, pfn, "--to", filepath.Join(dst, "trav"))
			if r.code != 1 || !strings.Contains(r.stderr, "refused") {
				t.Errorf("pull %q: exit %d, stderr %q; want 1, refused", pfn, r.code, r.stderr)
			}
		}

		c, err := api.DialTransfer(src.Addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		m, err := c.Manifest(ctx, swapped)
		if err != nil {
			t.Fatal(err)
		}
		read := func(path string, sha transfer.Digest) error {
			return c.Read(ctx, []transfer.Range{{PFN: swapped, Path: path, Length: 1, SHA256: sha}}, func(int, int64, []byte) error {
				t.Errorf("read bytes of %q", path)
				return nil
			})
		}
		for _, p := range []string{"../D6000/link-out", "/etc/passwd", "a/../../D6000/link-out"} {
			if err := read(p, transfer.Digest{}); !errors.Is(err, transfer.ErrRefused) {
				t.Errorf("read %q: %v, want refused", p, err)
			}
		}
		// Swap a file for a symlink out after the manifest: refused at open.
		var deep transfer.Entry
		for _, e := range m.Entries {
			if e.Path == "a/b/c/deep.txt" {
				deep = e
			}
		}
		target := filepath.Join(swapped, "a/b/c/deep.txt")
		must(t, os.Remove(target))
		if err := os.Symlink(secret, target); err != nil {
			t.Fatal(err)
		}
		if err := read(deep.Path, deep.SHA256); !errors.Is(err, transfer.ErrRefused) {
			t.Errorf("read of a file swapped for a symlink out: %v, want refused", err)
		}
		resp, err := http.Get("http://" + src.http + "/v1/transfer/file?pfn=" + swapped + "&path=a/b/c/deep.txt")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("HTTP get of a file swapped for a symlink out: %s, want 403", resp.Status)
		}
	})
}

// testCurl fetches a unit's manifest and files with the real curl.
func testCurl(t *testing.T, src sourceProc, unit string) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl")
	}
	get := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(curl, append([]string{"-sS", "--fail-with-body", "-G"}, args...)...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl %q: %v: %s %s", args, err, errb.String(), out)
		}
		return out
	}
	base := "http://" + src.http + "/v1/transfer/"
	m, err := transfer.DecodeManifest(get("--data-urlencode", "pfn="+unit, base+"manifest"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Files() != 34 || m.TotalBytes() < 1<<30 {
		t.Errorf("manifest over HTTP: %d files, %d bytes", m.Files(), m.TotalBytes())
	}
	deep := get("--data-urlencode", "pfn="+unit, "--data-urlencode", "path=a/b/c/deep.txt", base+"file")
	if string(deep) != "deep\n" {
		t.Errorf("curl of a/b/c/deep.txt: %q", deep)
	}
	want := make([]byte, 1000)
	f, err := os.Open(filepath.Join(unit, "a/big.fits"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadAt(want, 1<<20-500)
	must(t, err)
	must(t, f.Close())
	part := get("-r", fmt.Sprintf("%d-%d", 1<<20-500, 1<<20+499),
		"--data-urlencode", "pfn="+unit, "--data-urlencode", "path=a/big.fits", base+"file")
	if !bytes.Equal(part, want) {
		t.Errorf("curl range of a/big.fits: %d bytes, differ from the file", len(part))
	}
	cmd := exec.Command(curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-G",
		"--data-urlencode", "pfn="+unit, "--data-urlencode", "path=../../etc/passwd", base+"file")
	if code, _ := cmd.Output(); string(code) != "403" {
		t.Errorf("curl of ../../etc/passwd: HTTP %s, want 403", code)
	}
}
