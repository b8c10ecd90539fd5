#include "origin/visit_store.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <malloc.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <map>
#include <pqxx/largeobject>
#include <pqxx/pqxx>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "core/pg_pool.h"
#include "origin/link_store.h"
#include "origin/log.h"

namespace origin {
namespace {

constexpr std::int64_t kMsPerHour = 3'600'000;
constexpr std::int64_t kMsPerDay = 86'400'000;
// Arbitrary constants shared by every process that ingests into this schema.
constexpr long long kPartitionLockKey = 7361727;
constexpr long long kRetentionLockKey = 7361728;
// Codes known to be links, remembered across transactions (cleared when
// full): about 80 bytes each.
constexpr std::size_t kMaxKnownCodes = 50'000;
// A transaction ends early once its counts hold this many keys: a backlog of
// visits to many distinct codes (a crawl, a catch-up after an outage) would
// otherwise hold a count per code and hour for up to INGEST_BATCH_LINES
// lines, hundreds of MB in the origin's own process.
constexpr std::size_t kMaxCountKeysPerTransaction = 50'000;
// After a transaction with this many keys, the memory its counts took is
// handed back to the system (glibc keeps freed memory in its arenas, so the
// process would otherwise stay at its largest transaction's size).
constexpr std::size_t kTrimAfterCountKeys = 20'000;

void release_free_memory() { ::malloc_trim(0); }
constexpr std::string_view kPartitionPrefix = "visits_";

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : (a - b + 1) / b; }

// "YYYY-MM-DD" of a day number.
std::string day_text(std::int64_t day) {
  return core::format_rfc3339_ms(core::from_unix_ms(day * kMsPerDay)).substr(0, 10);
}

std::string partition_name(std::int64_t day) {
  std::string text = day_text(day);
  text.erase(std::remove(text.begin(), text.end(), '-'), text.end());
  return std::string(kPartitionPrefix) + text;
}

// The day of a "visits_YYYYMMDD" partition; nullopt for other names.
std::optional<std::int64_t> partition_day(std::string_view name) {
  if (name.size() != kPartitionPrefix.size() + 8 ||
      name.substr(0, kPartitionPrefix.size()) != kPartitionPrefix) {
    return std::nullopt;
  }
  std::string_view digits = name.substr(kPartitionPrefix.size());
  std::string text = std::string(digits.substr(0, 4)) + "-" + std::string(digits.substr(4, 2)) +
                     "-" + std::string(digits.substr(6, 2)) + "T00:00:00Z";
  auto tp = core::parse_rfc3339(text);
  if (!tp) return std::nullopt;
  return floor_div(core::to_unix_ms(*tp), kMsPerDay);
}

std::string int_array(const std::vector<std::int64_t>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += std::to_string(values[i]);
  }
  out.push_back('}');
  return out;
}

std::string hex_bytea(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xF]);
  }
  return out;
}

std::int64_t as_signed(std::uint64_t value) { return static_cast<std::int64_t>(value); }

bool is_retryable(const pqxx::sql_error& e) {
  if (core::is_unavailability(e)) return true;
  const std::string state = e.sqlstate();
  // 40: serialization failure, deadlock; 55P03: lock not available.
  return state.rfind("40", 0) == 0 || state == "55P03";
}

void upsert_hourly(pqxx::work& txn, const char* table, const std::vector<HourlyCount>& counts) {
  if (counts.empty()) return;
  std::vector<std::string> codes;
  std::vector<std::string> sources;
  std::vector<std::int64_t> hours;
  std::vector<std::int64_t> humans;
  std::vector<std::int64_t> bots;
  for (const HourlyCount& c : counts) {
    codes.push_back(c.code);
    hours.push_back(c.hour_s);
    sources.push_back(c.source);
    humans.push_back(c.humans);
    bots.push_back(c.bots);
  }
  const std::string t = table;
  txn.exec_params("INSERT INTO " + t +
                      " AS t (code, hour, source, humans, bots)"
                      " SELECT u.code, TIMESTAMPTZ 'epoch' + u.hour * INTERVAL '1 second',"
                      "   u.source, u.humans, u.bots"
                      " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[],"
                      "   $5::bigint[]) AS u(code, hour, source, humans, bots)"
                      " ON CONFLICT (code, hour, source) DO UPDATE"
                      " SET humans = t.humans + EXCLUDED.humans, bots = t.bots + EXCLUDED.bots",
                  pg_text_array(codes), int_array(hours), pg_text_array(sources), int_array(humans),
                  int_array(bots));
}

void upsert_daily(pqxx::work& txn, const std::vector<DailyCount>& counts) {
  if (counts.empty()) return;
  std::vector<std::string> codes;
  std::vector<std::string> sources;
  std::vector<std::int64_t> days;
  std::vector<std::int64_t> humans;
  std::vector<std::int64_t> bots;
  for (const DailyCount& c : counts) {
    codes.push_back(c.code);
    days.push_back(c.day);
    sources.push_back(c.source);
    humans.push_back(c.humans);
    bots.push_back(c.bots);
  }
  txn.exec_params(
      "INSERT INTO visit_counts_daily AS t (code, day, source, humans, bots)"
      " SELECT u.code, DATE '1970-01-01' + u.day::integer, u.source, u.humans, u.bots"
      " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[])"
      "   AS u(code, day, source, humans, bots)"
      " ON CONFLICT (code, day, source) DO UPDATE"
      " SET humans = t.humans + EXCLUDED.humans, bots = t.bots + EXCLUDED.bots",
      pg_text_array(codes), int_array(days), pg_text_array(sources), int_array(humans),
      int_array(bots));
}

// Into referrer_counts_daily (`column` day) or referrer_counts_monthly (month).
void upsert_referrers(pqxx::work& txn, const std::string& table, const std::string& column,
                      const std::vector<ReferrerCount>& counts) {
  if (counts.empty()) return;
  std::vector<std::string> codes;
  std::vector<std::string> hosts;
  std::vector<std::int64_t> days;
  std::vector<std::int64_t> clicks;
  for (const ReferrerCount& c : counts) {
    codes.push_back(c.code);
    days.push_back(c.day);
    hosts.push_back(c.host);
    clicks.push_back(c.clicks);
  }
  txn.exec_params("INSERT INTO " + table + " AS t (code, " + column +
                      ", host, clicks)"
                      " SELECT u.code, DATE '1970-01-01' + u.day::integer, u.host, u.clicks"
                      " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])"
                      "   AS u(code, day, host, clicks)"
                      " ON CONFLICT (code, " +
                      column + ", host) DO UPDATE SET clicks = t.clicks + EXCLUDED.clicks",
                  pg_text_array(codes), int_array(days), pg_text_array(hosts), int_array(clicks));
}

void upsert_totals(pqxx::work& txn, const std::vector<LinkTotal>& totals) {
  if (totals.empty()) return;
  std::vector<std::string> codes;
  std::vector<std::int64_t> humans;
  std::vector<std::int64_t> bots;
  std::string last = "{";
  for (std::size_t i = 0; i < totals.size(); ++i) {
    codes.push_back(totals[i].code);
    humans.push_back(totals[i].humans);
    bots.push_back(totals[i].bots);
    if (i > 0) last.push_back(',');
    last += totals[i].last_click_ms ? std::to_string(*totals[i].last_click_ms) : "NULL";
  }
  last.push_back('}');
  txn.exec_params(
      "INSERT INTO link_visit_totals AS t (code, humans, bots, last_click_at)"
      " SELECT u.code, u.humans, u.bots,"
      "   TIMESTAMPTZ 'epoch' + u.last_ms * INTERVAL '1 millisecond'"
      " FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])"
      "   AS u(code, humans, bots, last_ms)"
      " ON CONFLICT (code) DO UPDATE SET humans = t.humans + EXCLUDED.humans,"
      "   bots = t.bots + EXCLUDED.bots,"
      "   last_click_at = GREATEST(t.last_click_at, EXCLUDED.last_click_at)",
      pg_text_array(codes), int_array(humans), int_array(bots), last);
}

void insert_dead_letters(pqxx::work& txn, const std::string& source,
                         const std::vector<DeadLetter>& letters) {
  if (letters.empty()) return;
  std::vector<std::string> keys;
  std::vector<std::int64_t> offsets;
  std::vector<std::string> reasons;
  std::vector<std::string> raws;
  std::vector<std::int64_t> lengths;
  for (const DeadLetter& d : letters) {
    keys.push_back(d.file_key);
    offsets.push_back(as_signed(d.offset));
    reasons.push_back(d.reason);
    raws.push_back(hex_bytea(std::string_view(d.raw).substr(0, kMaxDeadLetterBytes)));
    lengths.push_back(as_signed(d.raw_length));
  }
  txn.exec_params(
      "INSERT INTO ingest_dead_letters (source, file_key, byte_offset, reason, raw, raw_length)"
      " SELECT $1, u.file_key, u.byte_offset, u.reason, u.raw, u.raw_length"
      " FROM unnest($2::text[], $3::bigint[], $4::text[], $5::bytea[], $6::bigint[])"
      "   AS u(file_key, byte_offset, reason, raw, raw_length)",
      source, pg_text_array(keys), int_array(offsets), pg_text_array(reasons), pg_text_array(raws),
      int_array(lengths));
}

// Applies one checkpoint move; false when the stored row is not `expected`.
bool move_checkpoint(pqxx::work& txn, const std::string& source, const CheckpointMove& move) {
  const Checkpoint& n = move.next;
  pqxx::result r;
  if (move.expected) {
    r = txn.exec_params(
        "UPDATE ingest_checkpoints SET inode = $3, byte_offset = $4, fingerprint = $5,"
        " fingerprint_bytes = $6, updated_at = now()"
        " WHERE source = $1 AND file_key = $2 AND inode = $7 AND byte_offset = $8",
        source, n.file_key, as_signed(n.inode), as_signed(n.offset), as_signed(n.fingerprint),
        static_cast<long>(n.fingerprint_bytes), as_signed(move.expected->inode),
        as_signed(move.expected->offset));
  } else {
    r = txn.exec_params(
        "INSERT INTO ingest_checkpoints"
        " (source, file_key, inode, byte_offset, fingerprint, fingerprint_bytes)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, file_key) DO NOTHING",
        source, n.file_key, as_signed(n.inode), as_signed(n.offset), as_signed(n.fingerprint),
        static_cast<long>(n.fingerprint_bytes));
  }
  return r.affected_rows() == 1;
}

constexpr std::size_t kCopyChunkBytes = 256 * 1024;
// PostgreSQL's epoch (2000-01-01T00:00:00Z) in Unix milliseconds.
constexpr std::int64_t kPgEpochMs = 946'684'800'000;

}  // namespace

namespace {

// (code, number, text) keys of the count maps, sorted like the tuples they
// stand for.
struct CountKey {
  std::string code;
  std::int64_t number = 0;
  std::string text;

  bool operator==(const CountKey& other) const {
    return number == other.number && code == other.code && text == other.text;
  }
  bool operator<(const CountKey& other) const {
    if (const int c = code.compare(other.code); c != 0) return c < 0;
    if (number != other.number) return number < other.number;
    return text < other.text;
  }
};

struct CountKeyHash {
  std::size_t operator()(const CountKey& key) const {
    const std::size_t h = std::hash<std::string>()(key.code);
    const std::size_t t = std::hash<std::string>()(key.text);
    return (h * 1000003u) ^ (t * 31u) ^ std::hash<std::int64_t>()(key.number);
  }
};

template <typename Value>
using CountMap = std::unordered_map<CountKey, Value, CountKeyHash>;

using HumansBots = std::pair<std::int64_t, std::int64_t>;

// The entry of `key`, created (zero) when missing; `key` is copied only then.
template <typename Map>
typename Map::mapped_type& entry(Map& map, const typename Map::key_type& key) {
  auto it = map.find(key);
  if (it == map.end()) it = map.emplace(key, typename Map::mapped_type{}).first;
  return it->second;
}

template <typename Value>
std::vector<std::pair<CountKey, Value>> sorted_counts(CountMap<Value>& counts) {
  std::vector<std::pair<CountKey, Value>> out;
  out.reserve(counts.size());
  for (auto& [key, value] : counts) out.emplace_back(key, value);
  counts.clear();
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

std::vector<HourlyCount> hourly_counts(CountMap<HumansBots>& counts) {
  std::vector<HourlyCount> out;
  for (auto& [key, c] : sorted_counts(counts)) {
    out.push_back({std::move(key.code), key.number, std::move(key.text), c.first, c.second});
  }
  return out;
}

}  // namespace

// Clicks of one (code, hour, source): what the daily counts and the link
// totals are summed from when the counter is emptied.
struct HourClicks {
  std::int64_t humans = 0;
  std::int64_t bots = 0;
  std::int64_t last_human_ms = INT64_MIN;  // INT64_MIN: none
};

// One map lookup per visit (two for a human click with a referrer): the
// daily counts and the totals are derived from the hourly ones in take().
struct VisitCounter::Maps {
  CountMap<HourClicks> hourly;
  CountMap<HumansBots> orphans;
  CountMap<std::int64_t> referrers;
  // Reused for every lookup, so that counting an existing key allocates
  // nothing.
  CountKey scratch;

  const CountKey& key(std::string_view code, std::int64_t number, std::string_view text) {
    scratch.code.assign(code.data(), code.size());
    scratch.number = number;
    scratch.text.assign(text.data(), text.size());
    return scratch;
  }
};

VisitCounter::VisitCounter() : maps_(std::make_unique<Maps>()) {}

VisitCounter::~VisitCounter() = default;

void VisitCounter::add(const VisitRow& row, bool known) {
  Maps& m = *maps_;
  const std::int64_t hour_s = floor_div(row.time_ms, kMsPerHour) * 3600;
  if (!known) {
    auto& c = entry(m.orphans, m.key(row.code, hour_s, row.source));
    ++(row.bot ? c.second : c.first);
    return;
  }
  if (!is_click_status(row.status)) return;
  HourClicks& c = entry(m.hourly, m.key(row.code, hour_s, row.source));
  if (row.bot) {
    ++c.bots;
    return;
  }
  ++c.humans;
  c.last_human_ms = std::max(c.last_human_ms, row.time_ms);
  if (!row.referrer_host.empty()) {
    const std::int64_t day = floor_div(row.time_ms, kMsPerDay);
    ++entry(m.referrers, m.key(row.code, day, row.referrer_host));
  }
}

std::size_t VisitCounter::keys() const {
  return maps_->hourly.size() + maps_->orphans.size() + maps_->referrers.size();
}

VisitAggregates VisitCounter::take() {
  Maps& m = *maps_;
  VisitAggregates out;
  CountMap<HumansBots> daily;
  for (auto& [key, c] : sorted_counts(m.hourly)) {
    // Sorted by code: a code's totals are complete when the next code starts.
    if (out.totals.empty() || out.totals.back().code != key.code) {
      out.totals.push_back(LinkTotal{key.code, 0, 0, std::nullopt});
    }
    LinkTotal& total = out.totals.back();
    total.humans += c.humans;
    total.bots += c.bots;
    if (c.last_human_ms != INT64_MIN &&
        (!total.last_click_ms || *total.last_click_ms < c.last_human_ms)) {
      total.last_click_ms = c.last_human_ms;
    }
    auto& d = daily[CountKey{key.code, floor_div(key.number, 86'400), key.text}];
    d.first += c.humans;
    d.second += c.bots;
    out.hourly.push_back({std::move(key.code), key.number, std::move(key.text), c.humans, c.bots});
  }
  out.orphan_hourly = hourly_counts(m.orphans);
  for (auto& [key, c] : sorted_counts(daily)) {
    out.daily.push_back({std::move(key.code), key.number, std::move(key.text), c.first, c.second});
  }
  CountMap<std::int64_t> monthly;
  for (auto& [key, clicks] : sorted_counts(m.referrers)) {
    monthly[CountKey{key.code, first_day_of_month(key.number), key.text}] += clicks;
    out.referrers.push_back({std::move(key.code), key.number, std::move(key.text), clicks});
  }
  for (auto& [key, clicks] : sorted_counts(monthly)) {
    out.referrers_monthly.push_back({std::move(key.code), key.number, std::move(key.text), clicks});
  }
  return out;
}

VisitAggregates aggregate_visits(const std::vector<VisitRow>& rows,
                                 const std::function<bool(std::string_view)>& known) {
  VisitCounter counter;
  for (const VisitRow& row : rows) counter.add(row, known(row.code));
  return counter.take();
}

std::int64_t first_day_of_month(std::int64_t day) {
  // Howard Hinnant's civil_from_days, for the day of the month only.
  const std::int64_t z = day + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t day_of_month = doy - (153 * mp + 2) / 5 + 1;
  return day - (day_of_month - 1);
}

std::string pg_text_array(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

std::uint64_t file_fingerprint(std::string_view bytes) {
  std::uint64_t hash = 14695981039346656037ull;
  for (char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

bool SingleBatchStream::next(VisitBatch& chunk) {
  chunk.rows.clear();
  chunk.dead_letters.clear();
  if (given_) return false;
  given_ = true;
  chunk.rows = std::move(batch_.rows);
  chunk.dead_letters = std::move(batch_.dead_letters);
  return true;
}

struct PgVisitStore::Connection {
  explicit Connection(const std::string& url) : conn(url) {}
  pqxx::connection conn;
  // For reading links while `conn` is in a COPY; opened when first needed.
  std::unique_ptr<pqxx::connection> lookup;
};

PgVisitStore::PgVisitStore(PgVisitStoreOptions options) : options_(std::move(options)) {}

PgVisitStore::~PgVisitStore() = default;

PgVisitStore::Connection& PgVisitStore::connection() {
  if (connection_ && connection_->conn.is_open()) return *connection_;
  connection_.reset();
  auto c = std::make_unique<Connection>(options_.url);
  {
    pqxx::nontransaction session(c->conn);
    // A transaction's COPY lasts as long as the transaction (bounded by the
    // ingester's INGEST_BATCH_MS), well within this.
    session.exec("SET statement_timeout = " + std::to_string(options_.statement_timeout.count()));
    session.exec("SET idle_in_transaction_session_timeout = " +
                 std::to_string(options_.statement_timeout.count() * 2));
    session.exec("SET TIME ZONE 'UTC'");
    // Journal files are deleted once their lines are committed: a commit must
    // survive a database crash even where the server runs asynchronous commit.
    session.exec("SET synchronous_commit = on");
    session.exec("SET application_name = 'origin-ingest'");
  }
  connection_ = std::move(c);
  partitions_loaded_ = false;
  return *connection_;
}

template <typename Fn>
auto PgVisitStore::run(Fn&& fn) {
  try {
    return fn(connection());
  } catch (const pqxx::broken_connection& e) {
    connection_.reset();
    throw StoreUnavailable(first_line(e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    connection_.reset();
    throw StoreUnavailable(first_line(e.what()));
  } catch (const pqxx::sql_error& e) {
    connection_.reset();
    if (is_retryable(e)) throw StoreUnavailable(first_line(e.what()));
    throw;
  } catch (const pqxx::failure& e) {
    // Errors below SQL (a connection lost in the middle of COPY): the
    // transaction's outcome is unknown to us, the caller reloads.
    const bool lost = !connection_ || !connection_->conn.is_open();
    connection_.reset();
    if (lost) throw StoreUnavailable(first_line(e.what()));
    throw;
  }
}

std::vector<Checkpoint> PgVisitStore::load_checkpoints(const std::string& source) {
  return run([&](Connection& c) {
    pqxx::nontransaction txn(c.conn);
    pqxx::result r = txn.exec_params(
        "SELECT file_key, inode, byte_offset, fingerprint, fingerprint_bytes"
        " FROM ingest_checkpoints WHERE source = $1 ORDER BY file_key",
        source);
    std::vector<Checkpoint> out;
    for (const auto& row : r) {
      Checkpoint cp;
      cp.file_key = row[0].as<std::string>();
      cp.inode = static_cast<std::uint64_t>(row[1].as<std::int64_t>());
      cp.offset = static_cast<std::uint64_t>(row[2].as<std::int64_t>());
      cp.fingerprint = static_cast<std::uint64_t>(row[3].as<std::int64_t>());
      cp.fingerprint_bytes = static_cast<std::uint32_t>(row[4].as<std::int64_t>());
      out.push_back(std::move(cp));
    }
    return out;
  });
}

void PgVisitStore::delete_checkpoint(const std::string& source, const std::string& file_key) {
  run([&](Connection& c) {
    pqxx::nontransaction txn(c.conn);
    txn.exec_params("DELETE FROM ingest_checkpoints WHERE source = $1 AND file_key = $2", source,
                    file_key);
    return 0;
  });
}

void PgVisitStore::load_partitions(Connection& c) {
  pqxx::nontransaction txn(c.conn);
  pqxx::result r = txn.exec(
      "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
      " WHERE i.inhparent = 'visits'::regclass");
  partition_days_.clear();
  for (const auto& row : r) {
    if (auto day = partition_day(row[0].as<std::string>())) partition_days_.insert(*day);
  }
  partitions_loaded_ = true;
}

std::set<std::int64_t> PgVisitStore::missing_partitions(const std::vector<VisitRow>& rows) const {
  const std::int64_t today = floor_div(core::to_unix_ms(core::now_ms()), kMsPerDay);
  const std::int64_t first = today - options_.retention_days;
  const std::int64_t last = today + 1;
  std::set<std::int64_t> missing;
  std::int64_t previous = INT64_MIN;
  for (const VisitRow& row : rows) {
    const std::int64_t day = floor_div(row.time_ms, kMsPerDay);
    if (day == previous) continue;  // rows come in time order, mostly
    previous = day;
    if (day >= first && day <= last && partition_days_.count(day) == 0) missing.insert(day);
  }
  return missing;
}

std::unordered_set<std::string> PgVisitStore::known_codes(
    Connection& c, const std::vector<VisitRow>& rows, std::unordered_set<std::string>& unknown) {
  std::unordered_set<std::string> chunk_codes;
  for (const VisitRow& row : rows) chunk_codes.insert(row.code);
  std::vector<std::string> ask;
  for (const std::string& code : chunk_codes) {
    if (known_codes_.count(code) == 0 && unknown.count(code) == 0) ask.push_back(code);
  }
  if (!ask.empty()) {
    std::sort(ask.begin(), ask.end());
    if (!c.lookup || !c.lookup->is_open()) {
      c.lookup = std::make_unique<pqxx::connection>(options_.url);
      pqxx::nontransaction session(*c.lookup);
      session.exec("SET statement_timeout = " + std::to_string(options_.statement_timeout.count()));
      session.exec("SET application_name = 'origin-ingest-lookup'");
    }
    pqxx::nontransaction txn(*c.lookup);
    pqxx::result r =
        txn.exec_params("SELECT code FROM links WHERE code = ANY($1::text[])", pg_text_array(ask));
    if (known_codes_.size() + r.size() > kMaxKnownCodes) known_codes_.clear();
    std::unordered_set<std::string> found;
    for (const auto& row : r) found.insert(row[0].as<std::string>());
    for (std::string& code : ask) {
      if (found.count(code) == 0) unknown.insert(std::move(code));
    }
    known_codes_.insert(found.begin(), found.end());
  }
  std::unordered_set<std::string> known;
  for (const std::string& code : chunk_codes) {
    if (known_codes_.count(code) != 0) known.insert(code);
  }
  return known;
}

namespace {

// libpqxx 6.4 keeps libpq's connection to itself, except that its large
// object class hands it to subclasses; the binary COPY below needs it.
class RawConnection : public pqxx::largeobject {
 public:
  static PGconn* of(const pqxx::dbtransaction& txn) { return raw_connection(txn); }
};

// The rows of one transaction, sent with COPY in binary format: no text to
// format here, none for the server to parse (inet, timestamptz, smallint,
// bool), a good part of what a text COPY costs it. libpqxx 6.4 can only send
// text rows (tablewriter ends every write with '\n'), so this speaks libpq
// on the transaction's connection; the COPY is always ended (completed, or
// abandoned by the destructor) before libpqxx uses the connection again.
class VisitCopy {
 public:
  explicit VisitCopy(pqxx::work& txn) : conn_(RawConnection::of(txn)) {
    txn.exec(
        "COPY visits (time, code, ip, user_agent, referrer, referrer_host, status, source, bot,"
        " orphan) FROM STDIN (FORMAT binary)");
    open_ = true;
    buffer_.reserve(kCopyChunkBytes + 16 * 1024);
    buffer_.append("PGCOPY\n\377\r\n\0", 11);
    put32(0);  // flags
    put32(0);  // header extension length
  }

  ~VisitCopy() {
    if (!open_) return;
    // Abandoned (an exception on its way): the server discards the COPY.
    if (PQputCopyEnd(conn_, "ingest transaction abandoned") == 1) {
      if (PGresult* failed = drain()) PQclear(failed);  // the refusal we asked for
    }
  }

  VisitCopy(const VisitCopy&) = delete;
  VisitCopy& operator=(const VisitCopy&) = delete;

  void add(const VisitRow& row, bool orphan) {
    put16(10);  // fields
    put32(8);
    put64((row.time_ms - kPgEpochMs) * 1000);  // microseconds
    text(row.code);
    ip(row.ip);
    text(row.user_agent);
    text(row.referrer);
    text(row.referrer_host);
    put32(2);
    put16(static_cast<std::uint16_t>(row.status));
    text(row.source);
    put32(1);
    buffer_.push_back(row.bot ? 1 : 0);
    put32(1);
    buffer_.push_back(orphan ? 1 : 0);
    if (buffer_.size() >= kCopyChunkBytes) flush();
  }

  // Sends what is buffered, so the server works on it while the caller
  // prepares more.
  void flush() {
    if (buffer_.empty()) return;
    if (PQputCopyData(conn_, buffer_.data(), static_cast<int>(buffer_.size())) != 1) fail(nullptr);
    buffer_.clear();
  }

  // Ends the COPY; throws what the server refused.
  void complete() {
    put16(0xFFFF);  // trailer
    flush();
    if (PQputCopyEnd(conn_, nullptr) != 1) fail(nullptr);
    open_ = false;
    PGresult* failed = drain();
    if (failed != nullptr) fail(failed);
  }

 private:
  // Reads the results of the ended COPY; returns the first that is an
  // error (the caller clears it), or nullptr.
  PGresult* drain() {
    PGresult* failed = nullptr;
    // A connection that broke can answer COPY_IN for ever: a bound.
    for (int i = 0; i < 16; ++i) {
      PGresult* result = PQgetResult(conn_);
      if (result == nullptr) break;
      const ExecStatusType status = PQresultStatus(result);
      if (status == PGRES_COMMAND_OK || failed != nullptr) {
        PQclear(result);
      } else {
        failed = result;
      }
      if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT) break;
    }
    return failed;
  }

  [[noreturn]] void fail(PGresult* result) {
    std::string message = result != nullptr ? PQresultErrorMessage(result) : "";
    if (message.empty()) message = PQerrorMessage(conn_);
    std::string state;
    if (result != nullptr) {
      if (const char* s = PQresultErrorField(result, PG_DIAG_SQLSTATE)) state = s;
      PQclear(result);
    }
    if (PQstatus(conn_) == CONNECTION_BAD) throw pqxx::broken_connection(message);
    throw pqxx::sql_error(message, "COPY visits", state.empty() ? nullptr : state.c_str());
  }

  void put16(std::uint16_t v) {
    const char bytes[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
    buffer_.append(bytes, 2);
  }
  void put32(std::uint32_t v) {
    put16(static_cast<std::uint16_t>(v >> 16));
    put16(static_cast<std::uint16_t>(v));
  }
  void put64(std::int64_t v) {
    const auto u = static_cast<std::uint64_t>(v);
    put32(static_cast<std::uint32_t>(u >> 32));
    put32(static_cast<std::uint32_t>(u));
  }
  void text(const std::string& value) {
    put32(static_cast<std::uint32_t>(value.size()));
    buffer_.append(value);
  }
  // inet's binary form: family (2 IPv4, 3 IPv6), bits, is_cidr, size, bytes.
  // NULL when empty (not stored) or, which cannot happen for a VisitRow, not
  // an address.
  void ip(const std::string& value) {
    unsigned char address[sizeof(in6_addr)];
    if (!value.empty() && inet_pton(AF_INET, value.c_str(), address) == 1) {
      put32(8);
      const char head[4] = {2, 32, 0, 4};
      buffer_.append(head, 4);
      buffer_.append(reinterpret_cast<const char*>(address), 4);
      return;
    }
    if (!value.empty() && inet_pton(AF_INET6, value.c_str(), address) == 1) {
      put32(20);
      const char head[4] = {3, static_cast<char>(128), 0, 16};
      buffer_.append(head, 4);
      buffer_.append(reinterpret_cast<const char*>(address), 16);
      return;
    }
    put32(0xFFFFFFFF);  // NULL
  }

  PGconn* const conn_;
  bool open_ = false;
  std::string buffer_;
};

// Creates the daily partition of `day` in `txn` unless it exists (another
// process may have made it).
void create_partition_in(pqxx::work& txn, std::int64_t day) {
  const std::string name = partition_name(day);
  const std::string from = day_text(day) + " 00:00:00+00";
  const std::string to = day_text(day + 1) + " 00:00:00+00";
  txn.exec("SET LOCAL lock_timeout = '10s'");
  txn.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kPartitionLockKey) + ")");
  if (!txn.exec_params1("SELECT to_regclass($1) IS NOT NULL", name)[0].as<bool>()) {
    // Built apart and attached, so rows of that day that went to the default
    // partition meanwhile (it was outside the window then) move with it.
    txn.exec("CREATE TABLE " + name + " (LIKE visits INCLUDING DEFAULTS INCLUDING CONSTRAINTS)");
    txn.exec("WITH moved AS (DELETE FROM visits_default WHERE time >= '" + from + "' AND time < '" +
             to + "' RETURNING *) INSERT INTO " + name + " SELECT * FROM moved");
    txn.exec("ALTER TABLE visits ATTACH PARTITION " + name + " FOR VALUES FROM ('" + from +
             "') TO ('" + to + "')");
    log_event("info", "created visits partition", {{"partition", name}});
  }
  txn.exec("SET LOCAL lock_timeout = DEFAULT");
}

}  // namespace

void PgVisitStore::create_partition(Connection& c, std::int64_t day) {
  pqxx::work txn(c.conn, "create_partition");
  create_partition_in(txn, day);
  txn.commit();
  partition_days_.insert(day);
}

CommitOutcome PgVisitStore::commit(const std::string& source, VisitStream& stream) {
  bool large = false;  // the transaction's counts were large (freed by now)
  const CommitOutcome outcome = run([&](Connection& c) {
    VisitBatch chunk;
    bool more = stream.next(chunk);
    if (!partitions_loaded_) load_partitions(c);
    for (std::int64_t day : missing_partitions(chunk.rows)) create_partition(c, day);
    // Per transaction: a code created meanwhile counts from the next one.
    std::unordered_set<std::string> unknown;
    std::vector<std::int64_t> created_here;  // partitions made inside the transaction
    VisitCounter counter;
    std::vector<DeadLetter> dead_letters;

    pqxx::work txn(c.conn, "ingest");
    std::optional<VisitCopy> copy;
    try {
      for (;;) {
        if (!chunk.rows.empty()) {
          const std::set<std::int64_t> missing = missing_partitions(chunk.rows);
          if (!missing.empty()) {
            // DDL cannot run inside a COPY: end it, continue in a new one.
            if (copy) copy->complete();
            copy.reset();
            for (std::int64_t day : missing) {
              create_partition_in(txn, day);
              partition_days_.insert(day);
              created_here.push_back(day);
            }
          }
          const std::unordered_set<std::string> known = known_codes(c, chunk.rows, unknown);
          if (!copy) copy.emplace(txn);
          for (const VisitRow& row : chunk.rows) {
            const bool is_known = known.count(row.code) != 0;
            copy->add(row, !is_known);
            counter.add(row, is_known);
          }
          copy->flush();
          if (counter.keys() >= kMaxCountKeysPerTransaction) stream.wind_down();
        }
        for (DeadLetter& d : chunk.dead_letters) dead_letters.push_back(std::move(d));
        if (!more) break;
        more = stream.next(chunk);
      }
      if (copy) copy->complete();
      copy.reset();
    } catch (...) {
      // Not committed (the transaction is aborted on the way out; ending the
      // COPY first keeps the session usable after a failure of our own, such
      // as a read error): forget the partitions it would have made.
      for (std::int64_t day : created_here) partition_days_.erase(day);
      throw;
    }

    // Checkpoints before the counts: a conflict is found before that work,
    // and the row locks taken here keep a second ingester of the source out.
    for (const CheckpointMove& move : stream.checkpoints()) {
      if (!move_checkpoint(txn, source, move)) {
        txn.abort();
        for (std::int64_t day : created_here) partition_days_.erase(day);
        return CommitOutcome::kCheckpointConflict;
      }
    }
    large = counter.keys() >= kTrimAfterCountKeys;
    const VisitAggregates counts = counter.take();
    upsert_hourly(txn, "visit_counts_hourly", counts.hourly);
    upsert_daily(txn, counts.daily);
    upsert_hourly(txn, "orphan_counts_hourly", counts.orphan_hourly);
    upsert_referrers(txn, "referrer_counts_daily", "day", counts.referrers);
    upsert_referrers(txn, "referrer_counts_monthly", "month", counts.referrers_monthly);
    upsert_totals(txn, counts.totals);
    insert_dead_letters(txn, source, dead_letters);
    if (options_.pause_before_commit.count() > 0) {
      log_event("info", "test pause before commit", {{"source", source}});
      std::this_thread::sleep_for(options_.pause_before_commit);
    }
    txn.commit();
    return CommitOutcome::kCommitted;
  });
  if (large) release_free_memory();
  return outcome;
}

void PgVisitStore::maintain(core::TimePoint now) {
  run([&](Connection& c) {
    load_partitions(c);
    const std::int64_t today = floor_div(core::to_unix_ms(now), kMsPerDay);
    for (std::int64_t day : {today, today + 1}) {
      if (partition_days_.count(day) == 0) create_partition(c, day);
    }
    const std::int64_t cutoff = today - options_.retention_days;
    pqxx::work txn(c.conn, "retention");
    txn.exec("SET LOCAL lock_timeout = '5s'");
    // One process at a time is enough; the others skip.
    if (!txn.exec("SELECT pg_try_advisory_xact_lock(" + std::to_string(kRetentionLockKey) +
                  ")")[0][0]
             .as<bool>()) {
      txn.commit();
      return 0;
    }
    std::vector<std::int64_t> dropped;
    for (std::int64_t day : partition_days_) {
      if (day < cutoff) dropped.push_back(day);
    }
    std::sort(dropped.begin(), dropped.end());
    for (std::int64_t day : dropped) txn.exec("DROP TABLE IF EXISTS " + partition_name(day));
    txn.exec("DELETE FROM visits_default WHERE time < '" + day_text(cutoff) + " 00:00:00+00'");
    txn.commit();
    for (std::int64_t day : dropped) {
      partition_days_.erase(day);
      log_event("info", "dropped visits partition past retention",
                {{"partition", partition_name(day)}});
    }
    return 0;
  });
}

}  // namespace origin
