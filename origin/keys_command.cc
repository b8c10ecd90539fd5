#include "origin/keys_command.h"

#include <iostream>
#include <memory>
#include <pqxx/pqxx>

#include "core/config.h"
#include "origin/migrations.h"
#include "origin/pg_key_store.h"

namespace origin {
namespace {

constexpr const char* kUsage =
    "usage: origin keys create --name NAME [--admin] | revoke NAME | list\n";

int usage_error(const std::string& message) {
  std::cerr << "origin keys: " << message << "\n" << kUsage;
  return 2;
}

// A connection to a database whose schema has the api_keys table.
std::unique_ptr<pqxx::connection> connect() {
  core::DatabaseConfig db = core::load_database_config(core::Env());
  auto conn = std::make_unique<pqxx::connection>(db.url);
  auto pending = pending_migrations(*conn, embedded_migrations());
  if (!pending.empty()) {
    throw std::runtime_error("database schema is behind: migration " + pending.front() +
                             " is not applied (run `origin migrate`)");
  }
  return conn;
}

int create(const std::vector<std::string>& args) {
  std::string name;
  bool admin = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--admin") {
      admin = true;
    } else if (args[i] == "--name" && i + 1 < args.size()) {
      name = args[++i];
    } else if (args[i].rfind("--name=", 0) == 0) {
      name = args[i].substr(7);
    } else {
      return usage_error("unexpected argument '" + args[i] + "'");
    }
  }
  if (name.empty()) return usage_error("create needs --name NAME");
  if (!is_valid_key_name(name)) {
    return usage_error("key name '" + name + "' must be 1-64 characters from A-Z a-z 0-9 . _ -");
  }
  std::unique_ptr<pqxx::connection> conn = connect();
  const std::string key = generate_api_key();
  if (!insert_key(*conn, name, key, admin)) {
    std::cerr << "origin keys create: a key named '" << name
              << "' already exists (names of revoked keys stay taken)\n";
    return 1;
  }
  std::cerr << "origin keys: created " << (admin ? "admin " : "") << "key '" << name << "' (prefix "
            << key_display_prefix(key)
            << "); it is printed once, below, and cannot be shown again\n";
  std::cout << key << std::endl;
  return 0;
}

int revoke(const std::vector<std::string>& args) {
  if (args.size() != 2) return usage_error("revoke needs exactly one NAME");
  const std::string& name = args[1];
  std::unique_ptr<pqxx::connection> conn = connect();
  switch (revoke_key(*conn, name)) {
    case RevokeOutcome::kRevoked:
      std::cerr << "origin keys: revoked key '" << name << "'\n";
      return 0;
    case RevokeOutcome::kAlreadyRevoked:
      std::cerr << "origin keys: key '" << name << "' was already revoked\n";
      return 0;
    case RevokeOutcome::kUnknown:
      break;
  }
  std::cerr << "origin keys revoke: no key named '" << name << "'\n";
  return 1;
}

int list(const std::vector<std::string>& args) {
  if (args.size() != 1) return usage_error("list takes no arguments");
  std::unique_ptr<pqxx::connection> conn = connect();
  std::cout << "NAME\tPREFIX\tADMIN\tCREATED\tREVOKED\n";
  for (const KeyInfo& key : list_keys(*conn)) {
    std::cout << key.name << '\t' << key.prefix << '\t' << (key.admin ? "yes" : "no") << '\t'
              << key.created_at << '\t' << (key.revoked_at.empty() ? "-" : key.revoked_at) << '\n';
  }
  std::cout << std::flush;
  return 0;
}

}  // namespace

int run_keys_command(const std::vector<std::string>& args) {
  if (args.empty()) return usage_error("missing subcommand");
  const std::string& command = args[0];
  try {
    if (command == "create") return create(args);
    if (command == "revoke") return revoke(args);
    if (command == "list") return list(args);
  } catch (const std::exception& e) {
    std::string message = e.what();
    std::cerr << "origin keys " << command << ": " << message.substr(0, message.find('\n'))
              << std::endl;
    return 1;
  }
  return usage_error("unknown subcommand '" + command + "'");
}

}  // namespace origin
