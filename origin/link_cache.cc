#include "origin/link_cache.h"

#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <new>

namespace origin {
namespace {

constexpr std::uint8_t kNegative = 1;
constexpr std::uint8_t kForwardQuery = 2;
constexpr std::uint8_t kDisabled = 4;
constexpr std::uint8_t kHasExpiry = 8;
constexpr std::uint8_t kReferenced = 16;

constexpr std::size_t kMaxShards = 1024;
constexpr std::size_t kInitialBuckets = 16;

// glibc malloc on 64-bit: an 8-byte size header, 16-byte granularity, 32-byte
// minimum chunk. Other allocators round to size classes of similar overhead.
std::size_t malloc_chunk_bytes(std::size_t request) {
  const std::size_t chunk = (request + 8 + 15) & ~std::size_t{15};
  return chunk < 32 ? 32 : chunk;
}

std::int64_t to_ms(core::TimePoint t) { return t.time_since_epoch().count(); }

std::uint64_t hash_of(std::string_view code) { return std::hash<std::string_view>{}(code); }

}  // namespace

// One allocation: this header, then the code bytes, then the target bytes.
struct LinkCache::Entry {
  Entry* chain_next;  // next in the bucket chain
  Entry* ring_prev;   // clock ring
  Entry* ring_next;
  // Negative: when it stops answering. Positive with kHasExpiry: the link's
  // expires_at. Milliseconds since the Unix epoch.
  std::int64_t expiry_ms;
  std::uint32_t hash;  // low 32 bits of hash_of(code)
  std::uint32_t target_size;
  std::uint16_t status;
  std::uint8_t code_size;
  std::uint8_t flags;

  char* code_data() { return reinterpret_cast<char*>(this + 1); }
  std::string_view code() { return {code_data(), code_size}; }
  const char* target_data() { return code_data() + code_size; }
  std::size_t charge() const { return entry_bytes(code_size, target_size); }

  static Entry* make(std::string_view code, std::uint32_t hash, std::string_view target) {
    void* memory = ::operator new(sizeof(Entry) + code.size() + target.size());
    Entry* e = new (memory) Entry{};
    e->hash = hash;
    e->code_size = static_cast<std::uint8_t>(code.size());
    e->target_size = static_cast<std::uint32_t>(target.size());
    // memcpy from a null pointer is undefined even for 0 bytes.
    if (!code.empty()) std::memcpy(e->code_data(), code.data(), code.size());
    if (!target.empty()) std::memcpy(e->code_data() + code.size(), target.data(), target.size());
    return e;
  }
  static void destroy(Entry* e) { ::operator delete(e); }
};

struct alignas(64) LinkCache::Shard {
  std::mutex mu;  // guards every field below
  std::unique_ptr<Entry*[]> buckets;
  std::size_t bucket_count = 0;  // a power of two; 0 when the cache is too small to hold anything
  Entry* hand = nullptr;         // clock hand; null when the shard is empty
  Entry* no_bucket = nullptr;    // what find() points into when bucket_count is 0
  std::size_t entries = 0;
  std::size_t bytes = 0;  // entry charges plus the bucket array
  std::uint64_t generation = 0;
  std::uint64_t created_generation = 0;  // bumped by invalidate_negative()
  std::uint64_t hits = 0;
  std::uint64_t negative_hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;
  std::uint64_t stale_puts = 0;

  static std::size_t bucket_array_bytes(std::size_t count) {
    return count == 0 ? 0 : malloc_chunk_bytes(count * sizeof(Entry*));
  }

  // The link that points at the entry for `code`, or the null link ending its
  // chain when there is none.
  Entry** find(std::string_view code, std::uint32_t hash) {
    if (bucket_count == 0) return &no_bucket;
    Entry** link = &buckets[hash & (bucket_count - 1)];
    while (*link != nullptr && ((*link)->hash != hash || (*link)->code() != code)) {
      link = &(*link)->chain_next;
    }
    return link;
  }

  // Inserts `e` (whose key is not present) just behind the hand, so that it
  // is the last entry the hand reaches.
  void link(Entry* e) {
    Entry** head = &buckets[e->hash & (bucket_count - 1)];
    e->chain_next = *head;
    *head = e;
    if (hand == nullptr) {
      e->ring_prev = e->ring_next = e;
      hand = e;
    } else {
      e->ring_next = hand;
      e->ring_prev = hand->ring_prev;
      hand->ring_prev->ring_next = e;
      hand->ring_prev = e;
    }
    ++entries;
    bytes += e->charge();
  }

  // Removes the entry `*link` points at and returns it.
  Entry* unlink(Entry** link) {
    Entry* e = *link;
    *link = e->chain_next;
    if (e->ring_next == e) {
      hand = nullptr;
    } else {
      e->ring_prev->ring_next = e->ring_next;
      e->ring_next->ring_prev = e->ring_prev;
      if (hand == e) hand = e->ring_next;
    }
    --entries;
    bytes -= e->charge();
    return e;
  }

  // Requires a non-empty shard. Terminates within two turns of the ring: the
  // first turn clears every referenced bit it passes.
  void evict_one() {
    while (hand->flags & kReferenced) {
      hand->flags = static_cast<std::uint8_t>(hand->flags & ~kReferenced);
      hand = hand->ring_next;
    }
    Entry* victim = hand;
    Entry::destroy(unlink(find(victim->code(), victim->hash)));
    ++evictions;
  }

  void grow(std::size_t count) {
    std::unique_ptr<Entry*[]> fresh(new Entry*[count]());
    if (hand != nullptr) {
      Entry* e = hand;
      do {
        Entry** head = &fresh[e->hash & (count - 1)];
        e->chain_next = *head;
        *head = e;
        e = e->ring_next;
      } while (e != hand);
    }
    bytes += bucket_array_bytes(count) - bucket_array_bytes(bucket_count);
    buckets = std::move(fresh);
    bucket_count = count;
  }

  // Takes every entry out of the shard; free them with destroy_ring() after
  // unlocking.
  Entry* take_ring() {
    Entry* ring = hand;
    hand = nullptr;
    entries = 0;
    if (ring != nullptr) ring->ring_prev->ring_next = nullptr;
    return ring;
  }

  static void destroy_ring(Entry* e) {
    while (e != nullptr) {
      Entry* next = e->ring_next;
      Entry::destroy(e);
      e = next;
    }
  }
};

Redirect redirect_of(const core::Link& link) {
  Redirect r;
  r.target = link.target;
  r.status = link.status;
  r.forward_query = link.forward_query;
  r.disabled = link.disabled;
  r.expires_at = link.expires_at;
  return r;
}

core::LinkState state_at(const Redirect& redirect, core::TimePoint now) {
  if (redirect.disabled) return core::LinkState::kDisabled;
  if (redirect.expires_at && *redirect.expires_at <= now) return core::LinkState::kExpired;
  return core::LinkState::kActive;
}

std::size_t LinkCache::entry_bytes(std::size_t code_size, std::size_t target_size) {
  static_assert(sizeof(void*) != 8 || sizeof(Entry) == 48, "the header documents 48 bytes");
  return malloc_chunk_bytes(sizeof(Entry) + code_size + target_size);
}

LinkCache::LinkCache(LinkCacheOptions options) : negative_ttl_(options.negative_ttl) {
  std::size_t count = 1;
  while (count < options.shards && count < kMaxShards) count *= 2;
  while (count > 1 && options.max_bytes / count < kMinShardBytes) count /= 2;
  shard_count_ = count;
  shard_mask_ = count - 1;
  shard_max_bytes_ = options.max_bytes / count;
  shards_ = std::make_unique<Shard[]>(count);
  if (!usable()) return;
  for (std::size_t i = 0; i < count; ++i) {
    shards_[i].buckets.reset(new Entry*[kInitialBuckets]());
    shards_[i].bucket_count = kInitialBuckets;
    shards_[i].bytes = Shard::bucket_array_bytes(kInitialBuckets);
  }
}

LinkCache::~LinkCache() {
  for (std::size_t i = 0; i < shard_count_; ++i) Shard::destroy_ring(shards_[i].take_ring());
}

LinkCache::Lookup LinkCache::lookup(std::string_view code, core::TimePoint now, Redirect* out,
                                    bool count) {
  const std::uint64_t hash = hash_of(code);
  Shard& shard = shards_[(hash >> 32) & shard_mask_];
  std::lock_guard<std::mutex> lock(shard.mu);
  Entry** link = shard.find(code, static_cast<std::uint32_t>(hash));
  Entry* e = *link;
  if (e == nullptr) {
    shard.misses += count ? 1 : 0;
    return Lookup::kMiss;
  }
  if (e->flags & kNegative) {
    const std::int64_t now_ms = to_ms(now);
    if (now_ms >= e->expiry_ms || e->expiry_ms - now_ms > negative_ttl_.count()) {
      Entry::destroy(shard.unlink(link));
      shard.misses += count ? 1 : 0;
      return Lookup::kMiss;
    }
    e->flags |= kReferenced;
    shard.negative_hits += count ? 1 : 0;
    return Lookup::kNotFound;
  }
  e->flags |= kReferenced;
  shard.hits += count ? 1 : 0;
  out->target.assign(e->target_data(), e->target_size);
  out->status = e->status;
  out->forward_query = (e->flags & kForwardQuery) != 0;
  out->disabled = (e->flags & kDisabled) != 0;
  if (e->flags & kHasExpiry) {
    out->expires_at = core::TimePoint(core::TimePoint::duration(e->expiry_ms));
  } else {
    out->expires_at.reset();
  }
  return Lookup::kFound;
}

LinkCache::LoadToken LinkCache::begin_load(std::string_view code) {
  const std::size_t index = (hash_of(code) >> 32) & shard_mask_;
  Shard& shard = shards_[index];
  std::lock_guard<std::mutex> lock(shard.mu);
  return LoadToken(index, shard.generation, shard.created_generation);
}

bool LinkCache::put_positive(std::string_view code, const LoadToken& token,
                             const Redirect& redirect) {
  return insert(code, token, &redirect, 0);
}

bool LinkCache::put_negative(std::string_view code, const LoadToken& token, core::TimePoint now) {
  return insert(code, token, nullptr, to_ms(now) + negative_ttl_.count());
}

bool LinkCache::insert(std::string_view code, const LoadToken& token, const Redirect* redirect,
                       std::int64_t negative_expiry_ms) {
  const std::string_view target = redirect != nullptr ? redirect->target : std::string_view();
  if (code.size() > kMaxCodeBytes || target.size() > std::numeric_limits<std::uint32_t>::max()) {
    return false;
  }
  const std::uint64_t hash = hash_of(code);
  const std::size_t index = (hash >> 32) & shard_mask_;
  if (token.shard_ != index) return false;
  Shard& shard = shards_[index];
  const std::size_t charge = entry_bytes(code.size(), target.size());
  if (charge > shard_max_bytes_) return false;

  // Allocate before locking: the lock is held only to link the entry in.
  Entry* fresh = Entry::make(code, static_cast<std::uint32_t>(hash), target);
  if (redirect != nullptr) {
    fresh->status = static_cast<std::uint16_t>(redirect->status);
    if (redirect->forward_query) fresh->flags |= kForwardQuery;
    if (redirect->disabled) fresh->flags |= kDisabled;
    if (redirect->expires_at) {
      fresh->flags |= kHasExpiry;
      fresh->expiry_ms = to_ms(*redirect->expires_at);
    }
  } else {
    fresh->flags = kNegative;
    fresh->expiry_ms = negative_expiry_ms;
  }

  std::unique_lock<std::mutex> lock(shard.mu);
  const bool stale = token.generation_ != shard.generation ||
                     (redirect == nullptr && token.created_generation_ != shard.created_generation);
  if (stale) ++shard.stale_puts;
  if (stale || !usable()) {
    lock.unlock();
    Entry::destroy(fresh);
    return false;
  }
  Entry** existing = shard.find(code, fresh->hash);
  if (*existing != nullptr) {
    Entry* old = shard.unlink(existing);
    fresh->flags |= old->flags & kReferenced;
    Entry::destroy(old);
  }
  // Keep chains short (load factor <= 1) as long as the doubled bucket array
  // and this entry still fit in the shard.
  if (shard.entries + 1 > shard.bucket_count &&
      Shard::bucket_array_bytes(shard.bucket_count * 2) + charge <= shard_max_bytes_) {
    shard.grow(shard.bucket_count * 2);
  }
  while (shard.bytes + charge > shard_max_bytes_ && shard.hand != nullptr) shard.evict_one();
  if (shard.bytes + charge > shard_max_bytes_) {
    lock.unlock();
    Entry::destroy(fresh);
    return false;
  }
  shard.link(fresh);
  return true;
}

void LinkCache::invalidate(std::string_view code) { drop(code, /*negative_only=*/false); }

void LinkCache::invalidate_negative(std::string_view code) { drop(code, /*negative_only=*/true); }

void LinkCache::drop(std::string_view code, bool negative_only) {
  const std::uint64_t hash = hash_of(code);
  Shard& shard = shards_[(hash >> 32) & shard_mask_];
  Entry* removed = nullptr;
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    ++(negative_only ? shard.created_generation : shard.generation);
    Entry** link = shard.find(code, static_cast<std::uint32_t>(hash));
    if (*link != nullptr && (!negative_only || ((*link)->flags & kNegative) != 0)) {
      removed = shard.unlink(link);
    }
  }
  if (removed != nullptr) Entry::destroy(removed);
}

void LinkCache::clear() {
  for (std::size_t i = 0; i < shard_count_; ++i) {
    Shard& shard = shards_[i];
    std::unique_ptr<Entry*[]> buckets;
    if (usable()) buckets.reset(new Entry*[kInitialBuckets]());
    Entry* ring = nullptr;
    {
      std::lock_guard<std::mutex> lock(shard.mu);
      ++shard.generation;
      ring = shard.take_ring();
      if (usable()) {
        std::swap(buckets, shard.buckets);  // the old array is freed unlocked
        shard.bucket_count = kInitialBuckets;
        shard.bytes = Shard::bucket_array_bytes(kInitialBuckets);
      }
    }
    Shard::destroy_ring(ring);
  }
}

LinkCache::Stats LinkCache::stats() const {
  Stats total;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    Shard& shard = shards_[i];
    std::lock_guard<std::mutex> lock(shard.mu);
    total.hits += shard.hits;
    total.negative_hits += shard.negative_hits;
    total.misses += shard.misses;
    total.evictions += shard.evictions;
    total.stale_puts += shard.stale_puts;
    total.entries += shard.entries;
    total.bytes += shard.bytes;
  }
  return total;
}

std::size_t LinkCache::bytes() const {
  std::size_t total = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    Shard& shard = shards_[i];
    std::lock_guard<std::mutex> lock(shard.mu);
    total += shard.bytes;
  }
  return total;
}

}  // namespace origin
