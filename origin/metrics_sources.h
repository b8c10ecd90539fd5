// Collectors that read a component's state when /metrics is scraped (or a
// textfile is written): the connection pool, ingesters, the journal folder.
#pragma once

#include <string>
#include <vector>

#include "core/pg_pool.h"
#include "core/prom_text.h"
#include "origin/ingester.h"

namespace origin::metrics {

// origin_db_pool_{open,in_use,idle,waiting} gauges and
// origin_db_pool_{waits,timeouts,overflow_opened}_total counters.
void render_pool(core::PromText& out, const core::PgPool& pool);

// Per source (label `source`): origin_ingest_lines_total,
// origin_ingest_dead_letters_total, origin_ingest_store_failures_total,
// origin_ingest_lag_bytes, origin_ingest_lag_seconds (time since the source
// was last caught up; 0 while it is), origin_ingest_database_up. Each
// Ingester's stats() is thread-safe, so this may run on any thread.
void render_ingesters(core::PromText& out, const std::vector<const Ingester*>& ingesters);

// The journal folder `dir` as it is on disk now: origin_journal_files and
// origin_journal_bytes (every journal file, open or complete: what is not yet
// ingested and deleted), origin_journal_oldest_complete_age_seconds (age, by
// modification time, of the oldest closed file still waiting for the ingester;
// 0 when none: it grows when ingestion stalls). One readdir and a stat per
// file.
void render_journal_dir(core::PromText& out, const std::string& dir);

}  // namespace origin::metrics
