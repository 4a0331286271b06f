-- Schema 22: the daily reconciliation report (issue 15, docs/report.md) reads the instances
-- received in one facility day; without this index that is a scan of every instance ever kept.
CREATE INDEX instances_received ON instances(received_at);
