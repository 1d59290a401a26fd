package main

// rlsctl mirror coverage and sources: what a mirror holds of each series,
// and how each source site has served it.

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/mirror"
)

// --- coverage and sources

type mirrorCoverageOptions struct{ series string }

func newMirrorCoverageCommand(g *globalOptions) *cobra.Command {
	o := &mirrorCoverageOptions{}
	cmd := &cobra.Command{
		Use:   "coverage [--series S]",
		Short: "Per series: sunums per state, and the ranges present and missing vs the authority",
		Long: `Coverage shows, per series (every series the mirror has records of, or
--series), how many sunums are in each state, how many units the series'
authority holds, and the sunum ranges of those that are DONE here (present)
and of the others (missing).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res coverageResult
			err := g.withConn(func(c *conn) error {
				rctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.mirror.Coverage(rctx, &rlsv1.MirrorCoverageRequest{Series: o.series})
				if err != nil {
					return err
				}
				for _, s := range resp.GetSeries() {
					sc := seriesCoverage{Series: s.GetSeries(), States: map[string]int64{}, Authority: s.GetAuthority(),
						Present: rangesOf(s.GetPresent()), Missing: rangesOf(s.GetMissing()), Truncated: s.GetTruncated(), Error: s.GetError()}
					for _, st := range mirror.States {
						sc.States[st.String()] = s.GetStates()[st.String()]
					}
					res.Series = append(res.Series, sc)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if res.Series == nil {
				res.Series = []seriesCoverage{}
			}
			return g.printer().print(res)
		},
	}
	cmd.Flags().StringVar(&o.series, "series", "", "only this series")
	return cmd
}

type sunumRange struct {
	First string `json:"first"`
	Last  string `json:"last"`
}

func rangesOf(ps []*rlsv1.SunumRange) []sunumRange {
	out := []sunumRange{}
	for _, p := range ps {
		out = append(out, sunumRange{strconv.FormatUint(p.GetFirst(), 10), strconv.FormatUint(p.GetLast(), 10)})
	}
	return out
}

type seriesCoverage struct {
	Series    string           `json:"series"`
	States    map[string]int64 `json:"states"`
	Authority int64            `json:"authority"`
	Present   []sunumRange     `json:"present"`
	Missing   []sunumRange     `json:"missing"`
	Truncated bool             `json:"truncated,omitempty"`
	Error     string           `json:"error,omitempty"`
}

// coverageResult is {"series":[...]}.
type coverageResult struct {
	Series []seriesCoverage `json:"series"`
}

func fmtRanges(rs []sunumRange, truncated bool) string {
	if len(rs) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		if r.First == r.Last {
			parts = append(parts, r.First)
		} else {
			parts = append(parts, r.First+"-"+r.Last)
		}
	}
	s := strings.Join(parts, ",")
	if truncated {
		s += ",..."
	}
	return s
}

func (r coverageResult) writeTable(w io.Writer) {
	header := []string{"SERIES"}
	for _, st := range mirror.States {
		header = append(header, st.String())
	}
	header = append(header, "AUTHORITY", "PRESENT", "MISSING")
	row(w, header...)
	for _, s := range r.Series {
		cells := []string{s.Series}
		for _, st := range mirror.States {
			cells = append(cells, strconv.FormatInt(s.States[st.String()], 10))
		}
		if s.Error != "" {
			cells = append(cells, "?", "-", "authority: "+s.Error)
		} else {
			cells = append(cells, strconv.FormatInt(s.Authority, 10), fmtRanges(s.Present, s.Truncated), fmtRanges(s.Missing, s.Truncated))
		}
		row(w, cells...)
	}
}

func newMirrorSourcesCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "sources",
		Short: "Per source site: units, bytes, throughput, failures, concurrency",
		Long: `Sources shows, per site the mirror pulled from since it started: units
placed and bytes received from it, its throughput (moving average, bytes/s),
recent failure rate, failures (and corrupt copies), and its current
concurrency limit and pulls in flight.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res := sourcesResult{Sources: []mirrorSource{}}
			err := g.withConn(func(c *conn) error {
				rctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.mirror.Sources(rctx, &rlsv1.MirrorSourcesRequest{})
				if err != nil {
					return err
				}
				for _, s := range resp.GetSources() {
					res.Sources = append(res.Sources, mirrorSource{Site: s.GetSite(), Units: s.GetUnits(), Bytes: s.GetBytes(),
						Throughput: s.GetThroughput(), FailureRate: s.GetFailureRate(), Failures: s.GetFailures(), Corrupt: s.GetCorrupt(),
						Concurrency: s.GetConcurrency(), Active: s.GetActive(), Pulls: s.GetPulls()})
				}
				return nil
			})
			if err != nil {
				return err
			}
			return g.printer().print(res)
		},
	}
}

type mirrorSource struct {
	Site        string           `json:"site"`
	Units       int64            `json:"units"`
	Bytes       int64            `json:"bytes"`
	Throughput  float64          `json:"throughput"` // bytes/s
	FailureRate float64          `json:"failure_rate"`
	Failures    int64            `json:"failures"`
	Corrupt     int64            `json:"corrupt"`
	Concurrency int64            `json:"concurrency"`
	Active      int64            `json:"active"`
	Pulls       map[string]int64 `json:"pulls"`
}

// sourcesResult is {"sources":[...]}.
type sourcesResult struct {
	Sources []mirrorSource `json:"sources"`
}

func (r sourcesResult) writeTable(w io.Writer) {
	row(w, "SITE", "UNITS", "BYTES", "THROUGHPUT", "FAILURE-RATE", "FAILURES", "CORRUPT", "CONCURRENCY", "ACTIVE")
	for _, s := range r.Sources {
		row(w, s.Site, strconv.FormatInt(s.Units, 10), strconv.FormatInt(s.Bytes, 10),
			fmt.Sprintf("%.0f B/s", s.Throughput), fmt.Sprintf("%.2f", s.FailureRate),
			strconv.FormatInt(s.Failures, 10), strconv.FormatInt(s.Corrupt, 10),
			strconv.FormatInt(s.Concurrency, 10), strconv.FormatInt(s.Active, 10))
	}
}
