#include "origin/client_ip.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "origin/origin_config.h"

namespace origin {
namespace {

IpAddress ip(const std::string& text) {
  std::optional<IpAddress> parsed = parse_ip(text);
  if (!parsed) throw std::invalid_argument("test address " + text);
  return *parsed;
}

TEST(ClientIp, ParsesAndFormatsAddresses) {
  struct Case {
    const char* in;
    const char* out;  // nullptr: refused
  } cases[] = {
      {"192.0.2.1", "192.0.2.1"},
      {"::ffff:192.0.2.1", "192.0.2.1"},
      {"2001:DB8::1", "2001:db8::1"},
      {"[2001:db8::1]", "2001:db8::1"},
      {"::1", "::1"},
      {"", nullptr},
      {"192.0.2.1:80", nullptr},
      {"192.0.2", nullptr},
      {"256.0.0.1", nullptr},
      {"example.com", nullptr},
      {"fe80::1%eth0", nullptr},
      {" 192.0.2.1", nullptr},
  };
  for (const Case& c : cases) {
    std::optional<IpAddress> parsed = parse_ip(c.in);
    if (c.out == nullptr) {
      EXPECT_FALSE(parsed.has_value()) << c.in;
    } else {
      ASSERT_TRUE(parsed.has_value()) << c.in;
      EXPECT_EQ(format_ip(*parsed), c.out) << c.in;
    }
  }
}

TEST(ClientIp, CidrMatchesItsNetworkOnly) {
  struct Case {
    const char* cidr;
    const char* address;
    bool inside;
  } cases[] = {
      {"10.0.0.0/8", "10.255.1.2", true},
      {"10.0.0.0/8", "11.0.0.1", false},
      {"192.168.1.0/24", "192.168.1.255", true},
      {"192.168.1.0/24", "192.168.2.0", false},
      {"192.168.1.77/24", "192.168.1.1", true},  // host bits ignored
      {"172.16.0.0/12", "172.31.255.255", true},
      {"172.16.0.0/12", "172.32.0.0", false},
      {"127.0.0.1", "127.0.0.1", true},
      {"127.0.0.1", "127.0.0.2", false},
      {"0.0.0.0/0", "203.0.113.9", true},
      {"0.0.0.0/0", "2001:db8::1", false},  // an IPv4 network holds no IPv6 address
      {"10.0.0.0/8", "::ffff:10.1.1.1", true},
      {"2001:db8::/32", "2001:db8:ffff::1", true},
      {"2001:db8::/32", "2001:db9::1", false},
      {"2001:db8::/33", "2001:db8:7fff::1", true},
      {"2001:db8::/33", "2001:db8:8000::1", false},
      {"::1", "::1", true},
      {"::/0", "192.0.2.1", true},  // mapped form: all of IPv6 includes it
  };
  for (const Case& c : cases) {
    std::optional<Cidr> cidr = parse_cidr(c.cidr);
    ASSERT_TRUE(cidr.has_value()) << c.cidr;
    EXPECT_EQ(cidr->contains(ip(c.address)), c.inside) << c.cidr << " contains " << c.address;
  }
}

TEST(ClientIp, RefusesMalformedNetworks) {
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8/8",
                          "localhost", "10.0.0.0/-1", "/8", "10.0.0.0/0008"}) {
    EXPECT_FALSE(parse_cidr(bad).has_value()) << bad;
  }
}

TEST(ClientIp, TrustedProxiesParsesAListAndQuotesTheBadEntry) {
  TrustedProxies proxies = TrustedProxies::parse(" 10.0.0.0/8 , ::1,192.168.0.0/16,");
  EXPECT_TRUE(proxies.contains(ip("10.2.3.4")));
  EXPECT_TRUE(proxies.contains(ip("::1")));
  EXPECT_TRUE(proxies.contains(ip("192.168.9.9")));
  EXPECT_FALSE(proxies.contains(ip("203.0.113.1")));
  EXPECT_TRUE(TrustedProxies::parse("").empty());
  try {
    TrustedProxies::parse("10.0.0.0/8, proxy.internal");
    FAIL() << "a host name was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'proxy.internal'"), std::string::npos) << e.what();
  }
}

TEST(ClientIp, XForwardedForIsBelievedOnlyFromTrustedPeers) {
  const TrustedProxies trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1");
  struct Case {
    const char* peer;
    const char* forwarded_for;
    const char* client;
  } cases[] = {
      // An untrusted peer's header is ignored, whatever it says.
      {"203.0.113.5", "198.51.100.1", "203.0.113.5"},
      {"203.0.113.5", "10.0.0.1", "203.0.113.5"},
      // From a trusted proxy: the right-most untrusted hop.
      {"127.0.0.1", "198.51.100.1", "198.51.100.1"},
      {"127.0.0.1", "1.1.1.1, 198.51.100.1", "198.51.100.1"},  // the left one is the client's claim
      {"127.0.0.1", "1.1.1.1, 198.51.100.1, 10.9.9.9", "198.51.100.1"},
      {"10.1.1.1", "198.51.100.1,10.2.2.2 ,  10.3.3.3", "198.51.100.1"},
      // Every hop trusted: the left-most.
      {"127.0.0.1", "10.0.0.7, 10.0.0.8", "10.0.0.7"},
      // No header: the peer.
      {"127.0.0.1", "", "127.0.0.1"},
      // Garbage: the last address vouched for by a trusted hop.
      {"127.0.0.1", "198.51.100.1, junk", "127.0.0.1"},
      {"127.0.0.1", "junk, 10.0.0.9", "10.0.0.9"},
      {"127.0.0.1", "unknown, 198.51.100.1", "198.51.100.1"},
      // Brackets and IPv6.
      {"127.0.0.1", "[2001:db8::5]", "2001:db8::5"},
      {"::ffff:127.0.0.1", "192.0.2.44", "192.0.2.44"},
      // Empty entries are skipped.
      {"127.0.0.1", "198.51.100.1, , ", "198.51.100.1"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(format_ip(client_address(ip(c.peer), c.forwarded_for, trusted)), c.client)
        << "peer " << c.peer << ", X-Forwarded-For '" << c.forwarded_for << "'";
  }
  // Nobody trusted: always the peer.
  EXPECT_EQ(format_ip(client_address(ip("127.0.0.1"), "198.51.100.1", TrustedProxies())),
            "127.0.0.1");
}

TEST(ClientIp, RateLimitSubjectGroupsAnIpv6SubscriberByItsSlash64) {
  EXPECT_EQ(rate_limit_subject(ip("192.0.2.9")), "ip:192.0.2.9");
  EXPECT_EQ(rate_limit_subject(ip("::ffff:192.0.2.9")), "ip:192.0.2.9");
  EXPECT_EQ(rate_limit_subject(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), "ip:2001:db8:1:2::/64");
  EXPECT_EQ(rate_limit_subject(ip("2001:db8:1:2::1")),
            rate_limit_subject(ip("2001:db8:1:2::ffff")));
  EXPECT_NE(rate_limit_subject(ip("2001:db8:1:2::1")), rate_limit_subject(ip("2001:db8:1:3::1")));
}

OriginConfig config_from(const std::map<std::string, std::string>& vars) {
  return load_origin_config(core::Env([&vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  }));
}

TEST(OriginConfigAccess, DefaultsAreClosedWithAThousandPerMinute) {
  const OriginConfig c = config_from({});
  EXPECT_FALSE(c.open_shorten);
  EXPECT_EQ(c.create_per_ip_per_min, 1000);
  EXPECT_EQ(c.create_per_key_per_min, 1000);
  EXPECT_TRUE(c.trusted_proxies.empty());
  EXPECT_EQ(c.api_key_cache_ttl, std::chrono::milliseconds(5000));
}

TEST(OriginConfigAccess, ReadsTheAccessVariables) {
  const OriginConfig c = config_from({{"OPEN_SHORTEN", "true"},
                                      {"RATE_LIMIT_CREATE_PER_IP_PER_MIN", "0"},
                                      {"RATE_LIMIT_CREATE_PER_KEY_PER_MIN", "50"},
                                      {"TRUSTED_PROXIES", "10.0.0.0/8"},
                                      {"API_KEY_CACHE_TTL_MS", "250"}});
  EXPECT_TRUE(c.open_shorten);
  EXPECT_EQ(c.create_per_ip_per_min, 0);
  EXPECT_EQ(c.create_per_key_per_min, 50);
  EXPECT_TRUE(c.trusted_proxies.contains(ip("10.1.1.1")));
  EXPECT_EQ(c.api_key_cache_ttl, std::chrono::milliseconds(250));
}

TEST(OriginConfigAccess, RefusesBadValuesNamingTheVariable) {
  const std::map<std::string, std::string> bad[] = {
      {{"TRUSTED_PROXIES", "10.0.0.0/8,proxy"}},    {{"OPEN_SHORTEN", "maybe"}},
      {{"RATE_LIMIT_CREATE_PER_IP_PER_MIN", "-1"}}, {{"RATE_LIMIT_CREATE_PER_KEY_PER_MIN", "lots"}},
      {{"API_KEY_CACHE_TTL_MS", "600001"}},
  };
  for (const auto& vars : bad) {
    const std::string name = vars.begin()->first;
    try {
      config_from(vars);
      ADD_FAILURE() << name << "=" << vars.begin()->second << " was accepted";
    } catch (const core::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace origin
