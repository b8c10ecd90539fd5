// LinkStore on PostgreSQL through the connection pool.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/pg_pool.h"
#include "origin/link_store.h"

namespace origin {

// `values` as a PostgreSQL array literal of text, e.g. {"a","b\"c"} for a
// and b"c. Every element is double-quoted, with '"' and '\' escaped by a
// backslash, so any text (commas, braces, spaces, the word NULL) is one
// element, unchanged.
std::string text_array_literal(const std::vector<std::string>& values);

class PgLinkStore : public LinkStore {
 public:
  // `code_length`: length of generated codes. The pool must have been built
  // with PgLinkStore::prepare_statements as its setup function.
  PgLinkStore(core::PgPool& pool, std::size_t code_length);

  std::variant<core::Link, CreateFailure, RateLimited> create(const NewLink& link) override;
  std::optional<core::Link> find(std::string_view code) override;
  // One statement whatever the number of codes: `code = ANY($1::text[])`
  // (libpqxx 6.4 binds no arrays, so the codes go as an array literal).
  std::vector<std::optional<core::Link>> find_many(const std::vector<std::string>& codes) override;
  std::optional<core::Link> update(std::string_view code, const LinkPatch& patch) override;

  // Prepares this store's statements on a new connection.
  static void prepare_statements(pqxx::connection& conn);

 private:
  core::PgPool& pool_;
  const std::size_t code_length_;
};

}  // namespace origin
