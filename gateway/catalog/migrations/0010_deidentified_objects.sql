-- Schema 10: a de-identified derived object has its own SOP Instance UID (a keyed pseudonym);
-- the sender names it and the repository's answer names it. NULL: the original's UID (coerced).
ALTER TABLE derived_objects ADD COLUMN sop_instance_uid TEXT;
