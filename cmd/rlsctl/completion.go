package main

import (
	"github.com/spf13/cobra"
)

// newCompletionCommand writes a shell completion script to stdout. The
// script is not a result, so it bypasses the printer (and -o).
func newCompletionCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Write a shell completion script to stdout",
		Long: `Write a shell completion script to stdout. For example:

  source <(rlsctl completion bash)
  rlsctl completion zsh > "${fpath[1]}/_rlsctl"
  rlsctl completion fish > ~/.config/fish/completions/rlsctl.fish`,
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(g.stdout, true)
			case "zsh":
				return root.GenZshCompletion(g.stdout)
			default:
				return root.GenFishCompletion(g.stdout, true)
			}
		},
	}
}
