package main

import (
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newVersionCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the version of rlsctl",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.printer().print(buildVersion())
		},
	}
}

// buildVersion reads the version from the build information the Go
// toolchain embeds (module version, VCS revision), so that no linker flags
// are needed.
func buildVersion() versionResult {
	v := versionResult{Version: "(devel)", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			if s.Value == "true" && v.Commit != "" {
				v.Commit += "-dirty"
			}
		}
	}
	return v
}
