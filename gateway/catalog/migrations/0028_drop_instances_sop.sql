-- Schema 28: one index fewer to write per instance received (issue 16). instances_sop (schema 13)
-- repeated the first column of the UNIQUE (sop_instance_uid, object_sha256) index that schema 1
-- already keeps, which answers every lookup by SOP Instance UID alone as well
-- (tests/unit/catalog/query_plans_test.cpp). Its B-tree, keyed by random UIDs, cost a page write
-- per instance at each group commit.
DROP INDEX IF EXISTS instances_sop;
