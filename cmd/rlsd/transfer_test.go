package main

import (
	"errors"
	"strings"
	"testing"
)

func TestExportRootConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		roles roleList
		roots pathList
		err   string // substring; "" for valid
	}{
		{"no transfer role", roleList{"lrc"}, nil, ""},
		{"transfer", roleList{"transfer"}, pathList{dir}, ""},
		{"no roots", roleList{"transfer"}, nil, "needs at least one export root"},
		{"relative", roleList{"transfer"}, pathList{"srv/sums"}, "not an absolute path"},
		{"missing", roleList{"lrc", "transfer"}, pathList{dir, dir + "/nope"}, "not a directory"},
	} {
		c := defaultConfig()
		c.Site, c.Data, c.Roles, c.ExportRoots = "s", dir, tc.roles, tc.roots
		err := c.validate()
		var ue usageError
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &ue)):
			t.Errorf("%s: %v, want a usage error with %q", tc.name, err, tc.err)
		}
	}
	if got := splitPaths(" /a, /b ,,"); len(got) != 2 || got[0] != "/a" || got[1] != "/b" {
		t.Errorf("splitPaths: %q", got)
	}
}
