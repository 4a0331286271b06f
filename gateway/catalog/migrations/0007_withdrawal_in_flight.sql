-- Schema 7: what a withdrawal knows about requests in flight (docs/policy.md).
--
-- A delivery is 'sending' from the moment the forwarder's last check passed until the
-- repository's answer is recorded; a withdrawal leaves such rows alone, and the answer decides:
-- accepted -> 'sent' (the repository holds it), anything else -> 'withdrawn'.
-- in_doubt = 1: the daemon stopped while the row was 'sending', so the repository may hold it.
ALTER TABLE deliveries ADD COLUMN in_doubt INTEGER NOT NULL DEFAULT 0;

-- A withdrawal notification waits ('waiting') while any of the patient's instances is in flight
-- to its destination, and is written out once every answer is known, so that it lists the batch
-- that was on the wire too.
ALTER TABLE notifications ADD COLUMN patient_id INTEGER;
ALTER TABLE notifications ADD COLUMN scope TEXT NOT NULL DEFAULT '*';

-- Instances that arrived after their study was withdrawn stayed 'pending' for ever: withdrawn.
UPDATE deliveries SET state = 'withdrawn'
 WHERE state = 'pending'
   AND EXISTS (SELECT 1 FROM instances i JOIN study_destinations sd
                 ON sd.study_id = i.study_id AND sd.destination = deliveries.destination
               WHERE i.id = deliveries.instance_id AND sd.state = 'WITHDRAWN');
