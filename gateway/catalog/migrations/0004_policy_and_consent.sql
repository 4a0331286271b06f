-- Schema 4: consent registry, the patient identifiers of each study, policy findings
-- (quarantine reasons), the MRN -> health number table for coercion, derived objects.
-- These tables hold patient identifiers: the catalog is PHI, like the spool; none of it is ever
-- logged (logs use keyed HMAC tags).

-- A patient is whatever set of identifiers consent messages and studies have tied together.
CREATE TABLE patients (
  id         INTEGER PRIMARY KEY,
  created_at INTEGER NOT NULL
);
CREATE TABLE patient_identifiers (
  patient_id INTEGER NOT NULL REFERENCES patients(id),
  kind       TEXT NOT NULL,   -- 'hn' (health number) | 'mrn' (local medical record number)
  issuer     TEXT NOT NULL,   -- e.g. 'ON' for an Ontario health number, 'LGH-MRN'
  value      TEXT NOT NULL,
  UNIQUE (kind, issuer, value)
);
CREATE INDEX patient_identifiers_patient ON patient_identifiers(patient_id);

-- Every consent change, never overwritten: the latest event per (patient, scope) decides.
CREATE TABLE consent_events (
  id          INTEGER PRIMARY KEY,
  patient_id  INTEGER NOT NULL REFERENCES patients(id),
  at          INTEGER NOT NULL,
  decision    TEXT NOT NULL,            -- 'grant' | 'withdraw'
  scope       TEXT NOT NULL DEFAULT '*', -- a destination name, or '*' for all
  source      TEXT NOT NULL,            -- 'cli' | 'csv' | 'hl7'
  operator    TEXT NOT NULL DEFAULT '', -- who (CLI user, HL7 sending facility)
  reference   TEXT NOT NULL DEFAULT ''  -- HL7 message control ID, CSV file and line
);
CREATE INDEX consent_events_patient ON consent_events(patient_id, scope, id);

-- The identifiers each study carries (read from its first instance at policy time).
CREATE TABLE study_identifiers (
  study_id INTEGER NOT NULL REFERENCES studies(id),
  kind     TEXT NOT NULL,
  issuer   TEXT NOT NULL,
  value    TEXT NOT NULL,
  UNIQUE (study_id, kind, issuer, value)
);
CREATE INDEX study_identifiers_value ON study_identifiers(kind, issuer, value);

-- Why a study was quarantined: every finding of every instance, not only the first.
CREATE TABLE policy_findings (
  id               INTEGER PRIMARY KEY,
  study_id         INTEGER NOT NULL REFERENCES studies(id),
  sop_instance_uid TEXT NOT NULL,
  code             TEXT NOT NULL,
  tag              TEXT NOT NULL DEFAULT '',
  message          TEXT NOT NULL,
  at               INTEGER NOT NULL
);
CREATE INDEX policy_findings_study ON policy_findings(study_id);

-- MRN -> health number, fed by HL7 ADT and CSV, for coercion of studies that lack one.
CREATE TABLE mrn_health_numbers (
  mrn_issuer    TEXT NOT NULL,
  mrn           TEXT NOT NULL,
  health_number TEXT NOT NULL,
  hn_issuer     TEXT NOT NULL DEFAULT 'ON',
  source        TEXT NOT NULL,
  updated_at    INTEGER NOT NULL,
  PRIMARY KEY (mrn_issuer, mrn)
) WITHOUT ROWID;

-- Per-destination output of coercion / de-identification: deterministic, so a retry resends
-- identical bytes. The sender sends the derived object instead of the original.
CREATE TABLE derived_objects (
  instance_id INTEGER NOT NULL REFERENCES instances(id),
  destination TEXT NOT NULL,
  sha256      TEXT NOT NULL,
  size        INTEGER NOT NULL,
  kind        TEXT NOT NULL,   -- 'coerced'
  PRIMARY KEY (instance_id, destination)
) WITHOUT ROWID;

-- Deliveries of a withdrawn study are 'withdrawn', never sent.
