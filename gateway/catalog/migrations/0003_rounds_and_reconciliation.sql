-- Schema 3: send rounds, version flags, give-up age, start-up reconciliation reports.

-- A late instance for a study already sent opens a new round (a delta): only its instances go,
-- and the study's record shows every round.
ALTER TABLE study_destinations ADD COLUMN round INTEGER NOT NULL DEFAULT 1;
ALTER TABLE deliveries ADD COLUMN round INTEGER NOT NULL DEFAULT 1;
-- When the first attempt failed: with give_up_after, how long a delivery may keep failing.
ALTER TABLE deliveries ADD COLUMN first_failure_at INTEGER;
-- 'new-version': the SOP instance was received before with other bytes.
ALTER TABLE instances ADD COLUMN flags TEXT NOT NULL DEFAULT '';

-- What the daemon found when it compared spool and catalog at start.
CREATE TABLE reconciliations (
  id          INTEGER PRIMARY KEY,
  at          INTEGER NOT NULL,
  temporaries INTEGER NOT NULL,  -- half-received temporaries removed
  adopted     INTEGER NOT NULL,  -- complete objects without a row, catalogued
  quarantined INTEGER NOT NULL,  -- objects without a row that do not parse, moved aside
  missing     INTEGER NOT NULL   -- rows whose object file is gone
);
