-- Schema 15: reports received over HL7 v2 (ORU^R01, MDM^T02; issue 12). A report is kept here,
-- committed before the MLLP ACK, until it has become a DICOM object of its study (a Basic Text
-- SR or an Encapsulated PDF that then goes through the ordinary intake: spool, instances,
-- policy, life cycle). `message` is the ER7 as received (patient data: never logged); it is
-- emptied once the report is done.
--   state: waiting (no study with its accession yet), held (preliminary, held by configuration),
--          done (the object is in the catalog), superseded (a held preliminary replaced by a
--          later version), refused (matched a study of another patient, or ambiguous)
CREATE TABLE hl7_reports (
  id               INTEGER PRIMARY KEY,
  message_key      TEXT NOT NULL UNIQUE,  -- MSH-3/MSH-4/MSH-10: a message sent again is known
  report_key       TEXT NOT NULL,         -- accession and patient: the versions of one report
  accession        TEXT NOT NULL,
  status           TEXT NOT NULL,         -- preliminary, final, corrected
  state            TEXT NOT NULL,
  reason           TEXT NOT NULL DEFAULT '',
  message          BLOB NOT NULL,
  received_at      INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  study_uid        TEXT NOT NULL DEFAULT '',
  sop_instance_uid TEXT NOT NULL DEFAULT '',
  sop_class_uid    TEXT NOT NULL DEFAULT '',
  series_uid       TEXT NOT NULL DEFAULT '',
  version          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX hl7_reports_state ON hl7_reports(state, id);
CREATE INDEX hl7_reports_versions ON hl7_reports(report_key, version);

-- The Accession Number and patient of each study, read once from one of its received images, so
-- that a report finds its study without parsing objects again.
CREATE TABLE study_accessions (
  study_id     INTEGER PRIMARY KEY REFERENCES studies(id),
  accession    TEXT NOT NULL,
  patient_id   TEXT NOT NULL,
  image_sha256 TEXT NOT NULL
);
CREATE INDEX study_accessions_accession ON study_accessions(accession);
