#include "origin/api_key.h"

#include <openssl/sha.h>
#include <sys/random.h>

#include <cerrno>
#include <system_error>

namespace origin {
namespace {

constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

std::string generate_api_key() {
  unsigned char bytes[33];  // 264 bits: 44 base64 characters, of which 43 are used
  std::size_t done = 0;
  while (done < sizeof bytes) {
    ssize_t got = getrandom(bytes + done, sizeof bytes - done, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "getrandom");
    }
    done += static_cast<std::size_t>(got);
  }
  std::string key(kKeyScheme);
  for (std::size_t i = 0; i + 2 < sizeof bytes; i += 3) {
    const unsigned v = (unsigned{bytes[i]} << 16) | (unsigned{bytes[i + 1]} << 8) | bytes[i + 2];
    key += kBase64Url[(v >> 18) & 63];
    key += kBase64Url[(v >> 12) & 63];
    key += kBase64Url[(v >> 6) & 63];
    key += kBase64Url[v & 63];
  }
  key.resize(kKeyLength);  // 43 characters x 6 bits = 258 >= 256 bits of entropy
  return key;
}

KeyHash hash_api_key(std::string_view key) {
  KeyHash hash;
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), hash.data());
  return hash;
}

std::string key_display_prefix(std::string_view key) {
  return std::string(key.substr(0, kKeyPrefixLength));
}

bool is_valid_key_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::optional<std::string> presented_key(std::string_view authorization,
                                         std::string_view x_api_key) {
  authorization = trim(authorization);
  const auto space = authorization.find_first_of(" \t");
  if (space != std::string_view::npos && iequals(authorization.substr(0, space), "bearer")) {
    std::string_view token = trim(authorization.substr(space));
    if (!token.empty()) return std::string(token);
  }
  x_api_key = trim(x_api_key);
  if (!x_api_key.empty()) return std::string(x_api_key);
  return std::nullopt;
}

}  // namespace origin
