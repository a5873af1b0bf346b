-- Sources added through `/v1/sources` (those from `[[sources]]` live in the config file). Each
-- entry is the JSON of one `[[sources]]` entry, with `${VAR}` references unexpanded: secrets
-- are never stored here, each server reads them from its own environment.
CREATE TABLE sluice_sources (
    name        text PRIMARY KEY,
    record      jsonb NOT NULL,
    -- The registry version that last wrote this entry.
    version     bigint NOT NULL,
    updated_by  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row: the registry's version, bumped by every change in the change's transaction. Every
-- server reads it each `metadata.registry_sync_ms` and re-reads the entries when it moved.
CREATE TABLE sluice_registry (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    version  bigint NOT NULL
);
INSERT INTO sluice_registry (id, version) VALUES (true, 0);

-- An administrative change (a source created, replaced or deleted, the config reloaded): what
-- changed, before and after, without secrets.
ALTER TABLE sluice_audit ADD COLUMN change jsonb;
ALTER TABLE sluice_audit DROP CONSTRAINT sluice_audit_kind_check,
    ADD CONSTRAINT sluice_audit_kind_check CHECK (kind IN ('auth', 'query', 'admin'));
