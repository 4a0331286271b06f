-- Schema 8: why a study/destination row is where it is, as a code for decisions, beside the
-- words for people (reason). Decisions never compare the English text.
ALTER TABLE study_destinations ADD COLUMN reason_code TEXT NOT NULL DEFAULT '';
UPDATE study_destinations SET reason_code = 'no-consent'
 WHERE state = 'HELD' AND reason = 'no consent recorded';
UPDATE study_destinations SET reason_code = 'consent-withdrawn' WHERE state = 'WITHDRAWN';
UPDATE study_destinations SET reason_code = 'validation' WHERE state = 'QUARANTINED';
