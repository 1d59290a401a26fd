package main

import (
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/catalog/pgcatalog"
	"github.com/solar-archive/rls/internal/pgtest"
)

// TestCatalogDSNRefused: a --catalog-dsn that cannot be parsed, or a
// database whose catalog schema is newer than this rlsd knows or dirty,
// is bad configuration: rlsd exits 2 at once, naming the cause, and does
// not wait for the database (as it does when the database cannot be
// reached, see TestPostgresCatalogDownAtStart in cmd/rlsctl).
func TestCatalogDSNRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	pg := pgtest.Start(t, pgtest.Options{NoSync: true})
	ctx := t.Context()
	c, err := pgcatalog.Open(ctx, pg.DSN, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, tc := range []struct {
		name, dsn, sql, want string
	}{
		{"malformed", "postgres://rls@127.0.0.1:99999999/rls", "", "malformed catalog DSN"},
		{"newer", pg.DSN, `UPDATE rls_schema_migrations SET version = 99`, "newer than this rls knows"},
		{"dirty", pg.DSN, `UPDATE rls_schema_migrations SET version = 1, dirty = true`, "dirty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.sql != "" {
				if _, err := conn.Exec(ctx, tc.sql); err != nil {
					t.Fatal(err)
				}
			}
			var stderr strings.Builder
			code := run(ctx, []string{"--site", "jsoc", "--data", t.TempDir(), "--listen", "127.0.0.1:0",
				"--roles", "lrc", "--catalog-dsn", tc.dsn}, envFrom(nil), io.Discard, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 naming %q", code, stderr.String(), tc.want)
			}
		})
	}
}
