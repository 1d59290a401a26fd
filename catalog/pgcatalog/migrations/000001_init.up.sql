-- rls catalog schema, version 1. Names are text in the "C" collation, so
-- that they compare and sort by bytes, as the Pebble catalog orders them.

-- The one meta row: the catalog's incarnation, the change feed's last
-- position and horizon, and the counts of LFNs, PFNs and mappings. Every
-- write locks this row (SELECT ... FOR UPDATE) before it reads what it
-- checks, so writers are serialized across every process sharing the
-- database, and feed positions are dense and become visible in order.
CREATE TABLE rls_meta (
	id          smallint PRIMARY KEY CHECK (id = 1),
	incarnation bytea    NOT NULL,
	seq         bigint   NOT NULL DEFAULT 0,
	first_seq   bigint   NOT NULL DEFAULT 1,
	lfns        bigint   NOT NULL DEFAULT 0,
	pfns        bigint   NOT NULL DEFAULT 0,
	mappings    bigint   NOT NULL DEFAULT 0
);

-- Mappings. The primary key serves lookups by LFN (and LFN existence), the
-- second index lookups by PFN.
CREATE TABLE rls_map (
	lfn text COLLATE "C" NOT NULL,
	pfn text COLLATE "C" NOT NULL,
	PRIMARY KEY (lfn, pfn)
);
CREATE INDEX rls_map_pfn ON rls_map (pfn, lfn);

-- The change feed: one row per create, add, delete (a tombstone) and rename.
CREATE TABLE rls_feed (
	seq         bigint      PRIMARY KEY,
	kind        smallint    NOT NULL,
	lfn         text        COLLATE "C" NOT NULL DEFAULT '',
	pfn         text        COLLATE "C" NOT NULL DEFAULT '',
	old         text        COLLATE "C" NOT NULL DEFAULT '',
	lfn_added   boolean     NOT NULL DEFAULT false,
	lfn_removed boolean     NOT NULL DEFAULT false,
	at          timestamptz NOT NULL
);

-- Attribute definitions: obj 1 is LFNs, 2 PFNs; type 1 int, 2 float,
-- 3 string, 4 time.
CREATE TABLE rls_attr_def (
	obj  smallint NOT NULL,
	name text     COLLATE "C" NOT NULL,
	type smallint NOT NULL,
	PRIMARY KEY (obj, name)
);

-- Attribute values, typed: exactly the column of the attribute's type is
-- set (a time is vt to the microsecond plus vn nanoseconds). One partial
-- index per type serves =, <, <=, >, >=, between, != and like in
-- (value, object) order. Names are at most 1024 bytes, so every index
-- entry stays within PostgreSQL's 2704-byte limit.
CREATE TABLE rls_attr (
	obj    smallint NOT NULL,
	object text     COLLATE "C" NOT NULL,
	attr   text     COLLATE "C" NOT NULL,
	vi     bigint,
	vf     double precision,
	vs     text     COLLATE "C",
	vt     timestamptz,
	vn     integer,
	PRIMARY KEY (obj, object, attr)
);
CREATE INDEX rls_attr_int ON rls_attr (obj, attr, vi, object) WHERE vi IS NOT NULL;
CREATE INDEX rls_attr_float ON rls_attr (obj, attr, vf, object) WHERE vf IS NOT NULL;
-- Strings are indexed by their first 128 characters (at most 512 bytes):
-- a whole value of up to 4096 bytes would pass PostgreSQL's limit on an
-- index entry. Searches order by (left(vs, 128), vs, object).
CREATE INDEX rls_attr_string ON rls_attr (obj, attr, left(vs, 128), object) WHERE vs IS NOT NULL;
CREATE INDEX rls_attr_time ON rls_attr (obj, attr, vt, vn, object) WHERE vt IS NOT NULL;
