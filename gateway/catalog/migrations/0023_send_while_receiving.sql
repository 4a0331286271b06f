-- Schema 23: send_while_receiving (issue 16). Per delivery, whether the instance was checked on
-- its own while its study was still RECEIVING: 0 not checked, 1 cleared to go while receiving
-- (its checks passed and consent was read in the transaction that set it), 2 held back until
-- the study-level decision (a finding, no consent, or another instance of the study failed).
-- Only a destination with send_while_receiving: true ever sets it; the forwarder sends a
-- RECEIVING study's delivery only when it is 1.
ALTER TABLE deliveries ADD COLUMN early INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_early_unchecked ON deliveries(destination, study_id)
  WHERE early = 0 AND state = 'pending';
