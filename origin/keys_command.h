// `origin keys`: API keys for the HTTP API, managed by the operator.
//
//   origin keys create --name NAME [--admin]   prints the new key on stdout,
//                                              once; only its hash is stored
//   origin keys revoke NAME                    the key stops working on every
//                                              instance (see authenticator.h)
//   origin keys list                           names, prefixes, admin flag,
//                                              dates: never a key
//
// Configured by DATABASE_URL. Exit 0 on success (revoking a revoked key
// included); 1 for a duplicate or unknown name, a database error or a schema
// that is behind; 2 for bad usage. Errors are one line on stderr.
#pragma once

#include <string>
#include <vector>

namespace origin {

// Runs the command with `args`, the arguments after "keys"; returns the exit
// status. Never throws.
int run_keys_command(const std::vector<std::string>& args);

}  // namespace origin
