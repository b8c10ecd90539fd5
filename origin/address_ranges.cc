#include "origin/address_ranges.h"

#include <arpa/inet.h>

#include <cstring>

namespace origin {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

// The address as 16 bytes, IPv4 mapped into ::ffff:0:0/96; `is_v4` tells
// which form was written.
std::optional<std::array<std::uint8_t, 16>> to_bytes(std::string_view text, bool* is_v4) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  char buffer[46];
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  std::array<std::uint8_t, 16> bytes{};
  in_addr v4{};
  if (inet_pton(AF_INET, buffer, &v4) == 1) {
    bytes[10] = 0xff;
    bytes[11] = 0xff;
    std::memcpy(bytes.data() + 12, &v4, 4);
    *is_v4 = true;
    return bytes;
  }
  if (inet_pton(AF_INET6, buffer, bytes.data()) == 1) {
    *is_v4 = false;
    return bytes;
  }
  return std::nullopt;
}

bool matches(const std::array<std::uint8_t, 16>& address, const std::array<std::uint8_t, 16>& net,
             unsigned prefix) {
  unsigned bits = prefix;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
    const unsigned take = bits >= 8 ? 8 : bits;
    const std::uint8_t mask = static_cast<std::uint8_t>(0xff00u >> take);
    if ((address[i] & mask) != (net[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

}  // namespace

std::optional<AddressRanges> AddressRanges::parse(std::string_view spec, std::string* error) {
  AddressRanges result;
  std::size_t start = 0;
  while (start <= spec.size()) {
    const std::size_t comma = std::min(spec.find(',', start), spec.size());
    const std::string_view item = trim(spec.substr(start, comma - start));
    start = comma + 1;
    if (item.empty()) continue;
    const std::size_t slash = item.find('/');
    bool is_v4 = false;
    const auto bytes = to_bytes(item.substr(0, slash), &is_v4);
    if (!bytes) {
      *error = "'" + std::string(item) + "' is not an IP address or CIDR range";
      return std::nullopt;
    }
    const unsigned max_prefix = is_v4 ? 32 : 128;
    unsigned prefix = max_prefix;
    if (slash != std::string_view::npos) {
      const std::string_view digits = item.substr(slash + 1);
      if (digits.empty() || digits.size() > 3) {
        *error = "'" + std::string(item) + "' has a bad prefix length";
        return std::nullopt;
      }
      prefix = 0;
      for (char c : digits) {
        if (c < '0' || c > '9') {
          *error = "'" + std::string(item) + "' has a bad prefix length";
          return std::nullopt;
        }
        prefix = prefix * 10 + static_cast<unsigned>(c - '0');
      }
      if (prefix > max_prefix) {
        *error = "'" + std::string(item) + "': prefix length above " + std::to_string(max_prefix);
        return std::nullopt;
      }
    }
    result.ranges_.push_back({*bytes, is_v4 ? prefix + 96 : prefix});
  }
  return result;
}

bool AddressRanges::contains(std::string_view ip) const {
  bool is_v4 = false;
  const auto bytes = to_bytes(ip, &is_v4);
  if (!bytes) return false;
  for (const Range& range : ranges_) {
    if (matches(*bytes, range.bytes, range.prefix)) return true;
  }
  return false;
}

}  // namespace origin
