-- Schema 16: PACS polled with C-FIND and retrieved with C-MOVE (issue 12, ingest.pull). The
-- poll point (start of the last poll that finished) and the schedule survive a restart; each
-- study found gets a row saying whether we hold all of it, so that a complete study is never
-- asked for again and an incomplete one is, with backoff.
CREATE TABLE pull_sources (
  name         TEXT PRIMARY KEY,
  last_poll_at INTEGER NOT NULL DEFAULT 0,  -- start of the last poll (epoch ms), 0: never
  last_ok_at   INTEGER NOT NULL DEFAULT 0,  -- start of the last poll that finished: the poll point
  next_poll_at INTEGER NOT NULL DEFAULT 0,
  failures     INTEGER NOT NULL DEFAULT 0,  -- polls failed in a row (backoff)
  last_error   TEXT NOT NULL DEFAULT ''
);
CREATE TABLE pull_studies (
  source        TEXT NOT NULL,
  study_uid     TEXT NOT NULL,
  reported      INTEGER NOT NULL DEFAULT -1,  -- instances the PACS reported; -1: it did not say
  held          INTEGER NOT NULL DEFAULT 0,   -- distinct instances held after the last retrieve
  state         TEXT NOT NULL,                -- complete | incomplete
  pulls         INTEGER NOT NULL DEFAULT 0,   -- retrieves asked for, ever
  failures      INTEGER NOT NULL DEFAULT 0,   -- retrieves in a row that left it incomplete
  next_try_at   INTEGER NOT NULL DEFAULT 0,
  last_error    TEXT NOT NULL DEFAULT '',
  first_seen_at INTEGER NOT NULL,
  pulled_at     INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (source, study_uid)
);
