package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/internal/pgtest"
)

// withMirrorDefaults sets c's mirror settings to their defaults.
func withMirrorDefaults(c config) config {
	d := defaultConfig()
	c.MirrorTier, c.MirrorUserWorkers, c.MirrorBulkWorkers = d.MirrorTier, d.MirrorUserWorkers, d.MirrorBulkWorkers
	c.MirrorSourceMin, c.MirrorSourceMax, c.MirrorRetryBase, c.MirrorRetryCap = d.MirrorSourceMin, d.MirrorSourceMax, d.MirrorRetryBase, d.MirrorRetryCap
	c.MirrorPendingInterval, c.MirrorBatchUnits, c.MirrorBatchBytes, c.MirrorBatchIdle = d.MirrorPendingInterval, d.MirrorBatchUnits, d.MirrorBatchBytes, d.MirrorBatchIdle
	c.MirrorIntakeTable, c.MirrorIntakeChannel, c.MirrorIntakePoll, c.MirrorIntakeBatch = d.MirrorIntakeTable, d.MirrorIntakeChannel, d.MirrorIntakePoll, d.MirrorIntakeBatch
	return c
}

func TestRoleOrder(t *testing.T) {
	for _, roles := range [][]string{
		{"mirror", "transfer", "lrc"}, {"lrc", "mirror", "transfer"}, {"transfer", "lrc", "mirror"},
	} {
		got := startOrder(roles)
		if i, j, k := slices.Index(got, "lrc"), slices.Index(got, "transfer"), slices.Index(got, "mirror"); i < 0 || j < 0 || k < i || k < j {
			t.Errorf("startOrder(%q) = %q: mirror must start after lrc and transfer", roles, got)
		}
	}
	if got := startOrder([]string{"rli", "lrc"}); !slices.Equal(got, []string{"lrc", "rli"}) {
		t.Errorf("startOrder(rli, lrc) = %q", got)
	}
}

func TestMirrorConfig(t *testing.T) {
	root := t.TempDir()
	other := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// A symbolic link inside the root that leads out of it.
	must(os.Symlink(other, filepath.Join(root, "escape")))
	base := []string{"--site", "nso", "--data", t.TempDir(), "--export-root", root,
		"--mirror-index", "127.0.0.1:1", "--mirror-authority", "jsoc=127.0.0.1:2"}
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		file  string
		want  string // substring of the usage error; "" for valid
		check func(t *testing.T, c config)
	}{
		{name: "roles in any order", args: []string{"--roles", "mirror,transfer,lrc", "--mirror-store", root + "/sums"},
			check: func(t *testing.T, c config) {
				if c.MirrorStore != root+"/sums" || c.MirrorTier != 1 {
					t.Errorf("store %q tier %d", c.MirrorStore, c.MirrorTier)
				}
			}},
		{name: "mirror alone", args: []string{"--roles", "mirror", "--mirror-store", root},
			want: "role mirror needs roles lrc and transfer in the same rlsd (add them: --roles lrc,transfer,mirror)"},
		{name: "mirror without transfer", args: []string{"--roles", "mirror,lrc", "--mirror-store", root},
			want: "role mirror needs role transfer"},
		{name: "store outside the roots", args: []string{"--roles", "lrc,transfer,mirror", "--mirror-store", other + "/sums"},
			want: "mirror-store " + other + "/sums does not lie under an export root (" + root + ")"},
		{name: "store next to a root", args: []string{"--roles", "lrc,transfer,mirror", "--mirror-store", root + "-x"},
			want: "does not lie under an export root"},
		{name: "store through a link out of the root", args: []string{"--roles", "lrc,transfer,mirror", "--mirror-store", root + "/escape/sums"},
			want: "does not lie under an export root"},
		{name: "no store", args: []string{"--roles", "lrc,transfer,mirror"}, want: "needs a store directory"},
		{name: "bad tier", args: []string{"--roles", "lrc,transfer,mirror", "--mirror-store", root, "--mirror-tier", "3"}, want: "mirror-tier 3"},
		{name: "bad authority", args: []string{"--roles", "lrc,transfer,mirror", "--mirror-store", root, "--mirror-authority", "jsoc"}, want: "mirror-authority"},
		{name: "env settings", args: []string{"--roles", "lrc,transfer,mirror"},
			env: map[string]string{"RLSD_MIRROR_STORE": root, "RLSD_MIRROR_TIER": "2", "RLSD_MIRROR_PENDING_INTERVAL": "3s",
				"RLSD_MIRROR_INDEX": "127.0.0.1:5,127.0.0.1:6", "RLSD_MIRROR_INTAKE_DSN": "postgres://x@127.0.0.1/jsoc"},
			check: func(t *testing.T, c config) {
				if c.MirrorTier != 2 || c.MirrorPendingInterval != 3*time.Second || len(c.MirrorIndex) != 1 /* the flag wins */ || c.MirrorIntakeDSN == "" {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "routes", args: []string{"--roles", "lrc,transfer,mirror", "--mirror-store", root},
			file: "mirror-routes:\n  - {series: \"hmi.*\", authority: \"jsoc=127.0.0.1:3\"}\n  - {series: \"aia.*\", authority: \"127.0.0.1:4\"}\n",
			check: func(t *testing.T, c config) {
				if len(c.MirrorRoutes) != 2 || c.MirrorRoutes[1].Authority != "127.0.0.1:4" {
					t.Errorf("routes %+v", c.MirrorRoutes)
				}
			}},
		{name: "bad route pattern", args: []string{"--roles", "lrc,transfer,mirror", "--mirror-store", root},
			file: "mirror-routes: [{series: \"hmi.[\", authority: \"127.0.0.1:3\"}]\n", want: "mirror-routes[0]: series pattern"},
		{name: "bad intake table", args: []string{"--roles", "lrc,transfer,mirror", "--mirror-store", root,
			"--mirror-intake-dsn", "postgres://x@127.0.0.1/jsoc", "--mirror-intake-table", "a\x00b"}, want: "mirror-intake-table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(slices.Clone(base), tc.args...)
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, tc.file))
			}
			c, err := resolveArgs(args, tc.env)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, c)
				return
			}
			var ue usageError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ue) {
				t.Fatalf("error %v, want a usage error containing %q", err, tc.want)
			}
		})
	}
}

// TestMirrorIntakeBadTable: a queue table without the intake's columns is
// bad configuration: rlsd refuses to start (exit 2) with the intake's
// error, naming the table and the column.
func TestMirrorIntakeBadTable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	pg := pgtest.Start(t, pgtest.Options{NoSync: true})
	conn, err := pgx.Connect(t.Context(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(t.Context(), "CREATE TABLE drms_queue (sunum bigint, recnum bigint)")
	conn.Close(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	var stderr strings.Builder
	code := run(t.Context(), []string{"--site", "nso", "--data", t.TempDir(), "--listen", "127.0.0.1:0",
		"--roles", "lrc,transfer,mirror", "--export-root", root, "--mirror-store", root,
		"--mirror-index", "127.0.0.1:1", "--mirror-authority", "127.0.0.1:2",
		"--mirror-intake-dsn", pg.DSN, "--mirror-intake-table", "drms_queue"}, envFrom(nil), io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "drms_queue") || !strings.Contains(stderr.String(), "series_name") {
		t.Errorf("exit %d, stderr %q; want 2 naming drms_queue and series_name", code, stderr.String())
	}
}
