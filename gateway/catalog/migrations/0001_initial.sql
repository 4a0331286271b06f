-- Schema 1: the catalog of received objects and their delivery, the single source of truth.
-- Times are milliseconds since the Unix epoch (UTC).

-- Complete spool files, content-addressed (spool/objects/ab/<sha256>).
CREATE TABLE objects (
  sha256     TEXT PRIMARY KEY,
  size       INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Ingest-side life cycle of a study: RECEIVING until no instance arrived for stable_age, then STABLE.
CREATE TABLE studies (
  id                INTEGER PRIMARY KEY,
  study_uid         TEXT NOT NULL UNIQUE,
  state             TEXT NOT NULL,
  first_received_at INTEGER NOT NULL,
  last_received_at  INTEGER NOT NULL,
  instance_count    INTEGER NOT NULL DEFAULT 0,
  byte_count        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX studies_state ON studies(state, last_received_at);

-- One row per distinct object received for an SOP instance (a re-send with other bytes is a new version).
CREATE TABLE instances (
  id               INTEGER PRIMARY KEY,
  study_id         INTEGER NOT NULL REFERENCES studies(id),
  sop_instance_uid TEXT NOT NULL,
  sop_class_uid    TEXT NOT NULL,
  series_uid       TEXT NOT NULL,
  transfer_syntax  TEXT NOT NULL,
  modality         TEXT NOT NULL DEFAULT '',
  object_sha256    TEXT NOT NULL REFERENCES objects(sha256),
  size             INTEGER NOT NULL,
  received_at      INTEGER NOT NULL,
  calling_ae       TEXT NOT NULL DEFAULT '',
  peer             TEXT NOT NULL DEFAULT '',
  UNIQUE (sop_instance_uid, object_sha256)
);
CREATE INDEX instances_study ON instances(study_id);

-- Life cycle per study per destination (READY, SENDING, SENT, RETRY_WAIT, FAILED, HELD, ...).
CREATE TABLE study_destinations (
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  destination TEXT NOT NULL,
  state       TEXT NOT NULL,
  reason      TEXT NOT NULL DEFAULT '',
  updated_at  INTEGER NOT NULL,
  sent_at     INTEGER,
  PRIMARY KEY (study_id, destination)
) WITHOUT ROWID;
CREATE INDEX study_destinations_state ON study_destinations(destination, state);

-- Delivery per instance per destination: pending, sent or failed, with attempts and the last error.
CREATE TABLE deliveries (
  instance_id     INTEGER NOT NULL REFERENCES instances(id),
  destination     TEXT NOT NULL,
  state           TEXT NOT NULL,
  attempts        INTEGER NOT NULL DEFAULT 0,
  last_error      TEXT NOT NULL DEFAULT '',
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  sent_at         INTEGER,
  PRIMARY KEY (instance_id, destination)
) WITHOUT ROWID;
CREATE INDEX deliveries_due ON deliveries(destination, state, next_attempt_at);

-- Last success and last error per destination, for `dirgw status`.
CREATE TABLE destination_status (
  destination     TEXT PRIMARY KEY,
  last_success_at INTEGER,
  last_error_at   INTEGER,
  last_error      TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
