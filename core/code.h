// Short codes: generation from a CSPRNG and the rules for custom aliases.
// Codes are case-insensitive; everything here works on the lowercase form.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace core {

// Lowercase letters and digits without look-alikes (no 0/o, 1/l/i).
inline constexpr std::string_view kCodeAlphabet = "abcdefghjkmnpqrstuvwxyz23456789";
inline constexpr std::size_t kMaxCodeLength = 64;
inline constexpr std::size_t kDefaultCodeLength = 7;

// Returns `length` characters drawn uniformly from kCodeAlphabet using the
// kernel CSPRNG (getrandom). Thread-safe. Throws std::system_error if the
// kernel refuses randomness.
std::string generate_code(std::size_t length);

// ASCII lowercase; other bytes are left as they are.
std::string lowercase_ascii(std::string_view text);

// True when `code` matches [a-z0-9_-]{1,64} (already lowercased).
bool is_valid_code(std::string_view code);

// Words the service routes itself or may route later; never usable as alias.
bool is_reserved_word(std::string_view lowercase_code);

enum class AliasCheck { kOk, kInvalid, kReserved };

// Checks a lowercased custom alias.
AliasCheck check_alias(std::string_view lowercase_alias);

}  // namespace core
