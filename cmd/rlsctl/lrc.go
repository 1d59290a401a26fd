package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
)

// newLRCCommand is the "lrc" group: the site's local replica catalog.
func newLRCCommand(g *globalOptions) *cobra.Command {
	return groupCommand("lrc", "Local replica catalog: LFN <-> PFN mappings and their attributes",
		newLRCWriteCommand(g, "create", "created", "Create a new LFN with its first PFN"),
		newLRCWriteCommand(g, "add", "added", "Add a PFN to an existing LFN"),
		newLRCWriteCommand(g, "delete", "deleted", "Delete one LFN -> PFN mapping"),
		newLRCExistsCommand(g),
		newLRCQueryCommand(g),
		newLRCRenameCommand(g),
		newLRCBulkCommand(g),
		newLRCAttrCommand(g),
	)
}

// newLRCWriteCommand is "create", "add" or "delete" (op) of one mapping;
// done is op's past tense for the confirmation.
func newLRCWriteCommand(g *globalOptions, op, done, short string) *cobra.Command {
	return &cobra.Command{
		Use:   op + " LFN PFN",
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			lfn, pfn := args[0], args[1]
			if err := checkNames("lfn", lfn, "pfn", pfn); err != nil {
				return err
			}
			return g.withConn(func(c *conn) error {
				var call func(context.Context, *rlsv1.MappingRequest, ...grpc.CallOption) (*rlsv1.WriteResponse, error)
				switch op {
				case "create":
					call = c.catalog.Create
				case "add":
					call = c.catalog.Add
				case "delete":
					call = c.catalog.Delete
				}
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := call(ctx, &rlsv1.MappingRequest{Lfn: lfn, Pfn: pfn})
				if err != nil {
					return err
				}
				return g.printer().print(writeResult{
					OK: true, Op: op, Seq: resp.GetSeq(),
					done: fmt.Sprintf("%s %s -> %s", done, cell(lfn), cell(pfn)),
				})
			})
		},
	}
}

type existsOptions struct {
	pfn string
}

func newLRCExistsCommand(g *globalOptions) *cobra.Command {
	o := &existsOptions{}
	cmd := &cobra.Command{
		Use:   "exists LFN [PFN] | exists [LFN] --pfn PFN",
		Short: "Tell whether an LFN, a PFN or a mapping exists (exit 0 if so, 3 if not)",
		Args:  cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &rlsv1.ExistsRequest{}
			pfnFlag := cmd.Flags().Changed("pfn")
			switch {
			case pfnFlag && len(args) <= 1:
				req.Pfn = o.pfn
				if len(args) == 1 {
					req.Lfn = args[0]
				}
			case !pfnFlag && len(args) >= 1:
				req.Lfn = args[0]
				if len(args) == 2 {
					req.Pfn = args[1]
				}
			default:
				return usageErrorf("exists takes LFN [PFN], or [LFN] --pfn PFN")
			}
			if req.Lfn != "" || !pfnFlag {
				if err := checkNames("lfn", req.Lfn); err != nil {
					return err
				}
			}
			if req.Pfn != "" || pfnFlag {
				if err := checkNames("pfn", req.Pfn); err != nil {
					return err
				}
			}
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.catalog.Exists(ctx, req)
				if err != nil {
					return err
				}
				r := existsResult{LFN: req.Lfn, PFN: req.Pfn, Exists: resp.GetExists()}
				if err := g.printer().print(r); err != nil {
					return err
				}
				if !r.Exists {
					return &exitError{code: exitNotFound, quiet: true}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&o.pfn, "pfn", "", "ask about this PFN (alone, or with LFN for the mapping)")
	return cmd
}

func newLRCQueryCommand(g *globalOptions) *cobra.Command {
	return groupCommand("query", "Look up mappings by LFN, by PFN or by pattern",
		newLRCQueryNamesCommand(g, false),
		newLRCQueryNamesCommand(g, true),
		newLRCQueryWildcardCommand(g),
	)
}

// newLRCQueryNamesCommand is "query lfn LFN..." (byPFN false) or
// "query pfn PFN..." (byPFN true). One name uses QueryLFN/QueryPFN, several
// one BulkQuery; either way every name gets an item in the output, and the
// command exits 3 when a name is not found (see failureTally for mixes).
func newLRCQueryNamesCommand(g *globalOptions, byPFN bool) *cobra.Command {
	kind, other := "lfn", "PFNs"
	if byPFN {
		kind, other = "pfn", "LFNs"
	}
	return &cobra.Command{
		Use:   kind + " NAME...",
		Short: fmt.Sprintf("Show the %s of one or more %ss", other, kind),
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, n := range args {
				if err := checkNames(kind, n); err != nil {
					return err
				}
			}
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				items, err := queryNames(ctx, c, byPFN, args)
				if err != nil {
					return err
				}
				if err := g.printer().print(queryResults{byPFN: byPFN, items: items}); err != nil {
					return err
				}
				var t failureTally
				for _, it := range items {
					if it.Error != nil {
						fmt.Fprintf(g.stderr, "rlsctl: %s %q: %s: %s\n", kind, it.LFN+it.PFN, it.Error.Code, it.Error.Message)
						t.addGRPC(it.Error.code)
					}
				}
				if st := t.exitStatus(); st != exitOK {
					return &exitError{code: st, quiet: true}
				}
				return nil
			})
		},
	}
}

// queryNames queries names in order. Per-name failures become items with an
// error; a failure of the call as a whole is returned.
func queryNames(ctx context.Context, c *conn, byPFN bool, names []string) ([]queryItem, error) {
	if len(names) == 1 {
		call := c.catalog.QueryLFN
		if byPFN {
			call = c.catalog.QueryPFN
		}
		resp, err := call(ctx, &rlsv1.NameRequest{Name: names[0]})
		if st, ok := status.FromError(err); ok && st.Code() == codes.NotFound {
			return []queryItem{newQueryFailure(byPFN, names[0], codes.NotFound, st.Message())}, nil
		}
		if err != nil {
			return nil, err
		}
		return []queryItem{newQueryItem(byPFN, names[0], resp.GetNames())}, nil
	}
	typ := rlsv1.ObjectType_OBJECT_TYPE_LFN
	if byPFN {
		typ = rlsv1.ObjectType_OBJECT_TYPE_PFN
	}
	resp, err := c.catalog.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Type: typ, Names: names})
	if err != nil {
		return nil, err
	}
	if len(resp.GetResults()) != len(names) {
		return nil, fmt.Errorf("server answered %d results for %d names", len(resp.GetResults()), len(names))
	}
	items := make([]queryItem, len(names))
	for i, r := range resp.GetResults() {
		if c := codes.Code(r.GetStatus().GetCode()); c != codes.OK {
			items[i] = newQueryFailure(byPFN, names[i], c, r.GetStatus().GetMessage())
		} else {
			items[i] = newQueryItem(byPFN, names[i], r.GetNames())
		}
	}
	return items, nil
}

type wildcardOptions struct {
	pfn           bool
	offset, limit uint64
}

func newLRCQueryWildcardCommand(g *globalOptions) *cobra.Command {
	o := &wildcardOptions{}
	cmd := &cobra.Command{
		Use:   "wildcard PATTERN",
		Short: "Show the mappings whose LFN (or PFN, with --pfn) matches a glob ('*', '?', '\\' escapes)",
		Long: `Show the mappings whose LFN (or PFN, with --pfn) matches a glob pattern:
'*' matches any run of characters, '?' one character, '\' escapes the next.
At most --limit mappings are returned (0: the server default, 10,000); when
more exist, the output says so ("more": true in JSON) and --offset pages on.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("pattern", args[0]); err != nil {
				return err
			}
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.catalog.QueryWildcard(ctx, &rlsv1.WildcardRequest{
					Pattern: args[0], Pfn: o.pfn, Offset: o.offset, Limit: o.limit,
				})
				if err != nil {
					return err
				}
				r := wildcardResult{Mappings: make([]mappingView, 0, len(resp.GetMappings())), More: resp.GetMore(), byPFN: o.pfn}
				for _, m := range resp.GetMappings() {
					r.Mappings = append(r.Mappings, mappingView{LFN: m.GetLfn(), PFN: m.GetPfn()})
				}
				if err := g.printer().print(r); err != nil {
					return err
				}
				if r.More && !g.printer().json {
					fmt.Fprintf(g.stderr, "rlsctl: more matches exist; use --offset %d\n", o.offset+uint64(len(r.Mappings)))
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.pfn, "pfn", false, "match the pattern against PFNs instead of LFNs")
	f.Uint64Var(&o.offset, "offset", 0, "skip this many matches")
	f.Uint64Var(&o.limit, "limit", 0, "return at most this many matches (0: server default)")
	return cmd
}

func newLRCRenameCommand(g *globalOptions) *cobra.Command {
	return groupCommand("rename", "Rename an LFN or a PFN, keeping its mappings and attributes",
		newLRCRenameOneCommand(g, false),
		newLRCRenameOneCommand(g, true),
	)
}

func newLRCRenameOneCommand(g *globalOptions, pfn bool) *cobra.Command {
	kind, short := "lfn", "Rename an LFN"
	if pfn {
		kind, short = "pfn", "Rename a PFN"
	}
	return &cobra.Command{
		Use:   kind + " OLD NEW",
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("old "+kind, args[0], "new "+kind, args[1]); err != nil {
				return err
			}
			return g.withConn(func(c *conn) error {
				call := c.catalog.RenameLFN
				if pfn {
					call = c.catalog.RenamePFN
				}
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := call(ctx, &rlsv1.RenameRequest{OldName: args[0], NewName: args[1]})
				if err != nil {
					return err
				}
				return g.printer().print(writeResult{
					OK: true, Op: "rename", Seq: resp.GetSeq(),
					done: fmt.Sprintf("renamed %s %s -> %s", kind, cell(args[0]), cell(args[1])),
				})
			})
		},
	}
}
