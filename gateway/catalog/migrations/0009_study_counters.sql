-- Schema 9: per-study delivery counters, kept by triggers as deliveries change, so that a
-- study's state after a batch is read from its row instead of recounting every delivery of the
-- study (which made one large study O(n^2) over its batches). deliveries.study_id (copied from
-- the instance, which never changes study) lets the "anything due now?" question be one index
-- seek.
ALTER TABLE deliveries ADD COLUMN study_id INTEGER NOT NULL DEFAULT 0;
UPDATE deliveries SET study_id = (SELECT i.study_id FROM instances i WHERE i.id = deliveries.instance_id);
CREATE INDEX deliveries_study ON deliveries(study_id, destination, state, next_attempt_at);

ALTER TABLE study_destinations ADD COLUMN open_count INTEGER NOT NULL DEFAULT 0;     -- pending + sending
ALTER TABLE study_destinations ADD COLUMN sending_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE study_destinations ADD COLUMN failed_count INTEGER NOT NULL DEFAULT 0;
UPDATE study_destinations SET
  open_count = (SELECT count(*) FROM deliveries d WHERE d.study_id = study_destinations.study_id
                AND d.destination = study_destinations.destination AND d.state IN ('pending', 'sending')),
  sending_count = (SELECT count(*) FROM deliveries d WHERE d.study_id = study_destinations.study_id
                   AND d.destination = study_destinations.destination AND d.state = 'sending'),
  failed_count = (SELECT count(*) FROM deliveries d WHERE d.study_id = study_destinations.study_id
                  AND d.destination = study_destinations.destination AND d.state = 'failed');

-- A delivery without its study would escape the counters: refuse it loudly.
CREATE TRIGGER deliveries_need_study BEFORE INSERT ON deliveries WHEN NEW.study_id = 0
BEGIN
  SELECT RAISE(ABORT, 'deliveries.study_id is required');
END;

CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries
BEGIN
  UPDATE study_destinations SET
    open_count = open_count + (NEW.state IN ('pending', 'sending')),
    sending_count = sending_count + (NEW.state = 'sending'),
    failed_count = failed_count + (NEW.state = 'failed')
  WHERE study_id = NEW.study_id AND destination = NEW.destination;
END;

CREATE TRIGGER deliveries_count_update AFTER UPDATE OF state ON deliveries
WHEN OLD.state IS NOT NEW.state
BEGIN
  UPDATE study_destinations SET
    open_count = open_count + (NEW.state IN ('pending', 'sending')) - (OLD.state IN ('pending', 'sending')),
    sending_count = sending_count + (NEW.state = 'sending') - (OLD.state = 'sending'),
    failed_count = failed_count + (NEW.state = 'failed') - (OLD.state = 'failed')
  WHERE study_id = NEW.study_id AND destination = NEW.destination;
END;

CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries
BEGIN
  UPDATE study_destinations SET
    open_count = open_count - (OLD.state IN ('pending', 'sending')),
    sending_count = sending_count - (OLD.state = 'sending'),
    failed_count = failed_count - (OLD.state = 'failed')
  WHERE study_id = OLD.study_id AND destination = OLD.destination;
END;
