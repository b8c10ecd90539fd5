// API keys as text: generation, the hash that is stored instead of the key,
// and reading a key from the request headers. Pure except for the CSPRNG.
//
// A key is "shk_" followed by 43 base64url characters: 256 bits from
// getrandom. Only its SHA-256 is stored, so a database dump discloses no
// usable key; its first kKeyPrefixLength characters are kept for display.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace origin {

inline constexpr std::string_view kKeyScheme = "shk_";
inline constexpr std::size_t kKeyLength = 4 + 43;
inline constexpr std::size_t kKeyPrefixLength = 10;

using KeyHash = std::array<unsigned char, 32>;

// A new key. Thread-safe. Throws std::system_error if getrandom fails.
std::string generate_api_key();

// SHA-256 of `key`.
KeyHash hash_api_key(std::string_view key);

// The characters of `key` shown by `origin keys list`.
std::string key_display_prefix(std::string_view key);

// True for a key name: [A-Za-z0-9._-]{1,64}.
bool is_valid_key_name(std::string_view name);

// The key a request presents: the token of `Authorization: Bearer <token>`
// (scheme case-insensitive), else the value of `X-Api-Key`, trimmed of
// spaces and tabs. nullopt when neither carries one (an Authorization of
// another scheme counts as none). The key is not checked here.
std::optional<std::string> presented_key(std::string_view authorization,
                                         std::string_view x_api_key);

}  // namespace origin
