-- Schema 14: where each object came from, shown by `dirgw study`: "dicom:<calling AE>" for a
-- C-STORE, "folder:<name>" for a file taken from a watched export folder (issue 12). Rows from
-- before this schema were all received over C-STORE.
ALTER TABLE instances ADD COLUMN source TEXT NOT NULL DEFAULT '';
UPDATE instances SET source = 'dicom:' || calling_ae WHERE source = '' AND calling_ae != '';
