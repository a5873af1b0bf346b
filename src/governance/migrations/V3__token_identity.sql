-- Callers with a bearer token from an OpenID issuer: the issuer and subject of the token (never
-- the token). Their key_id is the subject's stable id (`sub_` and 16 hex digits).
ALTER TABLE sluice_audit ADD COLUMN issuer text, ADD COLUMN subject text;
