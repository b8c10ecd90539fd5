#include "origin/metrics_sources.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <ctime>

#include "origin/journal.h"

namespace origin::metrics {

void render_pool(core::PromText& out, const core::PgPool& pool) {
  const core::PgPool::Stats s = pool.stats();
  out.single("origin_db_pool_open", "gauge", "PostgreSQL connections open.", std::uint64_t{s.open});
  out.single("origin_db_pool_in_use", "gauge", "PostgreSQL connections lent out.",
             std::uint64_t{s.in_use});
  out.single("origin_db_pool_idle", "gauge", "PostgreSQL connections open and free.",
             std::uint64_t{s.open - s.in_use});
  out.single("origin_db_pool_waiting", "gauge", "Threads waiting for a connection now.",
             std::uint64_t{s.waiting});
  out.single("origin_db_pool_waits_total", "counter", "Acquisitions that had to wait.", s.waits);
  out.single("origin_db_pool_timeouts_total", "counter",
             "Acquisitions that gave up after DB_ACQUIRE_TIMEOUT_MS.", s.timeouts);
  out.single("origin_db_pool_overflow_opened_total", "counter",
             "Connections opened beyond DB_POOL_SIZE.", s.overflow_opened);
}

void render_ingesters(core::PromText& out, const std::vector<const Ingester*>& ingesters) {
  std::vector<IngesterStats> stats;
  for (const Ingester* i : ingesters) stats.push_back(i->stats());
  const auto each = [&](const char* name, const char* type, const char* help, auto value_of) {
    out.family(name, type, help);
    for (std::size_t k = 0; k < ingesters.size(); ++k) {
      out.sample(name, {{"source", ingesters[k]->source().name}}, value_of(stats[k]));
    }
  };
  each("origin_ingest_lines_total", "counter", "Visit lines committed to PostgreSQL.",
       [](const IngesterStats& s) { return s.lines_ingested; });
  each("origin_ingest_dead_letters_total", "counter",
       "Lines that did not parse, kept in ingest_dead_letters.",
       [](const IngesterStats& s) { return s.lines_dead_lettered; });
  each("origin_ingest_store_failures_total", "counter", "Failed ingest attempts (each retried).",
       [](const IngesterStats& s) { return s.store_failures; });
  each("origin_ingest_lag_bytes", "gauge", "Bytes in the source's files not yet committed.",
       [](const IngesterStats& s) { return s.lag_bytes; });
  each("origin_ingest_lag_seconds", "gauge",
       "Time since the source was last caught up (0 while it is).", [](const IngesterStats& s) {
         return static_cast<double>(s.oldest_unread_age.count()) / 1000.0;
       });
  each("origin_ingest_database_up", "gauge",
       "1 unless the last attempt to commit failed because the database was unavailable.",
       [](const IngesterStats& s) { return std::uint64_t{s.database_ok ? 1u : 0u}; });
}

void render_journal_dir(core::PromText& out, const std::string& dir) {
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
  std::time_t oldest_complete = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* entry = ::readdir(d)) {
      const auto name = parse_journal_file_name(entry->d_name);
      if (!name) continue;
      struct stat st {};
      if (::stat((dir + "/" + entry->d_name).c_str(), &st) != 0) continue;  // just ingested
      ++files;
      bytes += static_cast<std::uint64_t>(st.st_size);
      if (!name->open && (oldest_complete == 0 || st.st_mtime < oldest_complete)) {
        oldest_complete = st.st_mtime;
      }
    }
    ::closedir(d);
  }
  const std::time_t now = std::time(nullptr);
  const double age =
      oldest_complete == 0 || now < oldest_complete ? 0.0 : double(now - oldest_complete);
  out.single("origin_journal_files", "gauge", "Visit journal files on disk (not yet deleted).",
             files);
  out.single("origin_journal_bytes", "gauge", "Bytes of visit journal files on disk.", bytes);
  out.single("origin_journal_oldest_complete_age_seconds", "gauge",
             "Age of the oldest closed journal file not yet ingested and deleted (0: none).", age);
}

}  // namespace origin::metrics
