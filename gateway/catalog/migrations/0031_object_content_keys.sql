-- Schema 31: what an object holds, apart from its bytes (ingest::content_key_file: the elements
-- and the pixels, whatever the meta header, VR form or transfer syntax), so that an SOP instance
-- received again through another door or in another transfer syntax is known as the same
-- instance, not a new version to send again (docs/ingest-dicom.md, "The same instance in other
-- bytes"). Computed only when needed: when an SOP Instance UID arrives again with other bytes,
-- and before a verified object's file is removed (the file is gone afterwards). NULL until then.
ALTER TABLE objects ADD COLUMN content_key TEXT;
