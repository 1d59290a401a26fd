package main

// Integration tests of the mirror with real processes: an RLI and three
// sites on loopback — jsoc (authoritative: lrc and transfer, a catalog of
// synthetic units of two series), nso (tier-1 mirror) and sao (tier-2
// mirror, pulling from nso) — driven through rlsctl mirror, and the
// acceptance test of the PostgreSQL intake under kill -9.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/solar-archive/rls/internal/rlsdtest"
	"github.com/solar-archive/rls/internal/transfertest"
)

// federation is an RLI and an authoritative site, jsoc, whose catalog
// holds units under its export root.
type federation struct {
	t            *testing.T
	rlsd, rlsctl string
	rli, jsoc    *rlsdtest.Proc
	jsocRoot     string
	units        map[uint64]string // sunum → series of jsoc's units
	updateFlags  []string          // soft state to the RLI, fast
}

func startFederation(t *testing.T) *federation {
	t.Helper()
	f := &federation{t: t, units: map[uint64]string{},
		rlsd:   rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd"),
		rlsctl: rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsctl")}
	f.rli = rlsdtest.Start(t, f.rlsd, "rls.v1.Index", "--site", "rli", "--roles", "rli",
		"--data", t.TempDir(), "--listen", "127.0.0.1:0")
	f.updateFlags = []string{"--update-to", f.rli.Addr, "--update-deltas", "--update-interval", "2s", "--update-delta-delay", "20ms"}
	f.jsocRoot = t.TempDir()
	f.jsoc = rlsdtest.Start(t, f.rlsd, "rls.v1.Transfer", append([]string{"--site", "jsoc", "--roles", "lrc,transfer",
		"--data", t.TempDir(), "--listen", "127.0.0.1:0", "--export-root", f.jsocRoot}, f.updateFlags...)...)
	f.ctl(0, f.jsoc, "lrc", "attr", "define", "series", "--object", "lfn", "--type", "string")
	return f
}

// ctl runs rlsctl against p and fails the test unless it exits with code.
func (f *federation) ctl(code int, p *rlsdtest.Proc, args ...string) cliResult {
	f.t.Helper()
	r := runRlsctl(f.t, f.rlsctl, append([]string{"--server", p.Addr}, args...)...)
	if r.code != code {
		f.t.Fatalf("rlsctl %q: exit %d, want %d; stdout %q, stderr %q", args, r.code, code, r.stdout, r.stderr)
	}
	return r
}

// addUnits makes units of series at jsoc (a few files each, one in a
// subdirectory) and registers them with their series attribute.
func (f *federation) addUnits(series string, sunums ...uint64) {
	f.t.Helper()
	var lines strings.Builder
	for _, n := range sunums {
		dir := f.unitDir(n)
		must(f.t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
		for i := range 1 + int(n%3) {
			must(f.t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.fits", i)), random(f.t, 100+int(n%977)*10), 0o644))
		}
		must(f.t, os.WriteFile(filepath.Join(dir, "sub", "record.txt"), []byte(series+"\n"), 0o644))
		fmt.Fprintf(&lines, "%d\t%s\n", n, dir)
		f.units[n] = series
	}
	file := filepath.Join(f.t.TempDir(), "units.txt")
	must(f.t, os.WriteFile(file, []byte(lines.String()), 0o644))
	f.ctl(0, f.jsoc, "lrc", "bulk", "create", "-f", file)
	for _, n := range sunums {
		f.ctl(0, f.jsoc, "lrc", "attr", "set", strconv.FormatUint(n, 10), "series", series, "--object", "lfn")
	}
}

func (f *federation) unitDir(n uint64) string {
	return filepath.Join(f.jsocRoot, fmt.Sprintf("SUM%d", n%4), "D"+strconv.FormatUint(n, 10))
}

// startMirror starts a site with roles mirror, transfer and lrc (listed in
// that order: rlsd starts them in dependency order), its store at
// ROOT/sums, sending soft state to the RLI.
func (f *federation) startMirror(site, data, root string, extra ...string) *rlsdtest.Proc {
	f.t.Helper()
	args := append([]string{"--site", site, "--roles", "mirror,transfer,lrc", "--data", data, "--listen", "127.0.0.1:0",
		"--export-root", root, "--mirror-store", filepath.Join(root, "sums"), "--mirror-index", f.rli.Addr,
		"--mirror-batch-idle", "50ms", "--mirror-pending-interval", "300ms"}, f.updateFlags...)
	return rlsdtest.Start(f.t, f.rlsd, "rls.v1.Mirror", append(args, extra...)...)
}

func sunumArgs(ns []uint64) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strconv.FormatUint(n, 10)
	}
	return out
}

func (r cliResult) records(t *testing.T) map[string]mirrorRecord {
	t.Helper()
	var res recordsResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("records %q: %v", r.stdout, err)
	}
	out := map[string]mirrorRecord{}
	for _, rec := range res.Records {
		out[rec.Sunum] = rec
	}
	return out
}

// sameUnits checks that every unit of ns is at STORE/D<sunum>, identical
// to jsoc's, and that no staging directory is left in store.
func (f *federation) sameUnits(store string, ns []uint64) {
	f.t.Helper()
	for _, n := range ns {
		got := filepath.Join(store, "D"+strconv.FormatUint(n, 10))
		if w, g := transfertest.TreeDigest(f.t, f.unitDir(n)), transfertest.TreeDigest(f.t, got); w != g {
			f.t.Errorf("unit %d at %s differs from jsoc's:\nwant\n%s\ngot\n%s", n, got, w, g)
		}
	}
	if ents, err := os.ReadDir(filepath.Join(store, ".rls-staging")); err == nil && len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
			sub, _ := os.ReadDir(filepath.Join(store, ".rls-staging", e.Name()))
			for _, s := range sub {
				names = append(names, "  "+s.Name())
			}
		}
		f.t.Errorf("staging left in %s: %q", store, names)
	}
}

func TestMirrorIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts rlsd")
	}
	f := startFederation(t)
	hmi := []uint64{1001, 1002, 1003, 1004}
	aia := []uint64{2001, 2002, 2003}
	f.addUnits("hmi.m_45s", hmi...)
	f.addUnits("aia.lev1", aia...)
	all := append(slices.Clone(hmi), aia...)

	// nso: tier 1, hmi routed to jsoc by name in the config file, the
	// rest to the default authority; an on-done hook logs each unit.
	nsoRoot := t.TempDir()
	hookLog := filepath.Join(t.TempDir(), "on-done.log")
	conf := filepath.Join(t.TempDir(), "nso.yaml")
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf("mirror-routes:\n  - {series: \"hmi.*\", authority: \"jsoc=%s\"}\n", f.jsoc.Addr)), 0o644))
	nso := f.startMirror("nso", t.TempDir(), nsoRoot, "--config", conf, "--mirror-authority", "jsoc="+f.jsoc.Addr,
		"--mirror-on-done", `echo "$RLS_SUNUM $2 $3" >> `+hookLog+`; false`)
	// sao: tier 2, from peers only; it learns of nso's units from the RLI.
	// Its authority (jsoc) judges INVD and coverage, and is no peer of it.
	saoRoot := t.TempDir()
	sao := f.startMirror("sao", t.TempDir(), saoRoot, "--mirror-tier", "2", "--mirror-authority", "jsoc="+f.jsoc.Addr)

	// Bad input changes nothing: a sunum that is not canonical is named.
	r := f.ctl(2, nso, "mirror", "enqueue", "1001", "01002")
	if !strings.Contains(r.stderr, `"01002"`) {
		t.Errorf("enqueue of 01002: stderr %q does not name it", r.stderr)
	}
	f.ctl(3, nso, "mirror", "status", "1001")

	// sao first: nobody holds the units yet, so they wait (PNDG) for nso.
	f.ctl(0, sao, append([]string{"mirror", "enqueue"}, sunumArgs(all)...)...)
	rlsdtest.Eventually(t, 30*time.Second, func() error {
		recs := f.ctl(0, sao, append([]string{"-o", "json", "mirror", "status"}, sunumArgs(all)...)...).records(t)
		for n, rec := range recs {
			if rec.State != "PNDG" {
				return fmt.Errorf("sao: %s is %s, want PNDG while no peer holds it", n, rec.State)
			}
		}
		return nil
	})

	// nso: hmi by argument, aia from a file with a BOM, plus 9999 that
	// jsoc lacks.
	f.ctl(0, nso, append([]string{"mirror", "enqueue", "--series", "hmi.m_45s", "--priority", "user"}, sunumArgs(hmi)...)...)
	file := filepath.Join(t.TempDir(), "aia.txt")
	must(t, os.WriteFile(file, []byte("\ufeff# aia units\n2001 aia.lev1\n2002 aia.lev1\n\n2003 aia.lev1\n9999 hmi.m_45s\n"), 0o644))
	r = f.ctl(0, nso, "-o", "json", "mirror", "enqueue", "-f", file)
	if !strings.Contains(r.stdout, `"accepted": 4`) {
		t.Errorf("enqueue -f: %q", r.stdout)
	}
	f.ctl(0, nso, append([]string{"mirror", "wait", "--timeout", "60s"}, sunumArgs(all)...)...)
	r = f.ctl(3, nso, "-o", "json", "mirror", "wait", "--timeout", "60s", "9999")
	if rec := r.records(t)["9999"]; rec.State != "INVD" || !strings.Contains(r.stderr, "INVD") {
		t.Errorf("9999 at nso: %+v, stderr %q; want INVD", rec, r.stderr)
	}
	f.sameUnits(filepath.Join(nsoRoot, "sums"), all)
	recs := f.ctl(0, nso, append([]string{"-o", "json", "mirror", "status"}, sunumArgs(all)...)...).records(t)
	for n, rec := range recs {
		if rec.State != "DONE" || rec.Source != "jsoc" || rec.Attempts < 1 || len(rec.History) == 0 || rec.Done == nil || rec.Bytes == 0 {
			t.Errorf("nso %s: %+v; want DONE from jsoc with its attempt", n, rec)
		}
	}

	// sao gets every unit from nso, none from jsoc.
	f.ctl(0, sao, append([]string{"mirror", "wait", "--timeout", "60s"}, sunumArgs(all)...)...)
	f.sameUnits(filepath.Join(saoRoot, "sums"), all)
	recs = f.ctl(0, sao, append([]string{"-o", "json", "mirror", "status"}, sunumArgs(all)...)...).records(t)
	for n, rec := range recs {
		if rec.State != "DONE" || rec.Source != "nso" {
			t.Errorf("sao %s: %+v; want DONE from nso", n, rec)
		}
	}
	var src sourcesResult
	must(t, json.Unmarshal([]byte(f.ctl(0, sao, "-o", "json", "mirror", "sources").stdout), &src))
	if len(src.Sources) != 1 || src.Sources[0].Site != "nso" || src.Sources[0].Units != int64(len(all)) {
		t.Errorf("sao's sources %+v; want all %d units from nso", src.Sources, len(all))
	}

	// The hook ran once per unit with its path and series; its failure
	// (the trailing false) left the units DONE.
	b, err := os.ReadFile(hookLog)
	must(t, err)
	for _, n := range all {
		want := fmt.Sprintf("%d %s %s\n", n, filepath.Join(nsoRoot, "sums", "D"+strconv.FormatUint(n, 10)), f.units[n])
		if c := strings.Count(string(b), want); c != 1 {
			t.Errorf("on-done log has %q %d times:\n%s", want, c, b)
		}
	}

	// Coverage against the authority: all of hmi present, 9999 INVD.
	var cov coverageResult
	must(t, json.Unmarshal([]byte(f.ctl(0, nso, "-o", "json", "mirror", "coverage", "--series", "hmi.m_45s").stdout), &cov))
	if len(cov.Series) != 1 || cov.Series[0].Authority != 4 || cov.Series[0].States["DONE"] != 4 || cov.Series[0].States["INVD"] != 1 ||
		len(cov.Series[0].Present) != 1 || cov.Series[0].Present[0] != (sunumRange{"1001", "1004"}) || len(cov.Series[0].Missing) != 0 {
		t.Errorf("coverage %+v", cov)
	}
	r = f.ctl(0, nso, "-o", "json", "mirror", "list", "--state", "INVD")
	if !strings.Contains(r.stdout, `"sunum":"9999"`) || !strings.Contains(r.stdout, `"records":1`) {
		t.Errorf("list INVD: %q", r.stdout)
	}

	// INVD is no dead end: once jsoc has the unit, retry brings it.
	f.addUnits("hmi.m_45s", 9999)
	r = f.ctl(0, nso, "-o", "json", "mirror", "retry", "--state", "INVD")
	if !strings.Contains(r.stdout, `"9999"`) {
		t.Errorf("retry --state INVD: %q", r.stdout)
	}
	f.ctl(0, nso, "mirror", "wait", "--timeout", "60s", "9999")
	f.sameUnits(filepath.Join(nsoRoot, "sums"), []uint64{9999})

	// Cancel forgets what is not DONE, and only that.
	f.ctl(0, nso, "mirror", "enqueue", "8888")
	r = f.ctl(0, nso, "-o", "json", "mirror", "cancel", "8888", "1001")
	if !strings.Contains(r.stdout, `"count": 1`) || !strings.Contains(r.stdout, `"8888"`) {
		t.Errorf("cancel: %q", r.stdout)
	}
	f.ctl(3, nso, "mirror", "status", "8888")
	f.ctl(0, nso, "mirror", "status", "1001")
}
