-- A new link is announced on its own channel, link_created, not on
-- link_changed. A cached answer for a code can only be made stale by an
-- update or a delete; an insert can only make a cached "no such code" wrong.
-- Origins drop just their negative entry on link_created and keep the
-- positive one their first lookup of the new code may already have loaded
-- (a campaign's first burst then costs one lookup, not one per notification
-- that arrives while it runs). The exporter's watch only needs changes of
-- links that may be exported, which a brand-new code is not.
CREATE OR REPLACE FUNCTION links_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('link_changed', OLD.code);
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('link_created', NEW.code);
    ELSE
        PERFORM pg_notify('link_changed', NEW.code);
    END IF;
    RETURN NULL;
END;
$$;
