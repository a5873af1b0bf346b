-- The door a request came through: `http`, `mcp` or `flight` (null for records written before).
ALTER TABLE sluice_audit ADD COLUMN door text;
