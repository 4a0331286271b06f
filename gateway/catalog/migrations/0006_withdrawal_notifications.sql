-- Schema 6: an outbox of consent-withdrawal notifications per destination. Written in the same
-- transaction as the withdrawal, sent by the destination's forwarder with retry, so a crash or
-- an unreachable endpoint loses none. The body names studies by UID only, never the patient.
CREATE TABLE notifications (
  id              INTEGER PRIMARY KEY,
  destination     TEXT NOT NULL,
  created_at      INTEGER NOT NULL,
  body            TEXT NOT NULL,
  state           TEXT NOT NULL DEFAULT 'pending',  -- pending | sent
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX notifications_due ON notifications(destination, state, next_attempt_at);
