package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/solar-archive/rls/api/rlsv1"
)

// newAdminCommand is the "admin" group: questions about the daemon itself.
func newAdminCommand(g *globalOptions) *cobra.Command {
	return groupCommand("admin", "Ask the daemon about itself",
		newAdminPingCommand(g),
		newAdminStatsCommand(g),
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
