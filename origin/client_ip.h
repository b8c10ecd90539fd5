// Who is asking, for rate limits: the client address of a request, taken
// from X-Forwarded-For only when the connection comes from a trusted proxy.
// Pure (inet_pton/inet_ntop only).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace origin {

// An IPv4 or IPv6 address; IPv4 is held as IPv4-mapped IPv6 (::ffff:a.b.c.d),
// so "127.0.0.1" and "::ffff:127.0.0.1" are the same address.
struct IpAddress {
  std::array<unsigned char, 16> bytes{};
  bool operator==(const IpAddress& other) const { return bytes == other.bytes; }
  bool is_v4() const;
};

// Parses a literal address ("192.0.2.1", "2001:db8::1", "[2001:db8::1]");
// nullopt for anything else (ports, names, zone ids).
std::optional<IpAddress> parse_ip(std::string_view text);

// Text form: dotted quad for IPv4 (mapped or not), RFC 5952 for IPv6.
std::string format_ip(const IpAddress& address);

// A network: "10.0.0.0/8", "2001:db8::/32", or one address ("127.0.0.1" is
// /32, "::1" /128). Host bits set below the prefix are ignored.
struct Cidr {
  IpAddress network;
  int prefix_bits = 128;  // on the mapped form: an IPv4 /8 is stored as /104
  bool contains(const IpAddress& address) const;
};

// nullopt when `text` is not a network as above (prefix out of range too).
std::optional<Cidr> parse_cidr(std::string_view text);

// TRUSTED_PROXIES: comma-separated networks, spaces allowed around them.
class TrustedProxies {
 public:
  TrustedProxies() = default;
  // Throws std::invalid_argument quoting the first entry that is no network.
  static TrustedProxies parse(std::string_view list);

  bool empty() const { return networks_.empty(); }
  bool contains(const IpAddress& address) const;

 private:
  std::vector<Cidr> networks_;
};

// The client of a request that arrived from `peer` carrying the
// X-Forwarded-For values `forwarded_for` (all fields joined with ", "; empty
// when absent). When the peer is not trusted, the peer. Otherwise the
// right-most address of the list that is not a trusted proxy: each proxy
// appends the address it received the request from, so entries to the left
// of the first untrusted hop could have been written by the client itself.
// When every listed hop is trusted, the left-most; when an entry does not
// parse before an untrusted one is found, the last address trusted so far
// (a proxy that writes garbage cannot vouch for what lies to its left).
IpAddress client_address(const IpAddress& peer, std::string_view forwarded_for,
                         const TrustedProxies& trusted);

// The rate-limit subject of an address: "ip:<IPv4>", or "ip:<IPv6 /64>/64",
// since one IPv6 subscriber usually holds a whole /64 and could rotate
// through it.
std::string rate_limit_subject(const IpAddress& address);

}  // namespace origin
