#include "origin/pg_link_store.h"

#include <pqxx/pqxx>
#include <string>
#include <unordered_map>

#include "core/code.h"
#include "origin/pg_call.h"

namespace origin {
namespace {

// Generated codes are random over 31^7 (~2.7e10) values by default, so a
// collision is rare; a handful of retries makes failure practically impossible
// until the space is nearly full, and bounds the work when it is.
constexpr int kCreateAttempts = 8;

constexpr const char* kColumns =
    "code, target, status, forward_query,"
    " floor(extract(epoch FROM expires_at) * 1000)::bigint,"
    " disabled,"
    " floor(extract(epoch FROM created_at) * 1000)::bigint,"
    " floor(extract(epoch FROM updated_at) * 1000)::bigint,"
    " owner_key_id";

// kColumns starting at column `first` of `row`.
core::Link link_from_row(const pqxx::row& row, pqxx::row::size_type first = 0) {
  core::Link link;
  link.code = row[first].as<std::string>();
  link.target = row[first + 1].as<std::string>();
  link.status = row[first + 2].as<int>();
  link.forward_query = row[first + 3].as<bool>();
  if (!row[first + 4].is_null()) {
    link.expires_at = core::from_unix_ms(row[first + 4].as<std::int64_t>());
  }
  link.disabled = row[first + 5].as<bool>();
  link.created_at = core::from_unix_ms(row[first + 6].as<std::int64_t>());
  link.updated_at = core::from_unix_ms(row[first + 7].as<std::int64_t>());
  if (!row[first + 8].is_null()) link.owner_key_id = row[first + 8].as<std::int64_t>();
  return link;
}

// Parameters as text, or SQL NULL for nullopt (libpqxx 6.4 maps a null
// `const char*` to NULL).
class OptionalText {
 public:
  OptionalText() = default;
  explicit OptionalText(std::string value) : value_(std::move(value)), set_(true) {}
  const char* get() const { return set_ ? value_.c_str() : nullptr; }

 private:
  std::string value_;
  bool set_ = false;
};

OptionalText text_of(const std::optional<core::TimePoint>& tp) {
  return tp ? OptionalText(core::format_rfc3339_ms(*tp)) : OptionalText();
}

}  // namespace

std::string text_array_literal(const std::vector<std::string>& values) {
  std::string out = "{";
  for (const std::string& value : values) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : value) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

PgLinkStore::PgLinkStore(core::PgPool& pool, std::size_t code_length)
    : pool_(pool), code_length_(code_length) {}

void PgLinkStore::prepare_statements(pqxx::connection& conn) {
  const std::string cols = kColumns;
  conn.prepare("link_find", "SELECT " + cols + " FROM links WHERE code = $1");
  conn.prepare("link_find_many", "SELECT " + cols + " FROM links WHERE code = ANY($1::text[])");
  conn.prepare("link_insert",
               "INSERT INTO links (code, target, status, forward_query, expires_at, owner_key_id)"
               " VALUES ($1, $2, $3, $4, $5::timestamptz, $6::bigint)"
               " ON CONFLICT (code) DO NOTHING RETURNING " +
                   cols);
  // The rate limits and the insert in one statement, so a create costs one
  // round trip. Every attempt counts, in a row per subject and minute (the
  // database's clock, the same for every instance); the upsert's row lock
  // makes concurrent attempts count one after the other, on any instance.
  // Subjects are always locked IP first, then key, so two creates never wait
  // for each other in a cycle. Result: one row, either the link (column 0
  // NULL) or the subject over its limit and the seconds until its window ends.
  conn.prepare(
      "link_create",
      "WITH wanted (subject, per_minute) AS ("
      "   SELECT * FROM (VALUES ($7::text, $8::integer), ($9::text, $10::integer)) AS v"
      "   WHERE v.column1 IS NOT NULL),"
      " counted AS ("
      "   INSERT INTO rate_limit_counters AS c (bucket, window_start, hits)"
      "   SELECT subject, date_trunc('minute', statement_timestamp()), 1 FROM wanted"
      "   ON CONFLICT (bucket, window_start) DO UPDATE SET hits = c.hits + 1"
      "   RETURNING c.bucket, c.hits),"
      " over AS (SELECT counted.bucket FROM counted"
      "   JOIN wanted ON wanted.subject = counted.bucket"
      "   WHERE counted.hits > wanted.per_minute LIMIT 1),"
      " inserted (code, target, status, forward_query, expires_ms, disabled, created_ms,"
      "           updated_ms, owner_key_id) AS ("
      "   INSERT INTO links (code, target, status, forward_query, expires_at, owner_key_id)"
      "   SELECT $1, $2, $3, $4, $5::timestamptz, $6::bigint WHERE NOT EXISTS (SELECT FROM over)"
      "   ON CONFLICT (code) DO NOTHING RETURNING " +
          cols +
          ")"
          " SELECT NULL::text, 0, inserted.* FROM inserted"
          " UNION ALL"
          " SELECT bucket, ceil(60 - extract(epoch FROM statement_timestamp()"
          "   - date_trunc('minute', statement_timestamp())))::integer,"
          "   NULL::text, NULL::text, NULL::smallint, NULL::boolean, NULL::bigint,"
          "   NULL::boolean, NULL::bigint, NULL::bigint, NULL::bigint FROM over");
  // Only rows that actually change are written, so a no-op PATCH neither
  // bumps updated_at nor wakes the listeners.
  conn.prepare("link_update",
               "WITH next AS (SELECT COALESCE($2, target) AS target,"
               "   COALESCE($3::smallint, status) AS status,"
               "   COALESCE($4::boolean, forward_query) AS forward_query,"
               "   CASE WHEN $5::boolean THEN $6::timestamptz ELSE expires_at END AS expires_at,"
               "   COALESCE($7::boolean, disabled) AS disabled"
               "   FROM links WHERE code = $1)"
               " UPDATE links SET target = next.target, status = next.status,"
               "   forward_query = next.forward_query, expires_at = next.expires_at,"
               "   disabled = next.disabled"
               " FROM next WHERE links.code = $1 AND"
               "   (links.target, links.status, links.forward_query, links.expires_at,"
               "    links.disabled) IS DISTINCT FROM"
               "   (next.target, next.status, next.forward_query, next.expires_at, next.disabled)"
               " RETURNING " +
                   std::string("links.code, links.target, links.status, links.forward_query,"
                               " floor(extract(epoch FROM links.expires_at) * 1000)::bigint,"
                               " links.disabled,"
                               " floor(extract(epoch FROM links.created_at) * 1000)::bigint,"
                               " floor(extract(epoch FROM links.updated_at) * 1000)::bigint,"
                               " links.owner_key_id"));
}

std::variant<core::Link, CreateFailure, RateLimited> PgLinkStore::create(const NewLink& link) {
  using Outcome = std::variant<core::Link, CreateFailure, RateLimited>;
  return with_connection(pool_, Retry::kNever, [&](pqxx::connection& conn) -> Outcome {
    const OptionalText expires = text_of(link.expires_at);
    const OptionalText owner =
        link.owner_key_id ? OptionalText(std::to_string(*link.owner_key_id)) : OptionalText();
    OptionalText subjects[2];
    OptionalText limits[2];
    for (std::size_t i = 0; i < link.limits.size() && i < 2; ++i) {
      subjects[i] = OptionalText(link.limits[i].subject);
      limits[i] = OptionalText(std::to_string(link.limits[i].per_minute));
    }
    const int attempts = link.alias ? 1 : kCreateAttempts;
    bool counted = false;
    for (int i = 0; i < attempts; ++i) {
      const std::string code = link.alias ? *link.alias : core::generate_code(code_length_);
      // A generated code must not be a reserved word either.
      if (!link.alias && core::is_reserved_word(code)) continue;
      // One statement each: autocommit, no BEGIN/COMMIT round trips.
      pqxx::nontransaction txn(conn);
      if (!counted) {
        counted = true;
        pqxx::result r = txn.exec_prepared(
            "link_create", code, link.target, link.status, link.forward_query, expires.get(),
            owner.get(), subjects[0].get(), limits[0].get(), subjects[1].get(), limits[1].get());
        if (r.empty()) continue;
        if (!r[0][0].is_null()) {
          return RateLimited{r[0][0].as<std::string>(), r[0][1].as<int>()};
        }
        return link_from_row(r[0], 2);
      }
      // Retries of a generated code that collided: the attempt is counted.
      pqxx::result r = txn.exec_prepared("link_insert", code, link.target, link.status,
                                         link.forward_query, expires.get(), owner.get());
      if (!r.empty()) return link_from_row(r[0]);
    }
    return link.alias ? CreateFailure::kAliasTaken : CreateFailure::kNoFreeCode;
  });
}

std::optional<core::Link> PgLinkStore::find(std::string_view code) {
  return with_connection(pool_, Retry::kOnceIfBroken,
                         [&](pqxx::connection& conn) -> std::optional<core::Link> {
                           pqxx::nontransaction txn(conn);
                           pqxx::result r = txn.exec_prepared("link_find", std::string(code));
                           if (r.empty()) return std::nullopt;
                           return link_from_row(r[0]);
                         });
}

std::vector<std::optional<core::Link>> PgLinkStore::find_many(
    const std::vector<std::string>& codes) {
  using Links = std::vector<std::optional<core::Link>>;
  if (codes.empty()) return {};
  // A batch of one (every lookup at low load) is the plain point lookup: no
  // array to build or for the server to parse.
  if (codes.size() == 1) return Links{find(codes[0])};
  const std::string array = text_array_literal(codes);
  return with_connection(pool_, Retry::kOnceIfBroken, [&](pqxx::connection& conn) -> Links {
    pqxx::nontransaction txn(conn);
    pqxx::result r = txn.exec_prepared("link_find_many", array);
    std::unordered_map<std::string, core::Link> found;
    found.reserve(r.size());
    for (const pqxx::row& row : r) {
      core::Link link = link_from_row(row);
      std::string code = link.code;
      found.emplace(std::move(code), std::move(link));
    }
    Links links(codes.size());
    for (std::size_t i = 0; i < codes.size(); ++i) {
      auto it = found.find(codes[i]);
      if (it != found.end()) links[i] = it->second;
    }
    return links;
  });
}

std::optional<core::Link> PgLinkStore::update(std::string_view code, const LinkPatch& patch) {
  return with_connection(
      pool_, Retry::kNever, [&](pqxx::connection& conn) -> std::optional<core::Link> {
        const OptionalText target = patch.target ? OptionalText(*patch.target) : OptionalText();
        const OptionalText status =
            patch.status ? OptionalText(std::to_string(*patch.status)) : OptionalText();
        const OptionalText forward = patch.forward_query
                                         ? OptionalText(*patch.forward_query ? "true" : "false")
                                         : OptionalText();
        const OptionalText expires = patch.expires_at ? text_of(*patch.expires_at) : OptionalText();
        const OptionalText disabled =
            patch.disabled ? OptionalText(*patch.disabled ? "true" : "false") : OptionalText();
        pqxx::work txn(conn);
        pqxx::result r = txn.exec_prepared(
            "link_update", std::string(code), target.get(), status.get(), forward.get(),
            patch.expires_at ? "true" : "false", expires.get(), disabled.get());
        if (r.empty()) r = txn.exec_prepared("link_find", std::string(code));
        txn.commit();
        if (r.empty()) return std::nullopt;
        return link_from_row(r[0]);
      });
}

}  // namespace origin
