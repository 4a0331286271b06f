-- Schema 27: a catalog that stays flat at millions of instances (issue 16, docs/performance.md
-- section 5). `dirgw status` read every delivery, object and study row it counted (a scan of
-- 5 million deliveries at a large hospital's report period); it now reads small counter tables
-- kept by triggers, as schema 9 does per study, and partial indexes that hold only the rows
-- status lists (the backlog, verification errors, studies sent without report).
-- Upgrading a large catalog fills the counters once (a scan, at this migration only).

-- Deliveries per destination and state (verified, sent = awaiting verification, ...).
CREATE TABLE delivery_counts (
  destination TEXT NOT NULL,
  state       TEXT NOT NULL,
  deliveries  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (destination, state)
) WITHOUT ROWID;
INSERT INTO delivery_counts(destination, state, deliveries)
  SELECT destination, state, count(*) FROM deliveries GROUP BY destination, state;

CREATE TRIGGER delivery_counts_insert AFTER INSERT ON deliveries
BEGIN
  INSERT INTO delivery_counts(destination, state, deliveries) VALUES (NEW.destination, NEW.state, 1)
    ON CONFLICT(destination, state) DO UPDATE SET deliveries = deliveries + 1;
END;
CREATE TRIGGER delivery_counts_update AFTER UPDATE OF state ON deliveries
WHEN OLD.state IS NOT NEW.state
BEGIN
  UPDATE delivery_counts SET deliveries = deliveries - 1
   WHERE destination = OLD.destination AND state = OLD.state;
  INSERT INTO delivery_counts(destination, state, deliveries) VALUES (NEW.destination, NEW.state, 1)
    ON CONFLICT(destination, state) DO UPDATE SET deliveries = deliveries + 1;
END;
CREATE TRIGGER delivery_counts_delete AFTER DELETE ON deliveries
BEGIN
  UPDATE delivery_counts SET deliveries = deliveries - 1
   WHERE destination = OLD.destination AND state = OLD.state;
END;

-- Per study and destination, beside schema 9's counters: deliveries that count for status (every
-- version but superseded ones), and the bytes of the open ones (pending + sending).
ALTER TABLE study_destinations ADD COLUMN live_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE study_destinations ADD COLUMN open_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE study_destinations SET
  live_count = (SELECT count(*) FROM deliveries d WHERE d.study_id = study_destinations.study_id
                AND d.destination = study_destinations.destination AND d.state != 'superseded'),
  open_bytes = (SELECT coalesce(sum(i.size), 0) FROM deliveries d JOIN instances i
                ON i.id = d.instance_id WHERE d.study_id = study_destinations.study_id
                AND d.destination = study_destinations.destination
                AND d.state IN ('pending', 'sending'));

DROP TRIGGER deliveries_count_insert;
DROP TRIGGER deliveries_count_update;
DROP TRIGGER deliveries_count_delete;

CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries
BEGIN
  UPDATE study_destinations SET
    open_count = open_count + (NEW.state IN ('pending', 'sending')),
    sending_count = sending_count + (NEW.state = 'sending'),
    failed_count = failed_count + (NEW.state = 'failed'),
    live_count = live_count + (NEW.state != 'superseded'),
    open_bytes = open_bytes + CASE WHEN NEW.state IN ('pending', 'sending')
      THEN (SELECT size FROM instances WHERE id = NEW.instance_id) ELSE 0 END
  WHERE study_id = NEW.study_id AND destination = NEW.destination;
END;

CREATE TRIGGER deliveries_count_update AFTER UPDATE OF state ON deliveries
WHEN OLD.state IS NOT NEW.state
BEGIN
  UPDATE study_destinations SET
    open_count = open_count + (NEW.state IN ('pending', 'sending')) - (OLD.state IN ('pending', 'sending')),
    sending_count = sending_count + (NEW.state = 'sending') - (OLD.state = 'sending'),
    failed_count = failed_count + (NEW.state = 'failed') - (OLD.state = 'failed'),
    live_count = live_count + (NEW.state != 'superseded') - (OLD.state != 'superseded'),
    open_bytes = open_bytes + CASE WHEN (NEW.state IN ('pending', 'sending')) !=
      (OLD.state IN ('pending', 'sending')) THEN
      (CASE WHEN NEW.state IN ('pending', 'sending') THEN 1 ELSE -1 END) *
      (SELECT size FROM instances WHERE id = NEW.instance_id) ELSE 0 END
  WHERE study_id = NEW.study_id AND destination = NEW.destination;
END;

CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries
BEGIN
  UPDATE study_destinations SET
    open_count = open_count - (OLD.state IN ('pending', 'sending')),
    sending_count = sending_count - (OLD.state = 'sending'),
    failed_count = failed_count - (OLD.state = 'failed'),
    live_count = live_count - (OLD.state != 'superseded'),
    open_bytes = open_bytes - CASE WHEN OLD.state IN ('pending', 'sending')
      THEN coalesce((SELECT size FROM instances WHERE id = OLD.instance_id), 0) ELSE 0 END
  WHERE study_id = OLD.study_id AND destination = OLD.destination;
END;

-- Studies per destination and state, with those counters summed: status's per-state table and
-- its backlog (open deliveries outside QUARANTINED) without reading a study.
CREATE TABLE study_destination_counts (
  destination TEXT NOT NULL,
  state       TEXT NOT NULL,
  studies     INTEGER NOT NULL DEFAULT 0,
  deliveries  INTEGER NOT NULL DEFAULT 0,  -- live_count summed
  open        INTEGER NOT NULL DEFAULT 0,  -- open_count summed
  open_bytes  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (destination, state)
) WITHOUT ROWID;
INSERT INTO study_destination_counts(destination, state, studies, deliveries, open, open_bytes)
  SELECT destination, state, count(*), sum(live_count), sum(open_count), sum(open_bytes)
  FROM study_destinations GROUP BY destination, state;

CREATE TRIGGER study_destination_counts_insert AFTER INSERT ON study_destinations
BEGIN
  INSERT INTO study_destination_counts(destination, state, studies, deliveries, open, open_bytes)
    VALUES (NEW.destination, NEW.state, 1, NEW.live_count, NEW.open_count, NEW.open_bytes)
    ON CONFLICT(destination, state) DO UPDATE SET studies = studies + 1,
      deliveries = deliveries + excluded.deliveries, open = open + excluded.open,
      open_bytes = open_bytes + excluded.open_bytes;
END;
CREATE TRIGGER study_destination_counts_update
AFTER UPDATE OF state, live_count, open_count, open_bytes ON study_destinations
WHEN OLD.state IS NOT NEW.state OR OLD.live_count != NEW.live_count
  OR OLD.open_count != NEW.open_count OR OLD.open_bytes != NEW.open_bytes
BEGIN
  UPDATE study_destination_counts SET studies = studies - 1,
    deliveries = deliveries - OLD.live_count, open = open - OLD.open_count,
    open_bytes = open_bytes - OLD.open_bytes
   WHERE destination = OLD.destination AND state = OLD.state;
  INSERT INTO study_destination_counts(destination, state, studies, deliveries, open, open_bytes)
    VALUES (NEW.destination, NEW.state, 1, NEW.live_count, NEW.open_count, NEW.open_bytes)
    ON CONFLICT(destination, state) DO UPDATE SET studies = studies + 1,
      deliveries = deliveries + excluded.deliveries, open = open + excluded.open,
      open_bytes = open_bytes + excluded.open_bytes;
END;
CREATE TRIGGER study_destination_counts_delete AFTER DELETE ON study_destinations
BEGIN
  UPDATE study_destination_counts SET studies = studies - 1,
    deliveries = deliveries - OLD.live_count, open = open - OLD.open_count,
    open_bytes = open_bytes - OLD.open_bytes
   WHERE destination = OLD.destination AND state = OLD.state;
END;

-- Studies per ingest state (RECEIVING, STABLE), with their instances and bytes.
CREATE TABLE study_counts (
  state     TEXT PRIMARY KEY,
  studies   INTEGER NOT NULL DEFAULT 0,
  instances INTEGER NOT NULL DEFAULT 0,
  bytes     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO study_counts(state, studies, instances, bytes)
  SELECT state, count(*), sum(instance_count), sum(byte_count) FROM studies GROUP BY state;

CREATE TRIGGER study_counts_insert AFTER INSERT ON studies
BEGIN
  INSERT INTO study_counts(state, studies, instances, bytes)
    VALUES (NEW.state, 1, NEW.instance_count, NEW.byte_count)
    ON CONFLICT(state) DO UPDATE SET studies = studies + 1,
      instances = instances + excluded.instances, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER study_counts_update AFTER UPDATE OF state, instance_count, byte_count ON studies
WHEN OLD.state IS NOT NEW.state OR OLD.instance_count != NEW.instance_count
  OR OLD.byte_count != NEW.byte_count
BEGIN
  UPDATE study_counts SET studies = studies - 1, instances = instances - OLD.instance_count,
    bytes = bytes - OLD.byte_count WHERE state = OLD.state;
  INSERT INTO study_counts(state, studies, instances, bytes)
    VALUES (NEW.state, 1, NEW.instance_count, NEW.byte_count)
    ON CONFLICT(state) DO UPDATE SET studies = studies + 1,
      instances = instances + excluded.instances, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER study_counts_delete AFTER DELETE ON studies
BEGIN
  UPDATE study_counts SET studies = studies - 1, instances = instances - OLD.instance_count,
    bytes = bytes - OLD.byte_count WHERE state = OLD.state;
END;

-- Spool objects by retention: purged (file removed), verified (kept until retention), held.
CREATE TABLE object_counts (
  kind    TEXT PRIMARY KEY,
  objects INTEGER NOT NULL DEFAULT 0,
  bytes   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO object_counts(kind, objects, bytes)
  SELECT CASE WHEN purged_at IS NOT NULL THEN 'purged' WHEN verified_at IS NOT NULL
         THEN 'verified' ELSE 'held' END AS k, count(*), sum(size) FROM objects GROUP BY k;

CREATE TRIGGER object_counts_insert AFTER INSERT ON objects
BEGIN
  INSERT INTO object_counts(kind, objects, bytes)
    VALUES (CASE WHEN NEW.purged_at IS NOT NULL THEN 'purged' WHEN NEW.verified_at IS NOT NULL
            THEN 'verified' ELSE 'held' END, 1, NEW.size)
    ON CONFLICT(kind) DO UPDATE SET objects = objects + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER object_counts_update AFTER UPDATE OF purged_at, verified_at, size ON objects
BEGIN
  UPDATE object_counts SET objects = objects - 1, bytes = bytes - OLD.size
   WHERE kind = CASE WHEN OLD.purged_at IS NOT NULL THEN 'purged'
                     WHEN OLD.verified_at IS NOT NULL THEN 'verified' ELSE 'held' END;
  INSERT INTO object_counts(kind, objects, bytes)
    VALUES (CASE WHEN NEW.purged_at IS NOT NULL THEN 'purged' WHEN NEW.verified_at IS NOT NULL
            THEN 'verified' ELSE 'held' END, 1, NEW.size)
    ON CONFLICT(kind) DO UPDATE SET objects = objects + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER object_counts_delete AFTER DELETE ON objects
BEGIN
  UPDATE object_counts SET objects = objects - 1, bytes = bytes - OLD.size
   WHERE kind = CASE WHEN OLD.purged_at IS NOT NULL THEN 'purged'
                     WHEN OLD.verified_at IS NOT NULL THEN 'verified' ELSE 'held' END;
END;

-- Only the rows status lists, so that a query reads what it shows and nothing else.
CREATE INDEX deliveries_open ON deliveries(destination, instance_id)
  WHERE state IN ('pending', 'sending');
CREATE INDEX deliveries_resent ON deliveries(destination) WHERE resends > 0;
CREATE INDEX study_destinations_verify_error ON study_destinations(destination)
  WHERE verify_error != '';
CREATE INDEX study_destinations_without_report ON study_destinations(destination)
  WHERE report_note LIKE 'sent without report%';
-- Start-up reconciliation: the objects that still have a spool file, and derived copies by hash.
CREATE INDEX objects_unpurged ON objects(sha256) WHERE purged_at IS NULL;
CREATE INDEX derived_objects_sha ON derived_objects(sha256);
-- A missing object's instances (flag_missing_object) and retention's object -> instances: by
-- hash, not a scan of every delivery (found by tests/unit/catalog/query_plans_test.cpp).
CREATE INDEX instances_object ON instances(object_sha256);

-- Each start records itself; an ordered stop closes its row. A start after a run without a
-- stopped_at (kill -9, power cut, crash) reconciles the whole spool; after an ordered stop only
-- what can have been interrupted (spool/tmp/, objects still to be sent).
CREATE TABLE daemon_runs (
  id         INTEGER PRIMARY KEY,
  started_at INTEGER NOT NULL,
  stopped_at INTEGER
);
