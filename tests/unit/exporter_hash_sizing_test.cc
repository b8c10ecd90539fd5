#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "exporter/hash_sizing.h"

namespace exporter {
namespace {

std::vector<std::string> random_codes(std::size_t count, std::size_t length, unsigned seed) {
  static const std::string kAlphabet = "abcdefghjkmnpqrstuvwxyz23456789";
  std::mt19937 rng(seed);
  std::vector<std::string> codes;
  codes.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    std::string code;
    for (std::size_t k = 0; k < length; ++k) code.push_back(kAlphabet[rng() % kAlphabet.size()]);
    code += std::to_string(i);  // unique
    codes.push_back(std::move(code));
  }
  return codes;
}

TEST(ExporterHashSizing, KeyHashIsNginxsCaseInsensitiveHash) {
  EXPECT_EQ(nginx_hash_key(""), 0u);
  EXPECT_EQ(nginx_hash_key("a"), 97u);
  EXPECT_EQ(nginx_hash_key("ab"), 97u * 31 + 98);
  EXPECT_EQ(nginx_hash_key("AB"), nginx_hash_key("ab"));
  EXPECT_EQ(nginx_hash_key("a-_9"), ((97u * 31 + '-') * 31 + '_') * 31 + '9');
}

TEST(ExporterHashSizing, ElementSizeIsNginxsEltSize) {
  EXPECT_EQ(nginx_hash_element_size(1), 16u);
  EXPECT_EQ(nginx_hash_element_size(6), 16u);
  EXPECT_EQ(nginx_hash_element_size(7), 24u);
  EXPECT_EQ(nginx_hash_element_size(14), 24u);
  EXPECT_EQ(nginx_hash_element_size(64), 80u);
}

TEST(ExporterHashSizing, LargeMapIsBuiltAtTheFirstTrialWithoutWarning) {
  for (const std::size_t count : {101u, 500u, 20000u, 100000u}) {
    const std::vector<std::string> keys = random_codes(count, 7, static_cast<unsigned>(count));
    const HashSizing sizing = size_map_hash(keys);
    EXPECT_EQ(sizing.trials, 1u) << count;
    const HashInitOutcome outcome = simulate_hash_init(keys, sizing.bucket_size, sizing.max_size);
    EXPECT_EQ(outcome.result, HashInitOutcome::Result::kOptimal) << count;
    EXPECT_EQ(outcome.trials, 1u) << count;
    EXPECT_EQ(outcome.size, sizing.hash_size) << count;
    EXPECT_GT(sizing.memory_bytes, 0u) << count;
  }
}

TEST(ExporterHashSizing, SmallMapIsBuiltWithoutWarningInTheTrialsItPredicts) {
  for (const std::size_t count : {1u, 2u, 50u, 100u}) {
    const std::vector<std::string> keys = random_codes(count, 7, static_cast<unsigned>(count));
    const HashSizing sizing = size_map_hash(keys);
    const HashInitOutcome outcome = simulate_hash_init(keys, sizing.bucket_size, sizing.max_size);
    EXPECT_EQ(outcome.result, HashInitOutcome::Result::kOptimal) << count;
    EXPECT_EQ(outcome.trials, sizing.trials) << count;
    EXPECT_EQ(outcome.size, sizing.hash_size) << count;
  }
}

TEST(ExporterHashSizing, EveryMapOfABlockIsBuiltWithoutWarningBigOnesAtTheFirstTrial) {
  std::vector<std::vector<std::string>> maps;
  unsigned seed = 11;
  for (const std::size_t count : {30000u, 28000u, 5000u, 150u, 60u, 3u}) {
    maps.push_back(random_codes(count, 7, ++seed));
  }
  const HashSizing sizing = size_map_hashes(maps);
  std::size_t placements = 0;
  for (const std::vector<std::string>& keys : maps) {
    const HashInitOutcome outcome = simulate_hash_init(keys, sizing.bucket_size, sizing.max_size);
    EXPECT_EQ(outcome.result, HashInitOutcome::Result::kOptimal) << keys.size();
    if (keys.size() * 100 > sizing.max_size) {
      EXPECT_EQ(outcome.trials, 1u) << keys.size() << " keys: the shortcut applies";
    }
    EXPECT_LE(outcome.trials, sizing.trials) << keys.size();
    placements += outcome.trials * keys.size();
  }
  EXPECT_EQ(placements, sizing.placements);
}

TEST(ExporterHashSizing, EmptyMapKeepsNginxDefaults) {
  const HashSizing sizing = size_map_hash({});
  EXPECT_EQ(sizing.max_size, 2048u);
  EXPECT_EQ(sizing.hash_size, 0u);
}

TEST(ExporterHashSizing, OtherSmallMapsInTheSameBlockStillFit) {
  const HashSizing sizing = size_map_hash(random_codes(50000, 7, 3));
  const HashInitOutcome outcome =
      simulate_hash_init({"", "none", "x"}, sizing.bucket_size, sizing.max_size);
  EXPECT_EQ(outcome.result, HashInitOutcome::Result::kOptimal);
}

TEST(ExporterHashSizing, LongestCodesFitInTheSmallestBucket) {
  const std::vector<std::string> keys = random_codes(300, 60, 5);
  const HashSizing sizing = size_map_hash(keys, 128);
  EXPECT_EQ(simulate_hash_init(keys, 128, sizing.max_size).result,
            HashInitOutcome::Result::kOptimal);
  EXPECT_THROW(size_map_hash(keys, 64), std::invalid_argument);
  EXPECT_THROW(size_map_hash(keys, 200), std::invalid_argument) << "not a multiple of 64";
}

TEST(ExporterHashSizing, NginxDefaultsWarnForAFewThousandCodes) {
  const std::vector<std::string> keys = random_codes(20000, 7, 9);
  const HashInitOutcome outcome = simulate_hash_init(keys, 64, 2048);
  EXPECT_EQ(outcome.result, HashInitOutcome::Result::kWarning);
  EXPECT_EQ(outcome.size, 2048u);
}

TEST(ExporterHashSizing, TooSmallBucketIsAnError) {
  EXPECT_EQ(simulate_hash_init({std::string(64, 'a')}, 64, 2048).result,
            HashInitOutcome::Result::kError);
}

}  // namespace
}  // namespace exporter
