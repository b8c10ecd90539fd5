// Sizing of nginx's map hash (map_hash_bucket_size, map_hash_max_size) from
// the exact key set, so that nginx builds the hash at its first trial.
//
// How nginx 1.22 builds a map hash (src/core/ngx_hash.c, ngx_hash_init), on
// 64-bit builds:
//  1. Each key takes elt(key) = 8 + align8(len + 2) bytes in its bucket; a
//     bucket of `bucket_size` bytes holds keys totalling at most bucket_size - 8.
//     A key with elt + 8 > bucket_size is an error.
//  2. Trials start at start = n / ((bucket_size - 8) / 16) (at least 1), but
//     when max_size > 10000 and max_size / n < 100, at max_size - 1000.
//  3. For size = start .. max_size, every key goes to bucket
//     ngx_hash_key_lc(key) % size; the first size where no bucket overflows is
//     used. Each trial costs a pass over all keys.
//  4. When no size fits, nginx logs "could not build optimal map_hash" and uses
//     max_size anyway, with overfull buckets.
// Because of (2), max_size = S + 1000 for a size S that fits makes the first
// trial succeed. That is what size_map_hashes chooses whenever a map has more
// than 100 keys; smaller maps cannot use the shortcut (max_size would have to
// exceed 100 * n) and take a few cheap trials from the natural start instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace exporter {

inline constexpr std::size_t kDefaultMapHashBucketSize = 256;

// ngx_hash_key_lc: key = key * 31 + lowercase(byte), in 64-bit arithmetic.
std::uint64_t nginx_hash_key(std::string_view key);

// Bytes one key of `key_length` bytes takes in a bucket (NGX_HASH_ELT_SIZE).
std::size_t nginx_hash_element_size(std::size_t key_length);

// What ngx_hash_init would do with these keys and settings.
struct HashInitOutcome {
  enum class Result {
    kOptimal,  // a size fit: no warning
    kWarning,  // no size fit: "could not build optimal map_hash", size = max_size
    kError,    // nginx refuses the configuration
  };
  Result result = Result::kError;
  std::size_t size = 0;    // buckets nginx allocates
  std::size_t trials = 0;  // sizes tried (each a pass over every key)
};

// Simulates ngx_hash_init for `keys` (compared case-insensitively, as nginx
// does) with map_hash_bucket_size `bucket_size` (a multiple of 64) and
// map_hash_max_size `max_size`. Costs trials * keys.size(). Pure.
HashInitOutcome simulate_hash_init(const std::vector<std::string>& keys, std::size_t bucket_size,
                                   std::size_t max_size);

// The directives to write before the maps of an http block.
struct HashSizing {
  std::size_t bucket_size = 0;  // map_hash_bucket_size
  std::size_t max_size = 0;     // map_hash_max_size
  std::size_t hash_size = 0;    // buckets of the largest hash nginx builds (0: no keys)
  // Most sizes ngx_hash_init tries for one map: 1 when maps have > 100 keys.
  std::size_t trials = 0;
  // Key placements of all those trials together: what building costs nginx.
  std::size_t placements = 0;
  // Estimated bytes of the built hashes: bucket pointers plus cache-line
  // aligned buckets (keys only; map values are stored separately).
  std::size_t memory_bytes = 0;
};

// Chooses map_hash_max_size for maps holding `maps` key sets in one http
// block (map_hash_* apply to every map of the block) with `bucket_size` (a
// multiple of 64 of at least 128, enough for any 64-byte code), so that nginx
// builds every hash without a warning: maps of more than max_size / 100 keys
// at their first trial, at a size that fits all of them (close to the
// smallest); smaller maps after a short search from their natural start.
// Maps of a few keys added later (the template's) also fit. Runs a few dozen
// trials of its own. Throws std::invalid_argument for a bad bucket size or
// keys no size fits. Pure.
HashSizing size_map_hashes(const std::vector<std::vector<std::string>>& maps,
                           std::size_t bucket_size = kDefaultMapHashBucketSize);

// size_map_hashes for a single map.
HashSizing size_map_hash(const std::vector<std::string>& keys,
                         std::size_t bucket_size = kDefaultMapHashBucketSize);

}  // namespace exporter
