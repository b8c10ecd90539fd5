#include "core/code.h"

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <system_error>

namespace core {
namespace {

constexpr std::array<std::string_view, 24> kReservedWords = {
    "api",     "shorten", "healthz", "readyz", "metrics", "stats",  "admin", "static",
    "assets",  "login",   "logout",  "docs",   "help",    "status", "edge",  "_edge",
    "version", "www",     "robots",  "new",    "links",   "about",  "auth",  "favicon"};

void fill_random(unsigned char* data, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    ssize_t got = getrandom(data + done, size - done, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "getrandom");
    }
    done += static_cast<std::size_t>(got);
  }
}

}  // namespace

std::string generate_code(std::size_t length) {
  constexpr std::size_t kAlphabetSize = kCodeAlphabet.size();
  // Bytes at or above this bound are rejected so every symbol is equally likely.
  constexpr unsigned kBound = 256 / kAlphabetSize * kAlphabetSize;
  std::string code;
  code.reserve(length);
  std::array<unsigned char, 64> buffer{};
  while (code.size() < length) {
    fill_random(buffer.data(), buffer.size());
    for (unsigned char byte : buffer) {
      if (byte >= kBound) continue;
      code.push_back(kCodeAlphabet[byte % kAlphabetSize]);
      if (code.size() == length) break;
    }
  }
  return code;
}

std::string lowercase_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_valid_code(std::string_view code) {
  if (code.empty() || code.size() > kMaxCodeLength) return false;
  for (char c : code) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool is_reserved_word(std::string_view lowercase_code) {
  for (std::string_view word : kReservedWords) {
    if (word == lowercase_code) return true;
  }
  return false;
}

AliasCheck check_alias(std::string_view lowercase_alias) {
  if (!is_valid_code(lowercase_alias)) return AliasCheck::kInvalid;
  if (is_reserved_word(lowercase_alias)) return AliasCheck::kReserved;
  return AliasCheck::kOk;
}

}  // namespace core
