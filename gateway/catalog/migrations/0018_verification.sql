-- Schema 18: proof of delivery and retention (issue 15, docs/verification.md).
--
-- A delivery the repository acknowledged ('sent') is checked later against what the repository
-- lists (QIDO-RS): 'verified' when it lists the instance with the same SOP Class; back to
-- 'pending' (resends + 1) when it does not; 'failed' when it keeps losing it or lists it as
-- something else. A check that cannot run is retried at verify_next_at and its reason shown.
ALTER TABLE deliveries ADD COLUMN verified_at INTEGER;
ALTER TABLE deliveries ADD COLUMN verify_next_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN verify_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN resends INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_verify ON deliveries(destination, state, sent_at);

-- Why the last verification of a study for a destination could not run ('' when it ran).
ALTER TABLE study_destinations ADD COLUMN verify_error TEXT NOT NULL DEFAULT '';
ALTER TABLE study_destinations ADD COLUMN verified_at INTEGER;

-- Retention: the spool file is gone (removed after every destination verified its instance);
-- the catalog rows stay for the report period.
ALTER TABLE objects ADD COLUMN purged_at INTEGER;
ALTER TABLE objects ADD COLUMN verified_at INTEGER;  -- when the last destination verified it
CREATE INDEX objects_retention ON objects(purged_at, verified_at);
