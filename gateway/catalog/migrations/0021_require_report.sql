-- Schema 21: require_report per destination (issue 12, docs/hl7.md "Completeness").
--
-- What the study's report meant for this destination, in our words, shown by dirgw study and
-- kept through sending (the state's reason is not): '' (the destination does not wait for
-- reports), "waiting for report", "with its final report", "sent without report after 4h".
-- A study waiting is HELD with reason_code 'waiting-report'.
ALTER TABLE study_destinations ADD COLUMN report_note TEXT NOT NULL DEFAULT '';
CREATE INDEX study_destinations_reason ON study_destinations(state, reason_code);

-- hl7_reports.state gains 'expired' (no new column): a report that waited for its images beyond
-- ingest.hl7.reports.max_waiting / max_waiting_age, kept with its message and reason.
