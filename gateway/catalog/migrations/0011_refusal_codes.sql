-- Schema 11: why the front door refused someone, as a code (caller-unknown, caller-address,
-- caller-certificate, tls-handshake, ...) beside the words for people. Older rows keep ''.
ALTER TABLE refusals ADD COLUMN reason_code TEXT NOT NULL DEFAULT '';
