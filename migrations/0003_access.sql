-- Access: API keys (only their SHA-256 is stored), the key that created each
-- link, and the creation rate-limit counters every origin instance shares.

CREATE TABLE api_keys (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL,
    key_hash   bytea       NOT NULL,           -- SHA-256 of the whole key
    key_prefix text        NOT NULL,           -- first characters, for display only
    is_admin   boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT api_keys_name_format CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
    CONSTRAINT api_keys_hash_length CHECK (octet_length(key_hash) = 32)
);
CREATE UNIQUE INDEX api_keys_name_key ON api_keys (name);
CREATE UNIQUE INDEX api_keys_hash_key ON api_keys (key_hash);

-- Origins cache verified keys briefly; a revocation (any change of a key row,
-- also by plain SQL) tells them to forget, on commit.
CREATE FUNCTION api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('api_key_changed', COALESCE(NEW.id, OLD.id)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_notify AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify();

-- NULL: created without a key (OPEN_SHORTEN=true, or before keys existed);
-- only admin keys manage such links. A key is revoked, never deleted.
ALTER TABLE links ADD COLUMN owner_key_id bigint REFERENCES api_keys (id);

-- One row per limited subject ('ip:<address or /64>', 'key:<id>') and
-- one-minute window, incremented by every creation attempt. Windows older
-- than the previous minute are deleted by the origins.
CREATE TABLE rate_limit_counters (
    bucket       text        NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer     NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limit_counters_window_idx ON rate_limit_counters (window_start);
