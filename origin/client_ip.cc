#include "origin/client_ip.h"

#include <arpa/inet.h>

#include <stdexcept>

namespace origin {
namespace {

constexpr std::array<unsigned char, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool IpAddress::is_v4() const {
  for (std::size_t i = 0; i < kMappedPrefix.size(); ++i) {
    if (bytes[i] != kMappedPrefix[i]) return false;
  }
  return true;
}

std::optional<IpAddress> parse_ip(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  const std::string s(text);
  IpAddress address;
  unsigned char v4[4];
  if (inet_pton(AF_INET, s.c_str(), v4) == 1) {
    std::copy(kMappedPrefix.begin(), kMappedPrefix.end(), address.bytes.begin());
    std::copy(v4, v4 + 4, address.bytes.begin() + 12);
    return address;
  }
  if (inet_pton(AF_INET6, s.c_str(), address.bytes.data()) == 1) return address;
  return std::nullopt;
}

std::string format_ip(const IpAddress& address) {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (address.is_v4()) {
    inet_ntop(AF_INET, address.bytes.data() + 12, buffer, sizeof buffer);
  } else {
    inet_ntop(AF_INET6, address.bytes.data(), buffer, sizeof buffer);
  }
  return buffer;
}

bool Cidr::contains(const IpAddress& address) const {
  int bits = prefix_bits;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    const unsigned mask = bits >= 8 ? 0xffu : (0xffu << (8 - bits)) & 0xffu;
    if ((address.bytes[i] & mask) != (network.bytes[i] & mask)) return false;
  }
  return true;
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  text = trim(text);
  const auto slash = text.find('/');
  std::optional<IpAddress> address = parse_ip(text.substr(0, slash));
  if (!address) return std::nullopt;
  const int max_bits = address->is_v4() ? 32 : 128;
  int bits = max_bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    bits = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      bits = bits * 10 + (c - '0');
    }
    if (bits > max_bits) return std::nullopt;
  }
  Cidr cidr;
  cidr.network = *address;
  cidr.prefix_bits = address->is_v4() ? bits + 96 : bits;
  return cidr;
}

TrustedProxies TrustedProxies::parse(std::string_view list) {
  TrustedProxies proxies;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view entry = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (entry.empty()) continue;
    std::optional<Cidr> cidr = parse_cidr(entry);
    if (!cidr) {
      throw std::invalid_argument("'" + std::string(entry) +
                                  "' is not an address or network (e.g. 10.0.0.0/8)");
    }
    proxies.networks_.push_back(*cidr);
  }
  return proxies;
}

bool TrustedProxies::contains(const IpAddress& address) const {
  for (const Cidr& network : networks_) {
    if (network.contains(address)) return true;
  }
  return false;
}

IpAddress client_address(const IpAddress& peer, std::string_view forwarded_for,
                         const TrustedProxies& trusted) {
  if (!trusted.contains(peer)) return peer;
  IpAddress client = peer;
  while (!forwarded_for.empty()) {
    const auto comma = forwarded_for.rfind(',');
    const std::string_view entry =
        trim(comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1));
    forwarded_for =
        comma == std::string_view::npos ? std::string_view() : forwarded_for.substr(0, comma);
    if (entry.empty()) continue;
    std::optional<IpAddress> hop = parse_ip(entry);
    if (!hop) return client;
    client = *hop;
    if (!trusted.contains(client)) return client;
  }
  return client;
}

std::string rate_limit_subject(const IpAddress& address) {
  if (address.is_v4()) return "ip:" + format_ip(address);
  IpAddress network = address;
  std::fill(network.bytes.begin() + 8, network.bytes.end(), 0);
  return "ip:" + format_ip(network) + "/64";
}

}  // namespace origin
