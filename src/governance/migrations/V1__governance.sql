-- Sluice's metadata: API keys, the audit log and usage per key per day.
-- Applied by `sluice serve` and `sluice keys` at start (refinery); never edit an applied file,
-- add V2__... instead.

CREATE TABLE sluice_keys (
    id          text PRIMARY KEY,
    -- The whole record as Sluice reads it (digests only, never a secret).
    record      jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sluice_audit (
    id           uuid PRIMARY KEY,
    at           timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('auth', 'query')),
    key_id       text,
    client       text,
    user_agent   text,
    outcome      text NOT NULL,
    query_id     text,
    operation    text,
    sql_text     text,
    sql_sha256   text,
    tables       jsonb,
    sources      jsonb,
    row_count    bigint,
    byte_count   bigint,
    duration_ms  bigint,
    error_code   text
);
CREATE INDEX sluice_audit_key_at ON sluice_audit (key_id, at);
CREATE INDEX sluice_audit_query ON sluice_audit (query_id);

CREATE TABLE sluice_usage (
    key_id      text NOT NULL,
    day         date NOT NULL,
    queries     bigint NOT NULL,
    row_count   bigint NOT NULL,
    byte_count  bigint NOT NULL,
    errors      bigint NOT NULL,
    PRIMARY KEY (key_id, day)
);
