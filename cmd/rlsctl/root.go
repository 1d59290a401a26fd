package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/solar-archive/rls/api/rlsv1"
)

const (
	defaultServer  = "127.0.0.1:7600"
	maxMessageSize = 64 << 20 // bytes, both directions
	maxNameLen     = 1024     // bytes, for LFNs, PFNs and attribute names
)

// globalOptions are the flags every command shares. One value is created per
// invocation and handed to each command constructor.
type globalOptions struct {
	server  string
	output  enumFlag
	timeout time.Duration

	stdin          io.Reader
	stdout, stderr io.Writer
}

// rootDesc is the root command's long help, which documents the exit statuses.
const rootDesc = `rlsctl talks to an rlsd replica location service over gRPC.

The server is taken from --server, else from $RLS_SERVER, else ` + defaultServer + `.
Results go to stdout as aligned columns (-o table) or one JSON document
(-o json); errors go to stderr.

` + exitCodesHelp

func newRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globalOptions{
		output: newEnumFlag("table", "table", "json"),
		stdin:  stdin, stdout: stdout, stderr: stderr,
	}
	server := os.Getenv("RLS_SERVER")
	if server == "" {
		server = defaultServer
	}

	root := &cobra.Command{
		Use:           "rlsctl",
		Short:         "Command line client for the rls replica location service",
		Long:          rootDesc,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Without RunE cobra would print help for "rlsctl" alone; keep that,
		// but reject stray arguments with a usage error.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true, // replaced by newCompletionCommand
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)

	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", server, "rlsd address HOST:PORT (env RLS_SERVER)")
	pf.VarP(&g.output, "output", "o", "output format: "+g.output.choices())
	pf.DurationVar(&g.timeout, "timeout", 10*time.Second, "time limit of each RPC (bulk commands: of each chunk)")
	_ = root.RegisterFlagCompletionFunc("output", g.output.complete)

	root.AddCommand(
		newLRCCommand(g),
		newRLICommand(g),
		newLocateCommand(g),
		newAdminCommand(g),
		newTransferCommand(g),
		newMirrorCommand(g),
		newCompletionCommand(g),
		newVersionCommand(g),
	)
	wrapRunE(root)
	return root
}

// printer returns the printer for the chosen output format.
func (g *globalOptions) printer() *printer {
	return newPrinter(g.stdout, g.output.String())
}

// conn holds one client connection and the service stubs on it.
type conn struct {
	cc      *grpc.ClientConn
	catalog rlsv1.CatalogClient
	admin   rlsv1.AdminClient
	mirror  rlsv1.MirrorClient
}

func (c *conn) Close() error { return c.cc.Close() }

// dial creates a plaintext client connection to the server. It does not
// connect: the first RPC does, and fails with UNAVAILABLE when the server
// cannot be reached.
func (g *globalOptions) dial() (*conn, error) {
	if strings.TrimSpace(g.server) == "" {
		return nil, usageErrorf("--server is empty")
	}
	if g.timeout <= 0 {
		return nil, usageErrorf("--timeout must be positive, got %v", g.timeout)
	}
	cc, err := grpc.NewClient(g.server,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageSize),
			grpc.MaxCallSendMsgSize(maxMessageSize),
		),
	)
	if err != nil {
		return nil, usageErrorf("--server %q: %v", g.server, err)
	}
	return &conn{cc: cc, catalog: rlsv1.NewCatalogClient(cc), admin: rlsv1.NewAdminClient(cc), mirror: rlsv1.NewMirrorClient(cc)}, nil
}

// rpcContext bounds one RPC (or one bulk chunk) by --timeout.
func (g *globalOptions) rpcContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, g.timeout)
}

// withConn dials, runs fn, and closes the connection.
func (g *globalOptions) withConn(fn func(c *conn) error) error {
	c, err := g.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

// checkName rejects names the server would refuse anyway, naming the item:
// empty, longer than maxNameLen bytes, not UTF-8, or containing NUL.
func checkName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s is empty", what)
	case len(name) > maxNameLen:
		return fmt.Errorf("%s %.40q... is %d bytes long, more than %d", what, name, len(name), maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%s %q is not valid UTF-8", what, name)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%s %q contains a NUL byte at offset %d", what, name, strings.IndexByte(name, 0))
	}
	return nil
}

// checkNames applies checkName to pairs of (what, name) and returns a usage
// error for the first bad one.
func checkNames(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := checkName(pairs[i], pairs[i+1]); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
	}
	return nil
}

// enumFlag is a string flag restricted to a fixed set of values; a bad value
// is a flag parse error, hence exit status 2.
type enumFlag struct {
	value   string
	allowed []string
}

func newEnumFlag(def string, allowed ...string) enumFlag {
	return enumFlag{value: def, allowed: allowed}
}

func (e *enumFlag) String() string { return e.value }
func (e *enumFlag) Type() string   { return "string" }
func (e *enumFlag) choices() string {
	return strings.Join(e.allowed, "|")
}

func (e *enumFlag) Set(s string) error {
	for _, a := range e.allowed {
		if s == a {
			e.value = s
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", e.choices())
}

func (e *enumFlag) complete(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return e.allowed, cobra.ShellCompDirectiveNoFileComp
}

// groupCommand is a command that only holds subcommands. Run alone it prints
// its help; with an unknown subcommand it fails with a usage error (cobra
// would otherwise print help and succeed).
func groupCommand(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
	c.AddCommand(subs...)
	return c
}
