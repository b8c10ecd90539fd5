-- Links: one row per short code. Codes are stored lowercase and never reused.
CREATE TABLE links (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code          text        NOT NULL,
    target        text        NOT NULL,
    status        smallint    NOT NULL DEFAULT 307,
    forward_query boolean     NOT NULL DEFAULT true,
    expires_at    timestamptz,
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT links_code_format CHECK (code ~ '^[a-z0-9_-]{1,64}$'),
    CONSTRAINT links_status_redirect CHECK (status IN (301, 302, 307, 308)),
    CONSTRAINT links_target_length CHECK (octet_length(target) BETWEEN 1 AND 2048)
);

-- Unique on the lowercase form; the format check above already forces
-- lowercase, so a plain unique index serves the case-insensitive lookup.
CREATE UNIQUE INDEX links_code_key ON links (code);

-- The exporter selects stable links by last change.
CREATE INDEX links_updated_at_idx ON links (updated_at);

-- Every change bumps updated_at (whoever writes the row) and tells listeners
-- (origin caches, the exporter) which code changed, on commit.
CREATE FUNCTION links_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END;
$$;

CREATE TRIGGER links_touch BEFORE UPDATE ON links
    FOR EACH ROW EXECUTE FUNCTION links_touch();

CREATE FUNCTION links_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('link_changed', OLD.code);
    ELSE
        PERFORM pg_notify('link_changed', NEW.code);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER links_notify AFTER INSERT OR UPDATE OR DELETE ON links
    FOR EACH ROW EXECUTE FUNCTION links_notify();
