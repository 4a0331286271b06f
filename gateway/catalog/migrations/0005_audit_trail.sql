-- Schema 5: the audit trail, append-only and hash-chained (gateway/audit). Each entry carries the
-- hash of the one before; `dirgw audit verify` recomputes the chain. The triggers make the
-- append-only rule hold for anyone going through SQLite; the chain catches anyone who does not.
CREATE TABLE audit_events (
  seq              INTEGER PRIMARY KEY,
  at               INTEGER NOT NULL,
  type             TEXT NOT NULL,
  actor            TEXT NOT NULL,
  outcome          TEXT NOT NULL,
  study_uid        TEXT NOT NULL DEFAULT '',
  sop_instance_uid TEXT NOT NULL DEFAULT '',
  destination      TEXT NOT NULL DEFAULT '',
  patient_ref      TEXT NOT NULL DEFAULT '',
  detail           TEXT NOT NULL DEFAULT '{}',
  prev_hash        TEXT NOT NULL,
  hash             TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
