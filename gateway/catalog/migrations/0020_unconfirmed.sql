-- Schema 20: objects the repository takes but never confirms (issue 17, item 10;
-- docs/hostile-input.md). A delivery whose STOW-RS answers keep giving no evidence of storage,
-- or that verification keeps finding missing, ends 'failed' with unconfirmed = 1 once the limit
-- is spent, and its study is QUARANTINED (reason code repository-unconfirmed) for a person to
-- look at, not FAILED: sending it again unchanged would not change the answer. Releasing the
-- study from quarantine sends those deliveries again.
ALTER TABLE deliveries ADD COLUMN unconfirmed INTEGER NOT NULL DEFAULT 0;
