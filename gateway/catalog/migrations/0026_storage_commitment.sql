-- Schema 26: storage commitment transactions (issue 15, docs/verification.md). For a `type:
-- dimse` destination with `verify: storage-commitment`, each N-ACTION-RQ dirgw sends is
-- recorded here before it goes, under the Transaction UID dirgw generated, so that an
-- N-EVENT-REPORT arriving later (on another association, after a restart) is matched to a
-- transaction dirgw issued, and one never answered is seen past its deadline, shown and asked
-- again. state: pending (asked, no answer yet) | answered | expired (deadline passed
-- unanswered; a late answer is still applied) | failed (the N-ACTION itself did not go through).
CREATE TABLE commitment_transactions (
  transaction_uid TEXT PRIMARY KEY,
  destination TEXT NOT NULL,
  study_id INTEGER NOT NULL REFERENCES studies(id),
  instances INTEGER NOT NULL,
  requested_at INTEGER NOT NULL,
  deadline INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  answered_at INTEGER,
  committed INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX commitment_transactions_study ON commitment_transactions(study_id, destination, state);
