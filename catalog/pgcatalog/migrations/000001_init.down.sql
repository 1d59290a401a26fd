DROP TABLE rls_attr;
DROP TABLE rls_attr_def;
DROP TABLE rls_feed;
DROP TABLE rls_map;
DROP TABLE rls_meta;
