#include "origin/api_key.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <string>

#include "origin/authenticator.h"

namespace origin {
namespace {

std::string hex(const KeyHash& hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : hash) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

TEST(ApiKey, GeneratedKeysHaveTheDocumentedShapeAndNeverRepeat) {
  static const std::regex kShape("shk_[A-Za-z0-9_-]{43}");
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    const std::string key = generate_api_key();
    EXPECT_TRUE(std::regex_match(key, kShape)) << key;
    EXPECT_TRUE(seen.insert(key).second) << "repeated " << key;
  }
}

TEST(ApiKey, HashIsSha256) {
  // FIPS 180-2 test vectors.
  EXPECT_EQ(hex(hash_api_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(hash_api_key("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(ApiKey, DisplayPrefixIsShort) {
  const std::string key = generate_api_key();
  EXPECT_EQ(key_display_prefix(key), key.substr(0, 10));
}

TEST(ApiKey, NamesAreRestricted) {
  for (const char* good : {"alice", "ci-bot_2", "team.marketing", "A"}) {
    EXPECT_TRUE(is_valid_key_name(good)) << good;
  }
  for (const char* bad : {"", "has space", "semi;colon", "quote'", "tab\t", "ünïcode"}) {
    EXPECT_FALSE(is_valid_key_name(bad)) << bad;
  }
  EXPECT_TRUE(is_valid_key_name(std::string(64, 'a')));
  EXPECT_FALSE(is_valid_key_name(std::string(65, 'a')));
}

TEST(ApiKey, PresentedKeyComesFromBearerOrXApiKey) {
  struct Case {
    const char* authorization;
    const char* x_api_key;
    std::optional<std::string> key;
  } cases[] = {
      {"Bearer shk_abc", "", "shk_abc"},
      {"bearer shk_abc", "", "shk_abc"},
      {"BEARER   shk_abc  ", "", "shk_abc"},
      {"", "shk_xyz", "shk_xyz"},
      {"", "  shk_xyz\t", "shk_xyz"},
      {"Bearer shk_abc", "shk_xyz", "shk_abc"},  // Authorization wins
      {"Basic dXNlcjpwYXNz", "", std::nullopt},  // another scheme is no key
      {"Basic dXNlcjpwYXNz", "shk_xyz", "shk_xyz"},
      {"Bearer", "", std::nullopt},
      {"Bearer    ", "", std::nullopt},
      {"Bearershk_abc", "", std::nullopt},
      {"", "", std::nullopt},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(presented_key(c.authorization, c.x_api_key), c.key)
        << "Authorization '" << c.authorization << "', X-Api-Key '" << c.x_api_key << "'";
  }
}

// The storage seam: keys in a map, counting lookups.
class MapKeyStore : public KeyStore {
 public:
  std::optional<KeyIdentity> find_active(const KeyHash& hash) override {
    std::lock_guard<std::mutex> lock(mu);
    ++lookups;
    auto it = keys.find(hex(hash));
    if (it == keys.end()) return std::nullopt;
    return it->second;
  }
  std::mutex mu;
  std::map<std::string, KeyIdentity> keys;
  int lookups = 0;
};

TEST(Authenticator, CachesAnswersForTheTtlAndForgetsOnRequest) {
  MapKeyStore store;
  const std::string key = generate_api_key();
  store.keys[hex(hash_api_key(key))] = KeyIdentity{7, true};
  Authenticator auth(store, std::chrono::hours(1));

  Authenticator::Result r = auth.authenticate(key);
  EXPECT_EQ(r.outcome, Authenticator::Outcome::kValid);
  EXPECT_EQ(r.identity.id, 7);
  EXPECT_TRUE(r.identity.admin);
  auth.authenticate(key);
  EXPECT_EQ(store.lookups, 1) << "the second check is answered from the cache";

  store.keys.clear();  // revoked
  EXPECT_EQ(auth.authenticate(key).outcome, Authenticator::Outcome::kValid)
      << "still cached: only forget_all (NOTIFY) or the TTL ends it";
  auth.forget_all();
  EXPECT_EQ(auth.authenticate(key).outcome, Authenticator::Outcome::kInvalid);
  EXPECT_EQ(store.lookups, 2);
}

TEST(Authenticator, ZeroTtlAsksTheStoreEveryTime) {
  MapKeyStore store;
  const std::string key = generate_api_key();
  store.keys[hex(hash_api_key(key))] = KeyIdentity{1, false};
  Authenticator auth(store, std::chrono::milliseconds(0));
  for (int i = 0; i < 3; ++i) auth.authenticate(key);
  EXPECT_EQ(store.lookups, 3);
}

TEST(Authenticator, NoKeyAndMalformedKeysNeverReachTheStore) {
  MapKeyStore store;
  Authenticator auth(store, std::chrono::hours(1));
  EXPECT_EQ(auth.authenticate(std::nullopt).outcome, Authenticator::Outcome::kNoKey);
  for (const std::string& junk :
       {std::string("secret"), std::string("shk_short"), "shk_" + std::string(43, '!'),
        "xyz_" + std::string(43, 'a'), "shk_" + std::string(44, 'a')}) {
    EXPECT_EQ(auth.authenticate(junk).outcome, Authenticator::Outcome::kInvalid) << junk;
  }
  EXPECT_EQ(store.lookups, 0);
  // Well-formed but unknown: asked once, then remembered as unknown.
  const std::string unknown = generate_api_key();
  EXPECT_EQ(auth.authenticate(unknown).outcome, Authenticator::Outcome::kInvalid);
  EXPECT_EQ(auth.authenticate(unknown).outcome, Authenticator::Outcome::kInvalid);
  EXPECT_EQ(store.lookups, 1);
}

TEST(Authenticator, StaysBoundedByEmptyingWhenFull) {
  MapKeyStore store;
  Authenticator auth(store, std::chrono::hours(1), 3);
  const std::string first = generate_api_key();
  auth.authenticate(first);
  for (int i = 0; i < 3; ++i) auth.authenticate(generate_api_key());
  const int before = store.lookups;
  auth.authenticate(first);
  EXPECT_EQ(store.lookups, before + 1) << "the full cache was emptied, so `first` is asked again";
}

}  // namespace
}  // namespace origin
