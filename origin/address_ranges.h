// A list of IP address ranges in CIDR notation ("127.0.0.0/8,::1/128"), for
// deciding which clients may use a restricted endpoint (METRICS_ALLOW) or
// which peers are trusted proxies.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace origin {

class AddressRanges {
 public:
  // Parses a comma-separated list of "ADDRESS/PREFIX" or a bare ADDRESS (a
  // single host), IPv4 or IPv6; spaces around items are ignored; an empty
  // list matches nothing. On error returns nullopt and sets *error to a
  // message quoting the offending item.
  static std::optional<AddressRanges> parse(std::string_view spec, std::string* error);

  // True when `ip` (textual, as the socket reports it) lies in a range. An
  // IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches as the IPv4 address.
  // False for anything that is not an address.
  bool contains(std::string_view ip) const;

  bool empty() const { return ranges_.empty(); }

 private:
  struct Range {
    std::array<std::uint8_t, 16> bytes{};  // IPv4 as ::ffff:a.b.c.d
    unsigned prefix = 0;                   // over the 128 bits
  };
  std::vector<Range> ranges_;
};

}  // namespace origin
