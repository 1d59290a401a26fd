package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
)

// newAdminCommand is the "admin" group: questions about the daemon itself.
func newAdminCommand(g *globalOptions) *cobra.Command {
	return groupCommand("admin", "Ask the daemon about itself",
		newAdminPingCommand(g),
		newAdminStatsCommand(g),
		newAdminUpdateCommand(g),
	)
}

func newAdminPingCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "ping",
		Short: "Check that the daemon answers, and show its site, version and roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.admin.Ping(ctx, &rlsv1.PingRequest{})
				if err != nil {
					return err
				}
				r := pingResult{Site: resp.GetSite(), Version: resp.GetVersion(), Roles: nonNil(resp.GetRoles())}
				if resp.GetTime() != nil {
					r.Time = resp.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
				}
				return g.printer().print(r)
			})
		},
	}
}

func newAdminStatsCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Show counts and figures for the roles the daemon runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.admin.Stats(ctx, &rlsv1.StatsRequest{})
				if err != nil {
					return err
				}
				return g.printer().print(newStatsResult(resp))
			})
		},
	}
}

func newStatsResult(resp *rlsv1.StatsResponse) statsResult {
	r := statsResult{
		Site:          resp.GetSite(),
		Version:       resp.GetVersion(),
		Roles:         nonNil(resp.GetRoles()),
		UptimeSeconds: resp.GetUptime().AsDuration().Seconds(),
	}
	if cs := resp.GetCatalog(); cs != nil {
		r.catalogStatsView = &catalogStatsView{
			LFNs:                cs.GetLfns(),
			PFNs:                cs.GetPfns(),
			Mappings:            cs.GetMappings(),
			Seq:                 cs.GetSeq(),
			FirstSeq:            cs.GetFirstSeq(),
			AttributeDefs:       cs.GetAttributeDefs(),
			DiskBytes:           cs.GetDiskBytes(),
			CompactionDebtBytes: cs.GetCompactionDebtBytes(),
			CompactionsRunning:  cs.GetCompactionsRunning(),
		}
	}
	if is := resp.GetIndex(); is != nil {
		r.Index = &indexStatsView{
			Sites:        is.GetSites(),
			ListSites:    is.GetListSites(),
			BloomSites:   is.GetBloomSites(),
			ExactEntries: is.GetExactEntries(),
			BloomBits:    is.GetBloomBits(),
			BloomGroups:  is.GetBloomGroups(),
		}
	}
	return r
}

func newAdminUpdateCommand(g *globalOptions) *cobra.Command {
	var target string
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Send the catalog's soft state to the index targets now, and show each result",
		Long: `Send a full update (list or Bloom filter, with the deltas pending after it)
to every index target the daemon sends soft state to, or to the one named with
--target, and wait for each. The command fails if any target failed: status 5
when every failed target was unreachable or timed out, 1 otherwise. A large
catalog may need a --timeout above the default.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.admin.Update(ctx, &rlsv1.UpdateNowRequest{Target: target})
				if err != nil {
					return err
				}
				r := newUpdateResult(resp)
				if err := g.printer().print(r); err != nil {
					return err
				}
				return r.failure()
			})
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "the index target's address, as configured (default: every target)")
	return cmd
}

func newUpdateResult(resp *rlsv1.UpdateNowResponse) updateResult {
	r := updateResult{Results: []updateItem{}}
	for _, tr := range resp.GetResults() {
		mode := strings.ToLower(strings.TrimPrefix(tr.GetMode().String(), "UPDATE_MODE_"))
		r.Results = append(r.Results, updateItem{
			Target:      tr.GetTarget(),
			Mode:        mode,
			Generation:  tr.GetGeneration(),
			Entries:     tr.GetEntries(),
			TookSeconds: tr.GetTook().AsDuration().Seconds(),
			Error:       tr.GetError(),
		})
	}
	return r
}

// failure is the command's error when a target failed: exit status 5 when
// every failure was UNAVAILABLE or DEADLINE_EXCEEDED (the daemon reports
// them as "CODE: message"), 1 otherwise. The results already say why.
func (r updateResult) failure() error {
	failed, unavailable := 0, 0
	for _, it := range r.Results {
		if it.Error == "" {
			continue
		}
		failed++
		name, _, _ := strings.Cut(it.Error, ":")
		if c, ok := api.CodeFromName(name); ok && exitCodeForGRPC(c) == exitUnavailable {
			unavailable++
		}
	}
	if failed == 0 {
		return nil
	}
	code := exitFailure
	if unavailable == failed {
		code = exitUnavailable
	}
	return &exitError{code: code, err: fmt.Errorf("%d of %d index targets failed", failed, len(r.Results))}
}
