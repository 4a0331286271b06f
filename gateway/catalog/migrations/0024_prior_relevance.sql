-- Schema 24: the ordered exam of a prior request (issue 18, docs/priors.md), so that the worker
-- applies the body part / procedure rule after a restart too. procedures: the order's procedure
-- codes as SCHEME:CODE, one a line (OBR-4, AIS-3); body_part: an operator's --body-part.
ALTER TABLE prior_requests ADD COLUMN procedures TEXT NOT NULL DEFAULT '';
ALTER TABLE prior_requests ADD COLUMN body_part TEXT NOT NULL DEFAULT '';
