-- Schema 2: what ingest refused (bad input, unknown callers, disk floor), so that status can say
-- why a PACS saw a failure. No patient values: reasons are our own words, peers are addresses.
CREATE TABLE refusals (
  id         INTEGER PRIMARY KEY,
  at         INTEGER NOT NULL,
  source     TEXT NOT NULL,          -- 'dicom', later 'folder', 'hl7'
  calling_ae TEXT NOT NULL DEFAULT '',
  peer       TEXT NOT NULL DEFAULT '',
  reason     TEXT NOT NULL
);
CREATE INDEX refusals_at ON refusals(at);
