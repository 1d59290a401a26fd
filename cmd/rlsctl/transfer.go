package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/transfer"
)

// newTransferCommand is the "transfer" group: storage units' bytes, from the
// transfer role of one or more rlsd.
func newTransferCommand(g *globalOptions) *cobra.Command {
	return groupCommand("transfer", "Fetch storage units and their manifests from rlsd transfer sources",
		newTransferPullCommand(g),
		newTransferManifestCommand(g),
	)
}

type pullOptions struct {
	from      []string
	to        string
	streams   int
	rangeMiB  int64
	limitRate string
	force     bool
	noSync    bool
	mfirst    bool
	toParent  bool
}

const pullDesc = `Pull copies the storage unit PFN from the transfer sources given with --from
into the directory --to, which must not exist (unless --force) and whose
parent must.

Bytes go into <parent>/.rls-staging/<name>; every file is verified against
the SHA-256 of the unit's manifest and synced, and the unit is renamed to
--to in one step when complete. From a single source, the bytes travel
while the source computes the digests (unless --manifest-first); a unit
whose files change at the source meanwhile fails, and is never placed. Run the same command again after an
interruption (a killed process, a dropped connection) and it resumes without
fetching again what it had written. Work is spread over the sources,
--streams streams each; a source that fails 3 times in a row, sends
nothing for --timeout, or sends at less than 1/8 of the best source's rate
for 5 seconds, is dropped and its work goes to the others (what it sent is
kept). A file
whose digest does not match is fetched again (from another source if there
is one) and never placed.

A progress bar (bytes, rate, ETA) is shown on stderr when it is a terminal.
Exit status: 0 pulled; 2 bad input; 3 no source has the unit (or a file of
it); 4 --to exists; 5 sources unreachable or timed out; 1 corruption,
refusal or other failure.

With several PFNs (or --to-parent), --to is an existing parent directory and
each unit lands at DIR/<last element of its PFN>. The units share the
sources and streams, and small files of many units travel in the same read
calls (at most 48 units a call); each unit is still staged, verified and
renamed on its own, placed as soon as it is complete, and one unit's failure
does not stop the others. The result lists every unit; the exit status is
0 when all were placed, the status of the failures when they all failed the
same way, else 1.`

func newTransferPullCommand(g *globalOptions) *cobra.Command {
	o := &pullOptions{}
	cmd := &cobra.Command{
		Use:   "pull --from ADDR[,ADDR...] PFN... --to DIR",
		Short: "Pull storage units, verified and resumable, from one or more sources",
		Long:  pullDesc,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 || o.toParent {
				return runPullUnits(cmd.Context(), g, o, args)
			}
			return runPull(cmd.Context(), g, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.from, "from", nil, "transfer sources HOST:PORT, comma-separated (default --server)")
	f.StringVar(&o.to, "to", "", "destination directory of the unit; with several PFNs, their parent (required)")
	f.BoolVar(&o.toParent, "to-parent", false, "--to is the parent of the units' directories, even for one PFN")
	f.IntVar(&o.streams, "streams", transfer.DefaultStreams, "concurrent streams per source")
	f.Int64Var(&o.rangeMiB, "range-size", 0, fmt.Sprintf("MiB; larger files are fetched in ranges of this size, in parallel (0: %d with several sources; with one, each file whole, hashed as it passes and written with direct I/O)", transfer.DefaultRangeSize>>20))
	f.StringVar(&o.limitRate, "limit-rate", "", "cap the total rate, bytes per second with an optional K, M or G suffix (powers of 1024)")
	f.BoolVar(&o.force, "force", false, "replace --to if it exists")
	f.BoolVar(&o.noSync, "no-sync", false, "do not fsync (scratch copies only: a crash may leave the unit incomplete)")
	f.BoolVar(&o.mfirst, "manifest-first", false, "wait for the manifest's digests before fetching (always so with several sources)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// pullOpts checks the flags and builds the pull's options, with a progress
// bar labelled label; close releases the sources.
func pullOpts(g *globalOptions, o *pullOptions, label string) (_ transfer.PullOptions, bar **progress, close func(), _ error) {
	if o.streams <= 0 || o.rangeMiB < 0 {
		return transfer.PullOptions{}, nil, nil, usageErrorf("--streams must be positive and --range-size not negative")
	}
	if g.timeout <= 0 {
		return transfer.PullOptions{}, nil, nil, usageErrorf("--timeout must be positive, got %v", g.timeout)
	}
	rate, err := parseRate(o.limitRate)
	if err != nil {
		return transfer.PullOptions{}, nil, nil, usageErrorf("--limit-rate %q: %v", o.limitRate, err)
	}
	peers, closeAll, err := dialSources(g, o.from)
	if err != nil {
		return transfer.PullOptions{}, nil, nil, err
	}
	bar = new(*progress)
	return transfer.PullOptions{
		Sources:       peers,
		Streams:       o.streams,
		RangeSize:     o.rangeMiB << 20,
		StallTimeout:  g.timeout,
		RateLimit:     rate,
		Force:         o.force,
		NoSync:        o.noSync,
		ManifestFirst: o.mfirst,
		// Warnings (a source dropped, a file fetched again) go to stderr.
		Logger: slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Progress: func(p transfer.Progress) {
			if *bar == nil {
				if *bar = newProgress(g.stderr, p.Total, label); *bar == nil {
					return
				}
			}
			_ = (*bar).bar.Set64(p.Done)
		},
	}, bar, closeAll, nil
}

func runPull(ctx context.Context, g *globalOptions, o *pullOptions, pfn string) error {
	if err := checkNames("pfn", pfn); err != nil {
		return err
	}
	opts, bar, closeAll, err := pullOpts(g, o, "pull "+pfn)
	if err != nil {
		return err
	}
	defer closeAll()
	res, err := transfer.Pull(ctx, pfn, o.to, opts)
	(*bar).finish()
	if err != nil {
		return &exitError{code: exitCodeForTransfer(err), err: err}
	}
	return g.printer().print(newPullResult(res))
}

// runPullUnits pulls several units into the directory o.to.
func runPullUnits(ctx context.Context, g *globalOptions, o *pullOptions, pfns []string) error {
	for _, pfn := range pfns {
		if err := checkNames("pfn", pfn); err != nil {
			return err
		}
	}
	var units []transfer.Unit
	seen := map[string]string{}
	for _, pfn := range pfns {
		name := path.Base(path.Clean(pfn))
		if name == "/" || name == "." || name == ".." {
			return usageErrorf("PFN %q has no last element to name its unit", pfn)
		}
		if other, ok := seen[name]; ok {
			return usageErrorf("PFNs %q and %q would both land at %s", other, pfn, filepath.Join(o.to, name))
		}
		seen[name] = pfn
		units = append(units, transfer.Unit{PFN: pfn, Dest: filepath.Join(o.to, name)})
	}
	if fi, err := os.Stat(o.to); err != nil || !fi.IsDir() {
		return usageErrorf("--to %s: not a directory (with several PFNs it is their parent)", o.to)
	}
	opts, bar, closeAll, err := pullOpts(g, o, fmt.Sprintf("pull %d units", len(units)))
	if err != nil {
		return err
	}
	defer closeAll()
	rs, _ := transfer.PullUnits(ctx, units, opts)
	(*bar).finish()
	out := pullUnitsResult{Units: make([]pullResult, len(rs))}
	var tally failureTally
	for i, r := range rs {
		out.Units[i] = newPullResult(r)
		if r.Err != nil {
			code := exitCodeForTransfer(r.Err)
			out.Units[i].Error = r.Err.Error()
			tally.add(strconv.Itoa(code), code)
			out.Failed++
		} else {
			out.Placed++
		}
	}
	if err := g.printer().print(out); err != nil {
		return err
	}
	if st := tally.exitStatus(); st != exitOK {
		return &exitError{code: st, err: fmt.Errorf("%d of %d units failed", out.Failed, len(rs))}
	}
	return nil
}

// pullUnitsResult reports a pull of several units: one result each (with
// "error" for those not placed), and the counts.
type pullUnitsResult struct {
	Units  []pullResult `json:"units"`
	Placed int          `json:"placed"`
	Failed int          `json:"failed"`
}

func (r pullUnitsResult) writeTable(w io.Writer) {
	for _, u := range r.Units {
		if u.Error != "" {
			fmt.Fprintf(w, "failed %s -> %s: %s\n", cell(u.PFN), cell(u.Dest), u.Error)
			continue
		}
		u.writeTable(w)
	}
	fmt.Fprintf(w, "%d placed, %d failed\n", r.Placed, r.Failed)
}

// dialSources creates a client for each --from address (or --server).
func dialSources(g *globalOptions, from []string) ([]transfer.Peer, func(), error) {
	if len(from) == 0 {
		from = []string{g.server}
	}
	var peers []transfer.Peer
	var clients []*api.TransferClient
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	d, err := g.dialer()
	if err != nil {
		return nil, nil, err
	}
	for _, addr := range from {
		if addr = strings.TrimSpace(addr); addr == "" {
			closeAll()
			return nil, nil, usageErrorf("--from has an empty address")
		}
		c, err := api.DialTransfer(addr, d)
		if err != nil {
			closeAll()
			return nil, nil, usageErrorf("--from %q: %v", addr, err)
		}
		clients = append(clients, c)
		peers = append(peers, c)
	}
	return peers, closeAll, nil
}

// exitCodeForTransfer is the one mapping from the transfer package's errors
// to exit statuses.
func exitCodeForTransfer(err error) int {
	for _, m := range []struct {
		err  error
		code int
	}{
		{transfer.ErrInvalid, exitUsage},
		{transfer.ErrExists, exitExists},
		{transfer.ErrCorrupt, exitFailure},
		{transfer.ErrChanged, exitFailure},
		{transfer.ErrRefused, exitFailure},
		{transfer.ErrTimeout, exitUnavailable},
		{transfer.ErrUnavailable, exitUnavailable},
		{transfer.ErrNotFound, exitNotFound},
	} {
		if errors.Is(err, m.err) {
			return m.code
		}
	}
	return classify(err)
}

// parseRate parses a byte rate such as 500K, 20M or 1G (powers of 1024);
// "" is no limit.
func parseRate(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive number of bytes per second")
	}
	return n * mult, nil
}

func newTransferManifestCommand(g *globalOptions) *cobra.Command {
	var from string
	cmd := &cobra.Command{
		Use:   "manifest --from ADDR PFN",
		Short: "Show a storage unit's manifest: paths, sizes, modes, mtimes and SHA-256",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("pfn", args[0]); err != nil {
				return err
			}
			peers, closeAll, err := dialSources(g, nonEmpty(from))
			if err != nil {
				return err
			}
			defer closeAll()
			ctx, cancel := g.rpcContext(cmd.Context())
			defer cancel()
			m, err := peers[0].Manifest(ctx, args[0])
			if err != nil {
				return &exitError{code: exitCodeForTransfer(err), err: err}
			}
			return g.printer().print(manifestResult{m})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "transfer source HOST:PORT (default --server)")
	return cmd
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// pullResult reports a finished pull.
type pullResult struct {
	PFN            string          `json:"pfn"`
	Dest           string          `json:"dest"`
	Files          int             `json:"files"`
	Dirs           int             `json:"dirs"`
	Bytes          int64           `json:"bytes"`
	FetchedBytes   int64           `json:"fetched_bytes"`
	ResumedBytes   int64           `json:"resumed_bytes"`
	RefetchedBytes int64           `json:"refetched_bytes"`
	Seconds        float64         `json:"seconds"`
	BytesPerSecond float64         `json:"bytes_per_second"`
	Sources        []pullSourceRes `json:"sources"`
	Error          string          `json:"error,omitempty"` // several units: why this one was not placed
}

type pullSourceRes struct {
	Addr    string `json:"addr"`
	Bytes   int64  `json:"bytes"`
	Dropped bool   `json:"dropped"`
	Slow    bool   `json:"slow,omitempty"` // dropped for being much slower than the best source
	Error   string `json:"error,omitempty"`
}

func newPullResult(r *transfer.PullResult) pullResult {
	out := pullResult{
		PFN: r.PFN, Dest: r.Dest, Files: r.Files, Dirs: r.Dirs, Bytes: r.Bytes,
		FetchedBytes: r.Fetched, ResumedBytes: r.Resumed, RefetchedBytes: r.Refetched,
		Seconds: r.Elapsed.Seconds(), BytesPerSecond: float64(r.Fetched) / max(r.Elapsed.Seconds(), 1e-6),
	}
	for _, s := range r.Sources {
		sr := pullSourceRes{Addr: s.Name, Bytes: s.Bytes, Dropped: s.Dropped, Slow: s.Slow}
		if s.Err != nil {
			sr.Error = s.Err.Error()
		}
		out.Sources = append(out.Sources, sr)
	}
	return out
}

func (r pullResult) writeTable(w io.Writer) {
	fmt.Fprintf(w, "pulled %s -> %s\n", cell(r.PFN), cell(r.Dest))
	fmt.Fprintf(w, "%d files, %d dirs, %d bytes in %s (%.1f MiB/s); fetched %d, resumed %d, refetched %d\n",
		r.Files, r.Dirs, r.Bytes, time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond),
		r.BytesPerSecond/(1<<20), r.FetchedBytes, r.ResumedBytes, r.RefetchedBytes)
	for _, s := range r.Sources {
		state := "ok"
		if s.Dropped {
			state = "dropped: " + s.Error
		}
		fmt.Fprintf(w, "  source %s: %d bytes, %s\n", s.Addr, s.Bytes, state)
	}
}

// manifestResult prints a manifest: JSON as transfer.Manifest encodes it
// (the form the HTTP endpoint serves), or a table of entries.
type manifestResult struct{ m *transfer.Manifest }

func (r manifestResult) MarshalJSON() ([]byte, error) { return json.Marshal(r.m) }

func (r manifestResult) writeTable(w io.Writer) {
	row(w, "MODE", "SIZE", "MTIME", "SHA256", "PATH")
	for _, e := range r.m.Entries {
		sha := "-"
		if !e.Dir {
			sha = e.SHA256.String()
		}
		row(w, e.FileMode().String(), strconv.FormatInt(e.Size, 10), e.MTime.UTC().Format(time.RFC3339), sha, e.Path)
	}
}
