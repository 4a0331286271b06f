-- Schema 30: the digest of an HL7 report's content (every segment after MSH, as received), so
-- that a message is known by its content as well as by its control ID (docs/hl7.md, "The same
-- message again"): a control ID used again for another report (after an engine's counter was
-- reset) no longer hides that report, and a report resent under a new control ID does not become
-- one more identical version. '' for rows stored before this schema.
-- (Looked up with the report's key: the index on (report_key, version) serves it.)
ALTER TABLE hl7_reports ADD COLUMN body_sha256 TEXT NOT NULL DEFAULT '';
