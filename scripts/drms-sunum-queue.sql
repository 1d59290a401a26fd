-- drms-sunum-queue.sql: the queue a DRMS site fills for the rls mirror.
--
-- Install it once in the DRMS database, as a role that may create tables and
-- functions in the schema the queue lives in (public by default):
--
--     psql -v ON_ERROR_STOP=1 -d jsoc -f drms-sunum-queue.sql
--
-- then have each series to mirror feed the queue:
--
--     SELECT rls_watch_series('hmi.m_45s');
--     SELECT rls_watch_series('aia.lev1');
--
-- which is the same as this example trigger on a series table:
--
--     CREATE TRIGGER rls_sunum_queue AFTER INSERT OR UPDATE OF sunum ON hmi.m_45s
--         FOR EACH ROW EXECUTE PROCEDURE rls_sunum_queue_trigger();
--
-- (rls_unwatch_series('hmi.m_45s') removes it.) Every new or changed sunum of
-- a watched series then becomes a row (sunum, recnum, 'hmi.m_45s') of
-- sunum_queue, and a NOTIFY on channel rls_sunum_queue wakes the rls intake,
-- which claims rows in batches, records them durably as NQUE, and only then
-- deletes them. Rows the intake cannot use (a NULL or negative sunum, a series
-- it does not mirror) are moved to sunum_queue_rejected with the reason.
--
-- The table and channel names here are rlsd's defaults (the intake's table
-- and channel settings). A site that changes them changes them here too. A
-- queue table made earlier (for the JSOC mirroring daemon) is kept as it is:
-- it needs the columns sunum bigint, recnum bigint, series_name text; the
-- queued_at column is optional and, when present, gives the intake's lag
-- metric the age of the oldest row waiting. The script is idempotent.
--
-- It works on PostgreSQL 9.5 and later (EXECUTE PROCEDURE, no CREATE OR
-- REPLACE TRIGGER).

BEGIN;

CREATE TABLE IF NOT EXISTS sunum_queue (
    sunum       bigint,
    recnum      bigint,
    series_name text,
    queued_at   timestamptz NOT NULL DEFAULT now()
);

-- The intake moves rows it cannot use here rather than let them block the
-- queue. It creates this table itself if it is missing and it may.
CREATE TABLE IF NOT EXISTS sunum_queue_rejected (
    sunum       bigint,
    recnum      bigint,
    series_name text,
    reason      text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);

-- A series row with sunum -1 has no storage unit (DRMS's "no segment data"):
-- there is nothing to mirror, so it is not queued. An UPDATE that leaves
-- sunum as it was queues nothing either.
CREATE OR REPLACE FUNCTION rls_sunum_queue_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sunum IS NULL OR NEW.sunum < 0 THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.sunum IS NOT DISTINCT FROM OLD.sunum THEN
        RETURN NEW;
    END IF;
    INSERT INTO sunum_queue (sunum, recnum, series_name)
        VALUES (NEW.sunum, NEW.recnum, TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
    -- Notifications with the same payload in one transaction are delivered
    -- once, so a bulk insert wakes the intake once, at commit.
    PERFORM pg_notify('rls_sunum_queue', '');
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION rls_watch_series(series regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS rls_sunum_queue ON %s', series);
    EXECUTE format('CREATE TRIGGER rls_sunum_queue AFTER INSERT OR UPDATE OF sunum ON %s '
                   'FOR EACH ROW EXECUTE PROCEDURE rls_sunum_queue_trigger()', series);
END
$$;

CREATE OR REPLACE FUNCTION rls_unwatch_series(series regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS rls_sunum_queue ON %s', series);
END
$$;

COMMIT;
