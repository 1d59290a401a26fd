package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
)

// newRLICommand is the "rli" group: a replica location index.
func newRLICommand(g *globalOptions) *cobra.Command {
	return groupCommand("rli", "Replica location index: which sites hold an LFN, from the sites' soft state",
		newRLIQueryCommand(g),
		newRLISitesCommand(g),
	)
}

func newRLIQueryCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "query LFN... | query wildcard PATTERN",
		Short: "Show the sites that hold LFNs, as far as the index knows (exit 3 if an LFN has none)",
		Long: `Show the sites that hold each LFN according to the index, with how each is
known (list, bloom or delta), when the site last refreshed its state, and its
endpoint. Bloom answers may be false positives: "rlsctl locate --verify" asks
the sites themselves.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.locate(cmd, args, false, 0)
		},
	}
	cmd.AddCommand(newRLIWildcardCommand(g))
	return cmd
}

// newLocateCommand is "locate": the sunum -> sites call of the mirror and
// the DRMS tools.
func newLocateCommand(g *globalOptions) *cobra.Command {
	var (
		verify  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "locate LFN... [--verify]",
		Short: "Find the sites that hold LFNs (sunums), optionally confirmed by the sites (exit 3 if none, 5 if none answered)",
		Long: `Ask the index (--server) which sites hold each LFN. With --verify the index
asks the candidate sites' catalogs and keeps only the sites that confirm, with
their PFNs; a site that does not answer in time is listed as unverified.

Exit status 3 when an LFN has no site; with --verify, 5 when an LFN has no
confirmed site but some candidates could not be asked.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if verify && timeout <= 0 {
				return usageErrorf("--verify-timeout must be positive, got %v", timeout)
			}
			return g.locate(cmd, args, verify, timeout)
		},
	}
	cmd.Flags().BoolVar(&verify, "verify", false, "ask the candidate sites' catalogs; return confirmed sites with their PFNs")
	cmd.Flags().DurationVar(&timeout, "verify-timeout", 5*time.Second, "how long the index waits for the sites when verifying")
	return cmd
}

// locate runs Locate for "rli query" and "locate" and prints one item per
// LFN, in argument order.
func (g *globalOptions) locate(cmd *cobra.Command, lfns []string, verify bool, timeout time.Duration) error {
	for _, n := range lfns {
		if err := checkName("lfn", n); err != nil {
			return err
		}
	}
	return g.withConn(func(c *conn) error {
		ctx, cancel := g.rpcContext(cmd.Context())
		defer cancel()
		req := &rlsv1.LocateRequest{Lfns: lfns, Verify: verify}
		if verify {
			req.VerifyTimeout = durationpb.New(timeout)
		}
		resp, err := rlsv1.NewIndexClient(c.cc).Locate(ctx, req)
		if err != nil {
			return err
		}
		r := locateResult{verify: verify, items: make([]locateItem, len(resp.GetResults()))}
		var t failureTally
		for i, res := range resp.GetResults() {
			it := locateItem{LFN: res.GetLfn(), Sites: []siteView{}}
			confirmed, unverified := 0, 0
			for _, s := range res.GetSites() {
				v := newSiteView(s)
				switch s.GetVerification() {
				case rlsv1.Verification_VERIFICATION_CONFIRMED:
					confirmed++
				case rlsv1.Verification_VERIFICATION_UNVERIFIED:
					unverified++
				}
				it.Sites = append(it.Sites, v)
			}
			r.items[i] = it
			switch {
			case len(it.Sites) == 0:
				fmt.Fprintf(g.stderr, "rlsctl: lfn %q: NOT_FOUND: no site holds it\n", it.LFN)
				t.add("NOT_FOUND", exitNotFound)
			case verify && confirmed == 0 && unverified > 0:
				fmt.Fprintf(g.stderr, "rlsctl: lfn %q: UNAVAILABLE: no candidate site could be asked\n", it.LFN)
				t.add("UNAVAILABLE", exitUnavailable)
			}
		}
		if err := g.printer().print(r); err != nil {
			return err
		}
		if st := t.exitStatus(); st != exitOK {
			return &exitError{code: st, quiet: true}
		}
		return nil
	})
}

// siteView is one site holding an LFN: {"site":"nso","endpoint":"h:7600",
// "known_by":"bloom","updated":"...","expires":"...","via":["rli1"]}, with
// "verification" ("confirmed" or "unverified"), "pfns" and "error" when
// verified.
type siteView struct {
	Site         string   `json:"site"`
	Endpoint     string   `json:"endpoint"`
	KnownBy      string   `json:"known_by"`
	Updated      string   `json:"updated,omitempty"`
	Expires      string   `json:"expires,omitempty"`
	Via          []string `json:"via,omitempty"`
	Verification string   `json:"verification,omitempty"`
	PFNs         []string `json:"pfns,omitempty"`
	Error        string   `json:"error,omitempty"`
}

func newSiteView(s *rlsv1.SiteCandidate) siteView {
	v := siteView{
		Site:     s.GetSite(),
		Endpoint: s.GetEndpoint(),
		KnownBy:  knowledgeName(s.GetKnownBy()),
		Updated:  formatTime(s.GetUpdated()),
		Expires:  formatTime(s.GetExpires()),
		Via:      s.GetVia(),
		PFNs:     s.GetPfns(),
		Error:    s.GetError(),
	}
	switch s.GetVerification() {
	case rlsv1.Verification_VERIFICATION_CONFIRMED:
		v.Verification = "confirmed"
	case rlsv1.Verification_VERIFICATION_UNVERIFIED:
		v.Verification = "unverified"
	}
	return v
}

func knowledgeName(k rlsv1.Knowledge) string {
	switch k {
	case rlsv1.Knowledge_KNOWLEDGE_LIST:
		return "list"
	case rlsv1.Knowledge_KNOWLEDGE_BLOOM:
		return "bloom"
	case rlsv1.Knowledge_KNOWLEDGE_DELTA:
		return "delta"
	}
	return "unknown"
}

func modeName(m rlsv1.UpdateMode) string {
	switch m {
	case rlsv1.UpdateMode_UPDATE_MODE_LIST:
		return "list"
	case rlsv1.UpdateMode_UPDATE_MODE_BLOOM:
		return "bloom"
	case rlsv1.UpdateMode_UPDATE_MODE_DELTA:
		return "delta"
	}
	return "unknown"
}

func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// locateItem is the answer for one LFN: {"lfn":"123","sites":[siteView...]}.
type locateItem struct {
	LFN   string     `json:"lfn"`
	Sites []siteView `json:"sites"`
}

// locateResult answers "rli query" and "locate": a JSON array of
// locateItem in argument order.
type locateResult struct {
	verify bool
	items  []locateItem
}

func (r locateResult) MarshalJSON() ([]byte, error) { return marshalList(r.items) }

func (r locateResult) writeTable(w io.Writer) {
	if r.verify {
		row(w, "LFN", "SITE", "ENDPOINT", "KNOWN_BY", "VERIFIED", "PFNS")
	} else {
		row(w, "LFN", "SITE", "ENDPOINT", "KNOWN_BY", "UPDATED", "VIA")
	}
	for _, it := range r.items {
		for _, s := range it.Sites {
			if r.verify {
				detail := strings.Join(s.PFNs, ",")
				if s.Error != "" {
					detail = s.Error
				}
				row(w, it.LFN, s.Site, s.Endpoint, s.KnownBy, s.Verification, detail)
			} else {
				row(w, it.LFN, s.Site, s.Endpoint, s.KnownBy, s.Updated, strings.Join(s.Via, ","))
			}
		}
	}
}

func newRLIWildcardCommand(g *globalOptions) *cobra.Command {
	var offset, limit uint64
	cmd := &cobra.Command{
		Use:   "wildcard PATTERN",
		Short: "List (LFN, site) pairs whose LFN matches a pattern (* ? and \\ escapes); list and delta state only",
		Long: `List the (LFN, site) pairs whose LFN matches PATTERN, in LFN order. Only
sites that send lists (or deltas) can be searched: a Bloom filter cannot list
its names. The sites that could not be searched are named on stderr and in
the JSON output.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit > 100_000 {
				return usageErrorf("--limit %d is more than 100000", limit)
			}
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := rlsv1.NewIndexClient(c.cc).QueryWildcard(ctx, &rlsv1.IndexWildcardRequest{
					Pattern: args[0], Offset: offset, Limit: uint32(limit),
				})
				if err != nil {
					return err
				}
				r := indexWildcardResult{Matches: []indexMatchView{}, More: resp.GetMore(), Unsearched: nonNil(resp.GetUnsearchedSites())}
				for _, m := range resp.GetMatches() {
					r.Matches = append(r.Matches, indexMatchView{LFN: m.GetLfn(), Site: m.GetSite(), Endpoint: m.GetEndpoint(), KnownBy: knowledgeName(m.GetKnownBy())})
				}
				if len(r.Unsearched) > 0 {
					fmt.Fprintf(g.stderr, "rlsctl: not searched (known by Bloom filter only): %s\n", strings.Join(r.Unsearched, ", "))
				}
				return g.printer().print(r)
			})
		},
	}
	cmd.Flags().Uint64Var(&offset, "offset", 0, "skip this many matches")
	cmd.Flags().Uint64Var(&limit, "limit", 0, "return at most this many matches (0: the server's default, 1000)")
	return cmd
}

type indexMatchView struct {
	LFN      string `json:"lfn"`
	Site     string `json:"site"`
	Endpoint string `json:"endpoint"`
	KnownBy  string `json:"known_by"`
}

// indexWildcardResult answers "rli query wildcard": {"matches":[...],
// "more":false,"unsearched_sites":["sao"]}.
type indexWildcardResult struct {
	Matches    []indexMatchView `json:"matches"`
	More       bool             `json:"more"`
	Unsearched []string         `json:"unsearched_sites"`
}

func (r indexWildcardResult) writeTable(w io.Writer) {
	row(w, "LFN", "SITE", "ENDPOINT", "KNOWN_BY")
	for _, m := range r.Matches {
		row(w, m.LFN, m.Site, m.Endpoint, m.KnownBy)
	}
	if r.More {
		fmt.Fprintln(w, "(more: ask again with --offset)")
	}
}

func newRLISitesCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "sites",
		Short: "List the sites whose soft state the index holds, with mode, entries, generation and expiry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := rlsv1.NewIndexClient(c.cc).Sites(ctx, &rlsv1.SitesRequest{})
				if err != nil {
					return err
				}
				r := sitesResult{}
				for _, s := range resp.GetSites() {
					v := siteInfoView{
						Site: s.GetSite(), Endpoint: s.GetEndpoint(), Mode: modeName(s.GetMode()),
						Entries: s.GetEntries(), Generation: s.GetGeneration(), Deltas: s.GetDeltas(),
						Updated: formatTime(s.GetUpdated()), Received: formatTime(s.GetReceived()),
						Expires: formatTime(s.GetExpires()), Via: s.GetVia(),
					}
					if b := s.GetBloom(); b != nil {
						v.BloomM, v.BloomK = b.GetM(), b.GetK()
					}
					r = append(r, v)
				}
				return g.printer().print(r)
			})
		},
	}
}

// siteInfoView is one site of "rli sites".
type siteInfoView struct {
	Site       string   `json:"site"`
	Endpoint   string   `json:"endpoint"`
	Mode       string   `json:"mode"`
	Entries    uint64   `json:"entries"`
	Generation uint64   `json:"generation"`
	Deltas     uint64   `json:"deltas"`
	Updated    string   `json:"updated"`
	Received   string   `json:"received"`
	Expires    string   `json:"expires"`
	Via        []string `json:"via,omitempty"`
	BloomM     uint64   `json:"bloom_m,omitempty"`
	BloomK     uint32   `json:"bloom_k,omitempty"`
}

// sitesResult answers "rli sites": a JSON array of siteInfoView.
type sitesResult []siteInfoView

func (r sitesResult) MarshalJSON() ([]byte, error) { return marshalList([]siteInfoView(r)) }

func (r sitesResult) writeTable(w io.Writer) {
	row(w, "SITE", "ENDPOINT", "MODE", "ENTRIES", "GENERATION", "DELTAS", "RECEIVED", "EXPIRES", "VIA")
	for _, s := range r {
		row(w, s.Site, s.Endpoint, s.Mode, strconv.FormatUint(s.Entries, 10), strconv.FormatUint(s.Generation, 10),
			strconv.FormatUint(s.Deltas, 10), s.Received, s.Expires, strings.Join(s.Via, ","))
	}
}

// marshalList encodes items as a JSON array, [] when there are none.
func marshalList[T any](items []T) ([]byte, error) {
	if items == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(items)
}
