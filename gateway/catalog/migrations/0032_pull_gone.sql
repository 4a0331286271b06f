-- Schema 32: a study left incomplete that the PACS no longer holds (deleted there, merged into
-- another) was asked for again at retry.max for ever. Now a study out of the poll's window is
-- asked for by its UID before each retrieve; a PACS answering no match three times in a row
-- makes it 'gone' (state), not asked for again unless a poll finds it again.
ALTER TABLE pull_studies ADD COLUMN not_found INTEGER NOT NULL DEFAULT 0;
