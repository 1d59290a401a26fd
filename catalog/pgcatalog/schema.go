package pgcatalog

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// The schema's migrations, NNNNNN_name.up.sql and .down.sql, applied in
// order by golang-migrate, which records the version in the table
// rls_schema_migrations and holds a PostgreSQL advisory lock while it
// migrates, so that several rlsd starting at once migrate once.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationsTable records the schema version.
const migrationsTable = "rls_schema_migrations"

// ErrSchemaTooNew reports a database whose schema is newer than this build
// knows: another, newer rls migrated it. The error names both versions.
var ErrSchemaTooNew = errors.New("catalog schema is newer than this rls knows")

// ErrSchemaDirty reports a database whose last migration failed half way.
var ErrSchemaDirty = errors.New("catalog schema is dirty (a migration failed part way)")

// SchemaVersion is the newest schema version this build knows.
func SchemaVersion() uint {
	v, err := latestVersion()
	if err != nil {
		panic(err) // the embedded files are fixed at build time
	}
	return v
}

func latestVersion() (uint, error) {
	ents, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return 0, err
	}
	var latest uint
	for _, e := range ents {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			return 0, fmt.Errorf("pgcatalog: migration file %q has no version", e.Name())
		}
		v, err := strconv.ParseUint(num, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("pgcatalog: migration file %q: %w", e.Name(), err)
		}
		latest = max(latest, uint(v))
	}
	return latest, nil
}

// migrateSchema brings the database's schema to SchemaVersion. It refuses a
// schema newer than that (ErrSchemaTooNew) or dirty (ErrSchemaDirty), and
// changes nothing then.
func migrateSchema(cfg *pgx.ConnConfig) error {
	latest, err := latestVersion()
	if err != nil {
		return err
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	drv, err := migratepgx.WithInstance(db, &migratepgx.Config{MigrationsTable: migrationsTable})
	if err != nil {
		return fmt.Errorf("pgcatalog: schema: %w", err)
	}
	src, err := iofs.New(migrations, "migrations")
	if err != nil {
		return err
	}
	m, err := migrate.NewWithInstance("iofs", src, "rls", drv)
	if err != nil {
		return fmt.Errorf("pgcatalog: schema: %w", err)
	}
	defer m.Close()
	cur, dirty, err := m.Version()
	switch {
	case errors.Is(err, migrate.ErrNilVersion):
	case err != nil:
		return fmt.Errorf("pgcatalog: schema version: %w", err)
	case dirty:
		return fmt.Errorf("pgcatalog: %w: version %d; repair it by hand (see %s)", ErrSchemaDirty, cur, migrationsTable)
	case cur > latest:
		return fmt.Errorf("pgcatalog: %w: the database is at version %d, this rls knows versions up to %d; run a newer rls", ErrSchemaTooNew, cur, latest)
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("pgcatalog: migrate schema to version %d: %w", latest, err)
	}
	return nil
}
