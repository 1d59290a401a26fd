-- rls catalog schema, version 2: leases, the fallback of Exclusive (one
-- sender of a site's soft state among the rlsd sharing the catalog) on
-- servers without session advisory locks (CockroachDB, YugabyteDB without
-- them). A holder owns the row named after the task until expires, in the
-- database's clock, and renews it while it runs the task.
CREATE TABLE rls_lease (
	name    text        COLLATE "C" PRIMARY KEY,
	holder  text        NOT NULL,
	expires timestamptz NOT NULL
);
