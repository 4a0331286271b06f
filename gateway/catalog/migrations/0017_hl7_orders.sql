-- Schema 17: STAT from HL7 orders (issue 14). An ORM^O01 / OMI^O23 records its order's priority
-- by accession number before the MLLP ACK; the policy stage notes each study's accession number
-- (0008,0050). A study and a STAT order with the same accession make the study STAT (priority 1),
-- whichever arrives first. Accession numbers are kept here to link the two and never logged.
CREATE TABLE hl7_orders (
  accession TEXT PRIMARY KEY,
  stat INTEGER NOT NULL DEFAULT 0,         -- 1 once any order for it said STAT; never lowered
  priority TEXT NOT NULL DEFAULT '',       -- the last priority value as sent (table 0027)
  control_id TEXT NOT NULL DEFAULT '',     -- MSH-10 of the last order message
  source TEXT NOT NULL DEFAULT '',         -- MSH-3/MSH-4 of the last order message
  received_at INTEGER NOT NULL
);
ALTER TABLE studies ADD COLUMN accession TEXT;
CREATE INDEX studies_by_accession ON studies(accession) WHERE accession IS NOT NULL;
