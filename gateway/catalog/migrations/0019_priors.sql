-- Schema 19: priors from the regional repository into the local PACS (issue 18, docs/priors.md).
-- prior_requests is the durable queue: an HL7 trigger or `dirgw priors fetch` records a request
-- (before the MLLP ACK), the priors worker takes it up, retries it, and records the outcome.
-- prior_studies holds one row per study ever fetched (or deliberately skipped), so that a prior
-- is never fetched twice. Patient identifiers are kept here as in the consent registry and never
-- logged; patient_ref is the keyed HMAC tag the audit trail uses.
CREATE TABLE prior_requests (
  id INTEGER PRIMARY KEY,
  patient_ref TEXT NOT NULL,
  mrn TEXT NOT NULL,
  mrn_issuer TEXT NOT NULL DEFAULT '',
  health_number TEXT NOT NULL DEFAULT '',
  health_number_issuer TEXT NOT NULL DEFAULT '',
  trigger_kind TEXT NOT NULL,               -- hl7 | operator
  trigger_ref TEXT NOT NULL DEFAULT '',     -- "ORM^O01 MSG00001", or the operator
  actor TEXT NOT NULL DEFAULT '',           -- the audit trail's actor: hl7:RIS@host:port, user:alice(uid 1000)
  since_days INTEGER NOT NULL DEFAULT 0,    -- 0: the configured rules.years
  state TEXT NOT NULL DEFAULT 'pending',    -- pending | done | refused | failed
  attempts INTEGER NOT NULL DEFAULT 0,
  next_try_at INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  found INTEGER NOT NULL DEFAULT 0,         -- studies the search returned (after the rules)
  fetched INTEGER NOT NULL DEFAULT 0,       -- studies stored into the PACS by this request
  created_at INTEGER NOT NULL,
  done_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX prior_requests_due ON prior_requests(next_try_at) WHERE state = 'pending';
CREATE TABLE prior_studies (
  study_uid TEXT PRIMARY KEY,
  request_id INTEGER NOT NULL REFERENCES prior_requests(id),
  patient_ref TEXT NOT NULL,
  mrn TEXT NOT NULL,
  mrn_issuer TEXT NOT NULL DEFAULT '',
  study_date TEXT NOT NULL DEFAULT '',
  modalities TEXT NOT NULL DEFAULT '',
  instances INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,                      -- stored | in-pacs | skipped
  reason TEXT NOT NULL DEFAULT '',          -- for skipped: this-facility
  trigger_ref TEXT NOT NULL DEFAULT '',     -- "ORM^O01 MSG00001", or the operator
  actor TEXT NOT NULL DEFAULT '',           -- the audit trail's actor: hl7:RIS@host:port, user:alice(uid 1000)
  fetched_at INTEGER NOT NULL
);
CREATE INDEX prior_studies_by_mrn ON prior_studies(mrn_issuer, mrn);
