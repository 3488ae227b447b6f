-- Version 18: the audit trail moves to its own file beside the store (voisobot/audit.py), so
-- that an analyst's audit row never waits behind the intake's commits for the store's write
-- lock. Its rows were copied there, with their ids, before this runs (AuditTrail.upgrade).
DROP TABLE IF EXISTS audit;
