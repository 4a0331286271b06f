-- Schema 29: an operator's review of a study quarantined for a de-identifying destination because
-- its images may carry burned-in text (docs/deidentification.md, "An operator's review"). The
-- operator looked at the pixel data and released it with `dirgw quarantine release UID
-- --reviewed-burned-in DEST`; the burned-in screen is then waived for that destination and for
-- the instances the study held at the review (id <= through_instance_id): an instance arriving
-- later is screened as usual. One row per study and destination (a second review replaces it).
CREATE TABLE deid_reviews (
  study_id INTEGER NOT NULL REFERENCES studies(id),
  destination TEXT NOT NULL,
  through_instance_id INTEGER NOT NULL,
  reviewed_at INTEGER NOT NULL,
  operator TEXT NOT NULL,
  PRIMARY KEY (study_id, destination)
);
