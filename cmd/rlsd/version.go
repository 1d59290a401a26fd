package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is the release, set at link time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/rlsd
//
// It is the one package-level variable of rlsd, because the linker can only
// set those.
var version string

// buildVersion returns the release rlsd was built as: the link-time version,
// else the module version recorded by the go command (a tagged version for
// `go install ...@v1.2.3`, "(devel)" for a local build).
func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of rlsd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "rlsd %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
