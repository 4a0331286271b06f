-- Schema 25: catalog row pruning (issue 15, retention.report_days, docs/verification.md). The rows
-- of a finished study (every destination verified or given up, every delivery final, every object
-- purged from the spool) go once it is older than the report period; its figures go first into
-- pruned_counts, which the daily report adds to what the catalog still holds, so that an old
-- day's report says the same. Buckets are received_at floored to 15 minutes (UTC epoch ms): a
-- facility day (local midnight to local midnight) is a whole number of buckets in every zone.
-- kind: 'total' (name ''), 'source' (name: dicom:<AE>, folder:<name> ...) or 'destination'
-- (name: the destination; outcome: the report column, or '' for the row holding its studies).
-- A study is counted (studies) in the bucket of its first instance.
CREATE TABLE pruned_counts (
  bucket    INTEGER NOT NULL,
  kind      TEXT NOT NULL,
  name      TEXT NOT NULL,
  outcome   TEXT NOT NULL,
  instances INTEGER NOT NULL DEFAULT 0,
  studies   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, kind, name, outcome)
) WITHOUT ROWID;
