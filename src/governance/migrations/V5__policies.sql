-- Row filters and column masks added through `/v1/policies` (those from `[[policies]]` live in
-- the config file). Every server re-reads them with the keys, every `auth.key_sync_ms`.
CREATE TABLE sluice_policies (
    name        text PRIMARY KEY,
    -- The policy as the API takes it.
    record      jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
