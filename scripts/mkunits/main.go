// Command mkunits makes synthetic storage units for scripts/demo.sh and
// scripts/bench-mirror.sh: it writes N units in the DRMS layout
// (ROOT/D<sunum>/S00000/fN.fits) and registers them in a site's catalog
// directory, as that site's rlsd will serve them, through the embeddable
// catalog API (so it must run while no rlsd has the catalog open).
//
// Each unit is registered as LFN = sunum, PFN = its absolute path, with the
// LFN attributes series, size (bytes) and files, all units in one durable
// catalog batch (catalog.RegisterUnits). The units' contents are pseudo-
// random bytes seeded by the sunum, so a run is reproducible.
//
// The first half of the sunums belongs to the first series, the second half
// to the second (and so on for more series), so each series is one range.
// On stdout it prints one line per unit, "sunum<TAB>series<TAB>pfn<TAB>bytes<TAB>files",
// which the scripts split into enqueue lists.
//
// Usage:
//
//	mkunits -root DIR -catalog DATA/catalog -first 100000000 -n 200 \
//	    -series hmi.m_45s,aia.lev1 [-files 1-4] [-max-bytes 65536] [-big-mib 0]
//	mkunits -n 1000 -no-catalog ...     files only, nothing registered
//
// -big-mib M makes every unit one file of M MiB instead of small files.
// An existing unit directory is reused as it is (not checked) so that a
// benchmark's data can be kept between runs; it is still registered.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/solar-archive/rls/catalog"
)

type options struct {
	root, catalog     string
	first             uint64
	n                 int
	series            []string
	minFiles, maxFile int
	maxBytes          int64
	bigMiB            int64
	noCatalog         bool
	workers           int
}

type unit struct {
	sunum  uint64
	series string
	pfn    string
	bytes  int64
	files  int
}

func main() {
	var o options
	var series, files string
	flag.StringVar(&o.root, "root", "", "directory the units go in (an export root of the site), required")
	flag.StringVar(&o.catalog, "catalog", "", "the site's catalog directory (DATA/catalog); required unless -no-catalog")
	flag.Uint64Var(&o.first, "first", 100000000, "first sunum")
	flag.IntVar(&o.n, "n", 200, "number of units")
	flag.StringVar(&series, "series", "hmi.m_45s,aia.lev1", "series, comma-separated; sunums are split into one range per series")
	flag.StringVar(&files, "files", "1-4", "files per unit, MIN-MAX")
	flag.Int64Var(&o.maxBytes, "max-bytes", 64<<10, "largest unit, bytes (small units)")
	flag.Int64Var(&o.bigMiB, "big-mib", 0, "if > 0, every unit is one file of this many MiB")
	flag.BoolVar(&o.noCatalog, "no-catalog", false, "write the files only")
	flag.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0)*2, "units written in parallel")
	flag.Parse()
	if err := o.check(series, files); err != nil {
		fmt.Fprintln(os.Stderr, "mkunits:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "mkunits:", err)
		os.Exit(1)
	}
}

func (o *options) check(series, files string) error {
	if o.root == "" {
		return errors.New("-root is required")
	}
	if o.catalog == "" && !o.noCatalog {
		return errors.New("-catalog is required (or -no-catalog)")
	}
	if o.n < 1 {
		return fmt.Errorf("-n %d: want at least 1", o.n)
	}
	for s := range strings.SplitSeq(series, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.series = append(o.series, s)
		}
	}
	if len(o.series) == 0 {
		return errors.New("-series: no series")
	}
	lo, hi, ok := strings.Cut(files, "-")
	if !ok {
		hi = lo
	}
	var err1, err2 error
	o.minFiles, err1 = strconv.Atoi(lo)
	o.maxFile, err2 = strconv.Atoi(hi)
	if err1 != nil || err2 != nil || o.minFiles < 1 || o.maxFile < o.minFiles {
		return fmt.Errorf("-files %q: want MIN-MAX with 1 ≤ MIN ≤ MAX", files)
	}
	if o.maxBytes < int64(o.maxFile) {
		return fmt.Errorf("-max-bytes %d: less than a byte per file", o.maxBytes)
	}
	if o.workers < 1 {
		o.workers = 1
	}
	var err error
	o.root, err = filepath.Abs(o.root)
	return err
}

func run(o options) error {
	if err := os.MkdirAll(o.root, 0o755); err != nil {
		return err
	}
	units := make([]unit, o.n)
	per := (o.n + len(o.series) - 1) / len(o.series)
	for i := range units {
		s := o.first + uint64(i)
		units[i] = unit{sunum: s, series: o.series[min(i/per, len(o.series)-1)],
			pfn: filepath.Join(o.root, "D"+strconv.FormatUint(s, 10))}
	}

	// Write the units, o.workers at a time.
	var wg sync.WaitGroup
	errs := make([]error, o.workers)
	for w := range o.workers {
		wg.Go(func() {
			for i := w; i < len(units); i += o.workers {
				if err := o.write(&units[i]); err != nil {
					errs[w] = fmt.Errorf("unit %d: %w", units[i].sunum, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	if !o.noCatalog {
		if err := register(o.catalog, units); err != nil {
			return err
		}
	}
	out := bufio.NewWriter(os.Stdout)
	for _, u := range units {
		fmt.Fprintf(out, "%d\t%s\t%s\t%d\t%d\n", u.sunum, u.series, u.pfn, u.bytes, u.files)
	}
	return out.Flush()
}

// write makes u's directory (in a temporary name, renamed into place, so a
// half-written unit is never left under its real name) unless it exists,
// and sets u.bytes and u.files from what is there.
func (o options) write(u *unit) error {
	if _, err := os.Stat(u.pfn); err == nil {
		return u.measure()
	}
	src := rand.NewChaCha8(seed(u.sunum))
	rng := rand.New(src)
	tmp := u.pfn + ".mkunits-tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	dir := filepath.Join(tmp, "S00000")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var sizes []int64
	if o.bigMiB > 0 {
		sizes = []int64{o.bigMiB << 20}
	} else {
		nf := o.minFiles + rng.IntN(o.maxFile-o.minFiles+1)
		// The unit's total is uniform in [nf KiB∧max, max], split evenly.
		total := max(int64(nf), min(int64(nf)<<10, o.maxBytes)+rng.Int64N(o.maxBytes-min(int64(nf)<<10, o.maxBytes)+1))
		for i := range nf {
			sz := total / int64(nf)
			if i == 0 {
				sz += total % int64(nf)
			}
			sizes = append(sizes, sz)
		}
	}
	for i, sz := range sizes {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%d.fits", i)))
		if err != nil {
			return err
		}
		_, err = io.CopyN(f, src, sz)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, u.pfn); err != nil {
		return err
	}
	return u.measure()
}

func (u *unit) measure() error {
	u.bytes, u.files = 0, 0
	return filepath.WalkDir(u.pfn, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		u.bytes += fi.Size()
		u.files++
		return nil
	})
}

func seed(n uint64) (s [32]byte) {
	for i := range 4 {
		for j := range 8 {
			s[i*8+j] = byte((n + uint64(i)*0x9e3779b97f4a7c15) >> (8 * j))
		}
	}
	return s
}

// register records every unit in the catalog at dir, in one durable batch
// per 10,000 units.
func register(dir string, units []unit) error {
	cat, err := catalog.Open(dir, nil)
	if err != nil {
		return err
	}
	defer cat.Close()
	const chunk = 10000
	for i := 0; i < len(units); i += chunk {
		batch := make([]catalog.Unit, 0, chunk)
		for _, u := range units[i:min(i+chunk, len(units))] {
			batch = append(batch, catalog.Unit{
				LFN: strconv.FormatUint(u.sunum, 10), PFN: u.pfn,
				Attrs: []catalog.Attr{
					{Name: "series", Value: catalog.StringValue(u.series)},
					{Name: "size", Value: catalog.IntValue(u.bytes)},
					{Name: "files", Value: catalog.IntValue(int64(u.files))},
				},
			})
		}
		errs, _, err := cat.RegisterUnits(context.Background(), batch)
		if err != nil {
			return fmt.Errorf("register: %w", err)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("register: %w", err)
		}
	}
	return cat.Close()
}
