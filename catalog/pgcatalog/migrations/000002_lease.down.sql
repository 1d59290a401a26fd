DROP TABLE rls_lease;
