// A bounded in-process cache of redirect answers, keyed by lowercase code, so
// that io threads answer known (and known-unknown) codes without the database.
//
// Invariants:
//  1. Every shard holds at most max_bytes / shard_count bytes (entries plus
//     its bucket array, as estimated by entry_bytes()), so bytes() never
//     exceeds max_bytes.
//  2. A put_*() whose token was taken before the last invalidate() of any code
//     in the same shard, or before the last clear(), changes nothing: a load
//     that read the database before a change cannot cache the old answer
//     after the change was announced. Likewise a put_negative() whose token
//     was taken before the last invalidate_negative() in the shard.
//  3. A negative entry never answers at or after its expiry, nor at a `now`
//     before the one it was put with (the wall clock stepped back).
//  4. Positive entries do not expire by time: they hold data that stays true
//     until the link changes, and then invalidate() removes them. A link past
//     its expires_at is still found; the caller answers "gone".
//
// Eviction is CLOCK (second chance) per shard: a hit sets the entry's
// referenced bit; to make room the hand clears set bits and evicts the first
// entry without one. A code hit at least once per sweep of its shard stays;
// one-off codes (scanners) go first.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/link.h"

namespace origin {

// What answering a redirect needs from a link (no code, no timestamps).
struct Redirect {
  std::string target;
  int status = 307;
  bool forward_query = true;
  bool disabled = false;
  std::optional<core::TimePoint> expires_at;
};

Redirect redirect_of(const core::Link& link);

// Same rules as core::state_at for a Link.
core::LinkState state_at(const Redirect& redirect, core::TimePoint now);

struct LinkCacheOptions {
  std::size_t max_bytes = std::size_t{256} << 20;  // LINK_CACHE_MAX_BYTES
  std::chrono::milliseconds negative_ttl{5000};    // LINK_CACHE_NEGATIVE_TTL_MS
  std::size_t shards = 64;                         // rounded up to a power of two, at most 1024
};

// Thread-safe: every member function may be called from any thread.
class LinkCache {
 public:
  enum class Lookup {
    kMiss,      // nothing cached: load from the store
    kFound,     // *out holds the link's redirect data
    kNotFound,  // the store recently had no such code: answer 404
  };

  // Taken by begin_load() before reading the store; see invariant 2.
  class LoadToken {
   public:
    LoadToken() = default;  // a token that no put accepts

   private:
    friend class LinkCache;
    LoadToken(std::size_t shard, std::uint64_t generation, std::uint64_t created_generation)
        : shard_(shard), generation_(generation), created_generation_(created_generation) {}
    std::size_t shard_ = static_cast<std::size_t>(-1);
    std::uint64_t generation_ = 0;
    std::uint64_t created_generation_ = 0;  // refuses only put_negative()
  };

  struct Stats {
    std::uint64_t hits = 0;           // lookups answered kFound
    std::uint64_t negative_hits = 0;  // lookups answered kNotFound
    std::uint64_t misses = 0;         // lookups answered kMiss
    std::uint64_t evictions = 0;      // entries dropped to make room
    std::uint64_t stale_puts = 0;     // puts ignored because of invariant 2
    std::size_t entries = 0;
    std::size_t bytes = 0;
  };

  // Codes longer than this are never cached (lookup misses, puts are ignored).
  static constexpr std::size_t kMaxCodeBytes = 255;

  // A cache whose max_bytes is below this caches nothing. Shards are merged
  // until each has at least this budget.
  static constexpr std::size_t kMinShardBytes = 4096;

  explicit LinkCache(LinkCacheOptions options = {});
  ~LinkCache();
  LinkCache(const LinkCache&) = delete;
  LinkCache& operator=(const LinkCache&) = delete;

  // Looks `code` up as of `now`. On kFound copies the entry into *out, reusing
  // out->target's capacity: with a Redirect kept across calls, a hit does not
  // allocate. *out is untouched otherwise.
  // `count` false: a second look for a request already counted (stats()
  // unchanged).
  Lookup lookup(std::string_view code, core::TimePoint now, Redirect* out, bool count = true);

  // Call before reading `code` from the store; pass the token to put_*().
  LoadToken begin_load(std::string_view code);

  // Caches what the store answered for `code`, replacing any entry for it.
  // Returns false when ignored: the token is stale (invariant 2) or was taken
  // for a code of another shard, the code is too long, or the entry cannot fit
  // even in an empty shard.
  bool put_positive(std::string_view code, const LoadToken& token, const Redirect& redirect);
  // The negative entry answers kNotFound until now + negative_ttl.
  bool put_negative(std::string_view code, const LoadToken& token, core::TimePoint now);

  // Drops the entry for `code` and makes every load of a code in its shard
  // that began before this call unable to insert.
  void invalidate(std::string_view code);
  // A code was created (NOTIFY link_created): drops a negative entry for it,
  // and refuses negative puts of loads begun before. A positive entry, or a
  // positive put in flight, stays: it was read after the insert committed
  // (nothing existed to read before), so the insert cannot have made it
  // stale. This is what keeps a campaign's first burst at one lookup when
  // the insert's own notification arrives while that lookup runs.
  void invalidate_negative(std::string_view code);

  // Drops every entry and makes every load that began before unable to insert.
  void clear();

  Stats stats() const;
  std::size_t bytes() const;
  std::size_t max_bytes() const { return shard_max_bytes_ * shard_count_; }

  // Bytes charged for one entry: the allocation of a fixed 48-byte header
  // followed by the code and target bytes, rounded as glibc malloc rounds
  // (request + 8, up to a multiple of 16, at least 32). The bucket array is
  // charged separately, 8 bytes per bucket, 1-2 buckets per entry.
  static std::size_t entry_bytes(std::size_t code_size, std::size_t target_size);

 private:
  struct Entry;
  struct Shard;

  bool usable() const { return shard_max_bytes_ >= kMinShardBytes; }
  // invalidate() and invalidate_negative(): removes the entry for `code`
  // (only a negative one when `negative_only`) and bumps the generation
  // that refuses the puts concerned.
  void drop(std::string_view code, bool negative_only);
  bool insert(std::string_view code, const LoadToken& token, const Redirect* redirect,
              std::int64_t negative_expiry_ms);

  std::size_t shard_count_;
  std::size_t shard_mask_;  // shard index = (hash >> 32) & shard_mask_
  std::size_t shard_max_bytes_;
  std::chrono::milliseconds negative_ttl_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace origin
