-- pgbench script (scripts/bench): the origin's create, statement `link_insert`
-- of origin/pg_link_store.cc, one row per transaction with a random code.
\set id random(1, 1000000000000)
INSERT INTO links (code, target, status, forward_query, expires_at)
VALUES ('p' || :id, 'https://example.com/bench/created?utm_source=bench', 307, true, NULL)
ON CONFLICT (code) DO NOTHING
RETURNING code, target, status, forward_query,
          floor(extract(epoch FROM expires_at) * 1000)::bigint,
          disabled,
          floor(extract(epoch FROM created_at) * 1000)::bigint,
          floor(extract(epoch FROM updated_at) * 1000)::bigint;
