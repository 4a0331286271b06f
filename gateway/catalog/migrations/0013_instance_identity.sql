-- Schema 13: the patient identity each instance arrived with (Patient ID and its issuer, as
-- received), so that an SOP Instance UID received again for another patient or another study is
-- held as an identity conflict instead of replacing the original (issue 17). '' for instances
-- recorded before schema 13: their patient identity is unknown and never compared.
ALTER TABLE instances ADD COLUMN patient_identity TEXT NOT NULL DEFAULT '';
CREATE INDEX instances_sop ON instances(sop_instance_uid);
