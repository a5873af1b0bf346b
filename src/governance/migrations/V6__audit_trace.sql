-- The W3C trace id of a query traced with `[telemetry]` on (null otherwise, and for records
-- written before).
ALTER TABLE sluice_audit ADD COLUMN trace_id text;
