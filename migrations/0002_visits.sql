-- Visits: raw rows for VISITS_RETENTION_DAYS, counts for ever, and the
-- ingester's bookkeeping (checkpoints, dead letters). Written only by the
-- ingester (origin/ingester.h, origin/visit_store.h); read by stats and the
-- exporter, which never scan raw visits.

-- One row per visit line. Partitioned by day (UTC); the ingester creates the
-- daily partitions visits_YYYYMMDD on demand and drops those older than the
-- retention. Rows outside the window of daily partitions (far past, future)
-- land in visits_default.
CREATE TABLE visits (
    time          timestamptz NOT NULL,
    code          text        NOT NULL,
    ip            inet,                      -- NULL: not stored (VISIT_IP_MODE) or unparsable
    user_agent    text        NOT NULL DEFAULT '',
    referrer      text        NOT NULL DEFAULT '',
    referrer_host text        NOT NULL DEFAULT '',  -- lowercase host of referrer, '' when none
    status        smallint    NOT NULL,
    source        text        NOT NULL,      -- 'origin' or 'edge'
    bot           boolean     NOT NULL,
    orphan        boolean     NOT NULL,      -- code was not in links when ingested
    CONSTRAINT visits_source_known CHECK (source IN ('origin', 'edge'))
) PARTITION BY RANGE (time);

CREATE TABLE visits_default PARTITION OF visits DEFAULT;

-- Raw lookups of one code over a time range (operators, audits).
CREATE INDEX visits_code_time_idx ON visits (code, time);

-- Clicks per link per hour (UTC), kept for ever. A click is a visit to a
-- known code answered with a redirect (3xx); bots are counted apart.
CREATE TABLE visit_counts_hourly (
    code   text        NOT NULL,
    hour   timestamptz NOT NULL,
    source text        NOT NULL,
    humans bigint      NOT NULL DEFAULT 0,
    bots   bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (code, hour, source)
);

-- The exporter's hotness: all codes over a recent window.
CREATE INDEX visit_counts_hourly_hour_idx ON visit_counts_hourly (hour);

-- The same clicks per UTC day: what stats read, so a year is at most 732
-- rows per link whatever its traffic. Written with the hourly counts.
CREATE TABLE visit_counts_daily (
    code   text   NOT NULL,
    day    date   NOT NULL,
    source text   NOT NULL,
    humans bigint NOT NULL DEFAULT 0,
    bots   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (code, day, source)
);

-- Visits to codes that were not links when ingested (broken links being
-- clicked), any status. Same shape as visit_counts_hourly.
CREATE TABLE orphan_counts_hourly (
    code   text        NOT NULL,
    hour   timestamptz NOT NULL,
    source text        NOT NULL,
    humans bigint      NOT NULL DEFAULT 0,
    bots   bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (code, hour, source)
);

CREATE INDEX orphan_counts_hourly_hour_idx ON orphan_counts_hourly (hour);

-- Human clicks per link, UTC day and referrer host (empty hosts not stored).
CREATE TABLE referrer_counts_daily (
    code   text   NOT NULL,
    day    date   NOT NULL,
    host   text   NOT NULL,
    clicks bigint NOT NULL,
    PRIMARY KEY (code, day, host)
);

-- The same per calendar month (month = its first day), so that top
-- referrers over a long range read whole months here and only the partial
-- months at its ends from the daily table.
CREATE TABLE referrer_counts_monthly (
    code   text   NOT NULL,
    month  date   NOT NULL,
    host   text   NOT NULL,
    clicks bigint NOT NULL,
    PRIMARY KEY (code, month, host),
    CONSTRAINT referrer_counts_monthly_first_day CHECK (extract(day FROM month) = 1)
);

-- All-time clicks per link and the time of its last human click.
CREATE TABLE link_visit_totals (
    code          text   PRIMARY KEY,
    humans        bigint NOT NULL DEFAULT 0,
    bots          bigint NOT NULL DEFAULT 0,
    last_click_at timestamptz
);

-- Where each ingest source stands in each of its files, updated in the same
-- transaction as the rows it covers. file_key is the journal file's
-- "<prefix>-<seq>" or the followed log file's path.
CREATE TABLE ingest_checkpoints (
    source            text        NOT NULL,
    file_key          text        NOT NULL,
    inode             bigint      NOT NULL,
    byte_offset       bigint      NOT NULL,
    fingerprint       bigint      NOT NULL,  -- hash of the first fingerprint_bytes bytes
    fingerprint_bytes integer     NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, file_key),
    CONSTRAINT ingest_checkpoints_offset CHECK (byte_offset >= 0 AND fingerprint_bytes >= 0)
);

-- Lines that did not parse. raw keeps the first 4 KiB; raw_length the size
-- of the whole line (without its newline).
CREATE TABLE ingest_dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text        NOT NULL,
    file_key    text        NOT NULL,
    byte_offset bigint      NOT NULL,
    reason      text        NOT NULL,
    raw         bytea       NOT NULL,
    raw_length  bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ingest_dead_letters_raw_capped CHECK (octet_length(raw) <= 4096)
);

CREATE INDEX ingest_dead_letters_source_idx ON ingest_dead_letters (source, created_at);
