-- Schema 12: a per-study priority for forwarding (issue 14). 0 is routine; 1 STAT by a
-- configured rule (an attribute value or a calling AE, set by the policy stage); 2 STAT by an
-- operator (dirgw prioritize). STAT studies go before older routine work and, for destinations
-- with stat_bypass, outside their upload windows.
ALTER TABLE studies ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
