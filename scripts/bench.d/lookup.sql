-- pgbench script (scripts/bench): the origin's redirect lookup, statement
-- `link_find` of origin/pg_link_store.cc, for one of the seeded codes b1..b10000
-- (:nlinks is set with pgbench -D nlinks=N).
\set id random(1, :nlinks)
SELECT code, target, status, forward_query,
       floor(extract(epoch FROM expires_at) * 1000)::bigint,
       disabled,
       floor(extract(epoch FROM created_at) * 1000)::bigint,
       floor(extract(epoch FROM updated_at) * 1000)::bigint
  FROM links WHERE code = 'b' || :id;
