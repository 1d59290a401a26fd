package intake

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// column is a column the intake reads or writes, with the base types
// (pg_type names as regtype prints them) it accepts.
type column struct {
	name  string
	types []string
}

// queueColumns are the queue table's columns, as DRMS triggers fill it.
var queueColumns = []column{
	{"sunum", []string{"bigint"}},
	{"recnum", []string{"bigint"}},
	{"series_name", []string{"text", "character varying"}},
}

// queuedAtColumn is optional: when the queue has it as timestamptz, the lag
// metric is the age of the oldest row waiting.
const queuedAtColumn = "queued_at"

// rejectedColumns are the columns the intake writes in "<queue>_rejected".
var rejectedColumns = []column{
	{"sunum", []string{"bigint"}},
	{"recnum", []string{"bigint"}},
	{"series_name", []string{"text", "character varying"}},
	{"reason", []string{"text", "character varying"}},
}

// verify checks that the queue table exists with the columns and privileges
// the intake needs, and makes the rejected table if it is missing. It
// reports whether the queue has the optional queued_at column. Problems the
// configuration must fix are ErrBadTable; others (a lost connection) are not.
func (in *Intake) verify(ctx context.Context, conn *pgx.Conn) (hasQueuedAt bool, err error) {
	cols, err := tableColumns(ctx, conn, in.table)
	if err != nil {
		return false, err
	}
	if err := checkColumns(in.table, cols, queueColumns); err != nil {
		return false, err
	}
	for _, priv := range []string{"SELECT", "UPDATE", "DELETE"} {
		if err := checkPrivilege(ctx, conn, in.table, priv); err != nil {
			return false, err
		}
	}
	hasQueuedAt = cols[queuedAtColumn] == "timestamp with time zone"

	rcols, err := tableColumns(ctx, conn, in.rejected)
	if errors.Is(err, errNoTable) {
		_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+in.rejected.Sanitize()+` (
			sunum bigint, recnum bigint, series_name text,
			reason text NOT NULL, rejected_at timestamptz NOT NULL DEFAULT now())`)
		if err != nil {
			if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) {
				return false, fmt.Errorf("%w: cannot create the table for rejected rows %s: %v (create it as scripts/drms-sunum-queue.sql does)",
					ErrBadTable, in.rejected.Sanitize(), err)
			}
			return false, err
		}
		in.log.Info("created the table for rejected rows", "rejected_table", in.rejected.Sanitize())
		rcols, err = tableColumns(ctx, conn, in.rejected)
	}
	if err != nil {
		return false, err
	}
	if err := checkColumns(in.rejected, rcols, rejectedColumns); err != nil {
		return false, err
	}
	if err := checkPrivilege(ctx, conn, in.rejected, "INSERT"); err != nil {
		return false, err
	}
	return hasQueuedAt, nil
}

var errNoTable = errors.New("no such table")

// tableColumns returns a table's columns and their base types, or an error
// wrapping both ErrBadTable and errNoTable if there is no such table.
func tableColumns(ctx context.Context, conn *pgx.Conn, table pgx.Identifier) (map[string]string, error) {
	var oid *uint32
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1)::oid`, table.Sanitize()).Scan(&oid); err != nil {
		return nil, fmt.Errorf("look up table %s: %w", table.Sanitize(), err)
	}
	if oid == nil {
		where := ""
		if len(table) == 1 {
			where = " (in the search_path; write schema.table to name another schema)"
		}
		return nil, fmt.Errorf("%w: table %s does not exist%s: %w", ErrBadTable, table.Sanitize(), where, errNoTable)
	}
	rows, err := conn.Query(ctx, `SELECT attname::text, atttypid::regtype::text FROM pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped`, *oid)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", table.Sanitize(), err)
	}
	cols := map[string]string{}
	var name, typ string
	_, err = pgx.ForEachRow(rows, []any{&name, &typ}, func() error {
		cols[name] = typ
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", table.Sanitize(), err)
	}
	return cols, nil
}

func checkColumns(table pgx.Identifier, have map[string]string, want []column) error {
	for _, c := range want {
		typ, ok := have[c.name]
		if !ok {
			return fmt.Errorf("%w: table %s has no column %q (want %s)", ErrBadTable, table.Sanitize(), c.name, c.types[0])
		}
		found := false
		for _, t := range c.types {
			found = found || typ == t
		}
		if !found {
			return fmt.Errorf("%w: column %q of table %s is %s, want %s", ErrBadTable, c.name, table.Sanitize(), typ, strings.Join(c.types, " or "))
		}
	}
	return nil
}

func checkPrivilege(ctx context.Context, conn *pgx.Conn, table pgx.Identifier, priv string) error {
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT has_table_privilege(to_regclass($1), $2)`, table.Sanitize(), priv).Scan(&ok); err != nil {
		return fmt.Errorf("check privileges on %s: %w", table.Sanitize(), err)
	}
	if !ok {
		return fmt.Errorf("%w: the intake's role may not %s table %s", ErrBadTable, priv, table.Sanitize())
	}
	return nil
}
