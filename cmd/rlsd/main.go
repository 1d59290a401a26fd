// Command rlsd is the rls daemon: it runs a site's roles (lrc, rli,
// transfer, mirror) behind gRPC. The mirror role needs lrc and transfer in
// the same rlsd; roles start in dependency order.
//
//	rlsd --site jsoc --data /var/lib/rls [--listen 127.0.0.1:7600] [--roles lrc]
//	     [--http-listen :9100] [--pprof] [--stats-interval 1m]
//	     [--config rlsd.yaml] [--log-format text|json] [--catalog-dsn postgres://...]
//	     [--log-level debug|info|warn|error] [--no-sync] [--shutdown-timeout 10s]
//	     [--advertise HOST:PORT] [--update-to ADDR,...] [--update-mode list|bloom|delta]
//	     [--update-deltas] [--update-interval 10m] [--update-validity 8h]
//	     [--update-delta-delay 200ms] [--update-bloom-fp 0.01]
//	     [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
//	     [--export-root DIR,...]                              (role transfer)
//	     [--mirror-index ADDR,...] [--mirror-store DIR] [--mirror-tier 1|2]
//	     [--mirror-authority [SITE=]ADDR] [--mirror-on-done CMD]
//	     [--mirror-intake-dsn postgres://...] [--mirror-*]   (role mirror)
//	rlsd version
//
// Settings come from flags, then RLSD_* environment variables, then the
// YAML configuration file, then defaults (the acl: rules only in the file).
// SIGHUP reloads the ACL, the certificates and the update targets. Exit
// status: 0 after a clean shutdown on SIGTERM or SIGINT, 2 for a usage or
// configuration error, 3 when a store failed (a full disk or an I/O error:
// rlsd stops serving at once and exits, for a supervisor to restart it), 1
// for any other failure.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes rlsd with args and returns its exit status. The daemon runs
// until ctx is done. Logs and errors go to stderr.
func run(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	cmd := newRootCommand(getenv)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "rlsd: %v\n", err)
	if errors.As(err, new(usageError)) {
		fmt.Fprintln(stderr, "Run 'rlsd --help' for usage.")
		return 2
	}
	if errors.As(err, new(storeFailure)) {
		return 3
	}
	return 1
}

// newRootCommand returns the rlsd command, which runs the daemon.
func newRootCommand(getenv func(string) (string, bool)) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:           "rlsd",
		Short:         "Replica location service daemon",
		Long:          "rlsd runs a site's replica location roles behind gRPC (roles: " + strings.Join(knownRoles(), ", ") + ").",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unexpected argument %q", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.resolve(cmd.Flags(), getenv)
			if err != nil {
				return err
			}
			reload := func() (config, error) { return o.resolve(cmd.Flags(), getenv) }
			log := newLogger(cfg, cmd.ErrOrStderr())
			if p := applyGoGC(cfg.GoGC, getenv); p > 0 {
				log.Debug("go garbage collector", "gogc", p)
			}
			return serve(cmd.Context(), cfg, log, reload)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	o.addFlags(cmd.Flags())
	cmd.AddCommand(newVersionCommand())
	return cmd
}
