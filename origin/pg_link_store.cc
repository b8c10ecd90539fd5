#include "origin/pg_link_store.h"

#include <pqxx/pqxx>
#include <string>

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
    " floor(extract(epoch FROM updated_at) * 1000)::bigint";

core::Link link_from_row(const pqxx::row& row) {
  core::Link link;
  link.code = row[0].as<std::string>();
  link.target = row[1].as<std::string>();
  link.status = row[2].as<int>();
  link.forward_query = row[3].as<bool>();
  if (!row[4].is_null()) link.expires_at = core::from_unix_ms(row[4].as<std::int64_t>());
  link.disabled = row[5].as<bool>();
  link.created_at = core::from_unix_ms(row[6].as<std::int64_t>());
  link.updated_at = core::from_unix_ms(row[7].as<std::int64_t>());
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

PgLinkStore::PgLinkStore(core::PgPool& pool, std::size_t code_length)
    : pool_(pool), code_length_(code_length) {}

void PgLinkStore::prepare_statements(pqxx::connection& conn) {
  const std::string cols = kColumns;
  conn.prepare("link_find", "SELECT " + cols + " FROM links WHERE code = $1");
  conn.prepare("link_insert",
               "INSERT INTO links (code, target, status, forward_query, expires_at)"
               " VALUES ($1, $2, $3, $4, $5::timestamptz)"
               " ON CONFLICT (code) DO NOTHING RETURNING " +
                   cols);
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
                               " floor(extract(epoch FROM links.updated_at) * 1000)::bigint"));
}

std::variant<core::Link, CreateFailure> PgLinkStore::create(const NewLink& link) {
  return with_connection(
      pool_, Retry::kNever, [&](pqxx::connection& conn) -> std::variant<core::Link, CreateFailure> {
        const OptionalText expires = text_of(link.expires_at);
        const int attempts = link.alias ? 1 : kCreateAttempts;
        for (int i = 0; i < attempts; ++i) {
          const std::string code = link.alias ? *link.alias : core::generate_code(code_length_);
          // A generated code must not be a reserved word either.
          if (!link.alias && core::is_reserved_word(code)) continue;
          pqxx::work txn(conn);
          pqxx::result r = txn.exec_prepared("link_insert", code, link.target, link.status,
                                             link.forward_query, expires.get());
          txn.commit();
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
