#include "origin/link_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

// Counts allocations made by the calling thread, so a test can state that a
// cache hit allocates nothing. Replaces the global operator new of the whole
// test binary; it only forwards to malloc.
namespace {
thread_local std::size_t allocations_on_this_thread = 0;
}  // namespace

void* operator new(std::size_t size) {
  ++allocations_on_this_thread;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace origin {
namespace {

using std::chrono::milliseconds;

const core::TimePoint kT0 = core::from_unix_ms(1'800'000'000'000);

Redirect sample_redirect(std::string target = "https://example.com/landing?utm_source=x") {
  Redirect r;
  r.target = std::move(target);
  r.status = 301;
  r.forward_query = false;
  r.disabled = false;
  r.expires_at = kT0 + std::chrono::hours(24);
  return r;
}

bool put(LinkCache& cache, std::string_view code, const Redirect& r) {
  return cache.put_positive(code, cache.begin_load(code), r);
}

bool put_missing(LinkCache& cache, std::string_view code, core::TimePoint now) {
  return cache.put_negative(code, cache.begin_load(code), now);
}

// Distinct 7-character codes, like generated ones.
std::string code_number(std::uint64_t n) {
  static constexpr char kAlphabet[] = "abcdefghjkmnpqrstuvwxyz23456789";
  std::string code(7, 'a');
  for (int i = 6; i >= 0; --i) {
    code[static_cast<std::size_t>(i)] = kAlphabet[n % 31];
    n /= 31;
  }
  return code;
}

TEST(LinkCache, MissesUntilAPositiveEntryIsPutThenFindsIt) {
  LinkCache cache;
  Redirect out;
  EXPECT_EQ(cache.lookup("abc1234", kT0, &out), LinkCache::Lookup::kMiss);
  ASSERT_TRUE(put(cache, "abc1234", sample_redirect()));
  ASSERT_EQ(cache.lookup("abc1234", kT0, &out), LinkCache::Lookup::kFound);
  EXPECT_EQ(out.target, "https://example.com/landing?utm_source=x");
  EXPECT_EQ(out.status, 301);
  EXPECT_FALSE(out.forward_query);
  EXPECT_FALSE(out.disabled);
  EXPECT_EQ(out.expires_at, kT0 + std::chrono::hours(24));
  EXPECT_EQ(cache.lookup("abc1235", kT0, &out), LinkCache::Lookup::kMiss);

  LinkCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 2u);
  EXPECT_EQ(stats.negative_hits, 0u);
  EXPECT_EQ(stats.entries, 1u);
}

TEST(LinkCache, HitsReturnEveryFieldAsPut) {
  struct Case {
    const char* name;
    Redirect redirect;
  };
  std::vector<Case> cases;
  cases.push_back({"defaults", Redirect{"https://a.example/", 307, true, false, std::nullopt}});
  cases.push_back(
      {"308 no query", Redirect{"https://b.example/x", 308, false, false, std::nullopt}});
  cases.push_back({"disabled", Redirect{"https://c.example/", 302, true, true, std::nullopt}});
  cases.push_back({"expiring", Redirect{"https://d.example/", 301, true, false, kT0}});
  cases.push_back({"empty target", Redirect{"", 307, true, false, std::nullopt}});
  cases.push_back({"long target", Redirect{"https://e.example/" + std::string(5000, 'p'), 307, true,
                                           false, std::nullopt}});
  LinkCache cache;
  Redirect out = sample_redirect();  // holds values a hit must overwrite
  for (const Case& c : cases) {
    ASSERT_TRUE(put(cache, c.name, c.redirect)) << c.name;
    ASSERT_EQ(cache.lookup(c.name, kT0, &out), LinkCache::Lookup::kFound) << c.name;
    EXPECT_EQ(out.target, c.redirect.target) << c.name;
    EXPECT_EQ(out.status, c.redirect.status) << c.name;
    EXPECT_EQ(out.forward_query, c.redirect.forward_query) << c.name;
    EXPECT_EQ(out.disabled, c.redirect.disabled) << c.name;
    EXPECT_EQ(out.expires_at, c.redirect.expires_at) << c.name;
  }
}

TEST(LinkCache, ExpiredLinkIsStillFoundAndReadsAsExpired) {
  LinkCache cache;
  Redirect r = sample_redirect();
  r.expires_at = kT0;
  ASSERT_TRUE(put(cache, "old", r));
  Redirect out;
  ASSERT_EQ(cache.lookup("old", kT0 + std::chrono::hours(1), &out), LinkCache::Lookup::kFound);
  EXPECT_EQ(state_at(out, kT0 - milliseconds(1)), core::LinkState::kActive);
  EXPECT_EQ(state_at(out, kT0), core::LinkState::kExpired);
  out.disabled = true;
  EXPECT_EQ(state_at(out, kT0 - milliseconds(1)), core::LinkState::kDisabled);
}

TEST(LinkCache, RedirectOfCopiesWhatARedirectNeeds) {
  core::Link link;
  link.code = "abc";
  link.target = "https://example.com/";
  link.status = 302;
  link.forward_query = false;
  link.expires_at = kT0;
  link.disabled = true;
  Redirect r = redirect_of(link);
  EXPECT_EQ(r.target, link.target);
  EXPECT_EQ(r.status, 302);
  EXPECT_FALSE(r.forward_query);
  EXPECT_EQ(r.expires_at, kT0);
  EXPECT_TRUE(r.disabled);
}

TEST(LinkCache, NegativeEntryAnswersNotFoundUntilItsTtlEnds) {
  LinkCache cache;  // default TTL: 5 s
  ASSERT_TRUE(put_missing(cache, "nosuch", kT0));
  Redirect out;
  EXPECT_EQ(cache.lookup("nosuch", kT0, &out), LinkCache::Lookup::kNotFound);
  EXPECT_EQ(cache.lookup("nosuch", kT0 + milliseconds(4999), &out), LinkCache::Lookup::kNotFound);
  EXPECT_EQ(cache.lookup("nosuch", kT0 + milliseconds(5000), &out), LinkCache::Lookup::kMiss);
  LinkCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.negative_hits, 2u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.entries, 0u) << "an expired negative entry is dropped when seen";
}

TEST(LinkCache, NegativeTtlIsConfigurable) {
  LinkCacheOptions options;
  options.negative_ttl = milliseconds(100);
  LinkCache cache(options);
  ASSERT_TRUE(put_missing(cache, "nosuch", kT0));
  Redirect out;
  EXPECT_EQ(cache.lookup("nosuch", kT0 + milliseconds(99), &out), LinkCache::Lookup::kNotFound);
  EXPECT_EQ(cache.lookup("nosuch", kT0 + milliseconds(100), &out), LinkCache::Lookup::kMiss);
}

TEST(LinkCache, NegativeEntryEndsWhenTheClockStepsBackBeforeItWasPut) {
  LinkCache cache;
  ASSERT_TRUE(put_missing(cache, "nosuch", kT0));
  Redirect out;
  EXPECT_EQ(cache.lookup("nosuch", kT0, &out), LinkCache::Lookup::kNotFound);
  EXPECT_EQ(cache.lookup("nosuch", kT0 - milliseconds(1), &out), LinkCache::Lookup::kMiss)
      << "otherwise a step back of an hour would make it last an hour";
}

TEST(LinkCache, PositiveEntriesDoNotExpireByTime) {
  LinkCache cache;
  Redirect r = sample_redirect();
  r.expires_at.reset();
  ASSERT_TRUE(put(cache, "keep", r));
  Redirect out;
  EXPECT_EQ(cache.lookup("keep", kT0 + std::chrono::hours(24 * 365), &out),
            LinkCache::Lookup::kFound);
}

TEST(LinkCache, PutReplacesTheEntryForTheSameCode) {
  LinkCache cache;
  Redirect out;
  ASSERT_TRUE(put_missing(cache, "code", kT0));
  ASSERT_TRUE(put(cache, "code", sample_redirect("https://first.example/")));
  ASSERT_EQ(cache.lookup("code", kT0, &out), LinkCache::Lookup::kFound);
  EXPECT_EQ(out.target, "https://first.example/");
  ASSERT_TRUE(put(cache, "code", sample_redirect("https://second.example/")));
  ASSERT_EQ(cache.lookup("code", kT0, &out), LinkCache::Lookup::kFound);
  EXPECT_EQ(out.target, "https://second.example/");
  EXPECT_EQ(cache.stats().entries, 1u);
}

TEST(LinkCache, InvalidateDropsTheEntry) {
  LinkCache cache;
  Redirect out;
  ASSERT_TRUE(put(cache, "gone", sample_redirect()));
  ASSERT_TRUE(put_missing(cache, "new", kT0));
  cache.invalidate("gone");
  cache.invalidate("new");  // an insert ends a cached "no such code"
  cache.invalidate("never-cached");
  EXPECT_EQ(cache.lookup("gone", kT0, &out), LinkCache::Lookup::kMiss);
  EXPECT_EQ(cache.lookup("new", kT0, &out), LinkCache::Lookup::kMiss);
  EXPECT_EQ(cache.stats().entries, 0u);
}

TEST(LinkCache, PutFromALoadBegunBeforeAnInvalidateIsIgnored) {
  LinkCache cache;
  Redirect out;
  // Positive: the load read the old target, then the link changed.
  LinkCache::LoadToken stale = cache.begin_load("code");
  cache.invalidate("code");
  EXPECT_FALSE(cache.put_positive("code", stale, sample_redirect("https://old.example/")));
  EXPECT_EQ(cache.lookup("code", kT0, &out), LinkCache::Lookup::kMiss);
  // Negative: the load saw no row, then the link was inserted.
  stale = cache.begin_load("code");
  cache.invalidate("code");
  EXPECT_FALSE(cache.put_negative("code", stale, kT0));
  EXPECT_EQ(cache.lookup("code", kT0, &out), LinkCache::Lookup::kMiss);
  EXPECT_EQ(cache.stats().stale_puts, 2u);
  // A load begun after the invalidate may insert.
  LinkCache::LoadToken fresh = cache.begin_load("code");
  EXPECT_TRUE(cache.put_positive("code", fresh, sample_redirect("https://new.example/")));
  ASSERT_EQ(cache.lookup("code", kT0, &out), LinkCache::Lookup::kFound);
  EXPECT_EQ(out.target, "https://new.example/");
}

TEST(LinkCache, ACreatedCodeEndsOnlyItsNegativeEntryAndNegativeLoadsInFlight) {
  LinkCache cache;
  Redirect out;
  ASSERT_TRUE(put_missing(cache, "new", kT0));
  ASSERT_TRUE(put(cache, "kept", sample_redirect()));
  cache.invalidate_negative("new");
  cache.invalidate_negative("kept");  // a positive entry cannot be stale by an insert
  EXPECT_EQ(cache.lookup("new", kT0, &out), LinkCache::Lookup::kMiss);
  EXPECT_EQ(cache.lookup("kept", kT0, &out), LinkCache::Lookup::kFound);

  // The first lookup of a new code read its row; the insert's notification
  // arrives before the lookup puts: the positive answer is still cached.
  LinkCache::LoadToken in_flight = cache.begin_load("burst");
  cache.invalidate_negative("burst");
  EXPECT_TRUE(cache.put_positive("burst", in_flight, sample_redirect("https://new.example/")));
  ASSERT_EQ(cache.lookup("burst", kT0, &out), LinkCache::Lookup::kFound);
  EXPECT_EQ(out.target, "https://new.example/");

  // A lookup that saw no row before the insert cannot cache "no such code".
  in_flight = cache.begin_load("late");
  cache.invalidate_negative("late");
  EXPECT_FALSE(cache.put_negative("late", in_flight, kT0));
  EXPECT_EQ(cache.lookup("late", kT0, &out), LinkCache::Lookup::kMiss);
  EXPECT_EQ(cache.stats().stale_puts, 1u);
}

TEST(LinkCache, AnUncountedLookupAnswersLikeACountedOneAndLeavesTheStats) {
  LinkCache cache;
  Redirect out;
  ASSERT_TRUE(put(cache, "hit", sample_redirect()));
  ASSERT_TRUE(put_missing(cache, "gone", kT0));
  const LinkCache::Stats before = cache.stats();
  EXPECT_EQ(cache.lookup("hit", kT0, &out, false), LinkCache::Lookup::kFound);
  EXPECT_EQ(cache.lookup("gone", kT0, &out, false), LinkCache::Lookup::kNotFound);
  EXPECT_EQ(cache.lookup("none", kT0, &out, false), LinkCache::Lookup::kMiss);
  const LinkCache::Stats after = cache.stats();
  EXPECT_EQ(after.hits, before.hits);
  EXPECT_EQ(after.negative_hits, before.negative_hits);
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_EQ(cache.lookup("none", kT0, &out), LinkCache::Lookup::kMiss);
  EXPECT_EQ(cache.stats().misses, before.misses + 1);
}

TEST(LinkCache, PutFromALoadBegunBeforeAClearIsIgnored) {
  LinkCache cache;
  Redirect out;
  LinkCache::LoadToken stale = cache.begin_load("code");
  cache.clear();
  EXPECT_FALSE(cache.put_positive("code", stale, sample_redirect()));
  EXPECT_EQ(cache.lookup("code", kT0, &out), LinkCache::Lookup::kMiss);
  EXPECT_TRUE(cache.put_positive("code", cache.begin_load("code"), sample_redirect()));
}

TEST(LinkCache, TokenMustComeFromBeginLoadOfTheSameShard) {
  LinkCacheOptions options;
  options.shards = 64;
  LinkCache cache(options);
  EXPECT_FALSE(cache.put_positive("code", LinkCache::LoadToken(), sample_redirect()));
  // Some code among these lands in another shard than "code".
  int rejected = 0;
  for (int i = 0; i < 100; ++i) {
    rejected += !cache.put_positive("code", cache.begin_load("other" + std::to_string(i)),
                                    sample_redirect());
  }
  EXPECT_GT(rejected, 0);
}

TEST(LinkCache, ClearDropsEveryEntryAndItsMemory) {
  LinkCache cache;
  const std::size_t empty_bytes = cache.bytes();
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(put(cache, code_number(i), sample_redirect()));
  ASSERT_EQ(cache.stats().entries, 10000u);
  ASSERT_GT(cache.bytes(), empty_bytes);
  cache.clear();
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_EQ(cache.bytes(), empty_bytes);
  Redirect out;
  EXPECT_EQ(cache.lookup(code_number(5), kT0, &out), LinkCache::Lookup::kMiss);
}

TEST(LinkCache, EntryBytesFollowsMallocRounding) {
  struct Case {
    std::size_t code, target, bytes;
  };
  // 48-byte header + code + target + 8, rounded up to 16.
  for (const Case& c : {Case{7, 0, 64}, Case{7, 60, 128}, Case{7, 65, 128}, Case{7, 66, 144},
                        Case{64, 2000, 2128}}) {
    EXPECT_EQ(LinkCache::entry_bytes(c.code, c.target), c.bytes)
        << "code " << c.code << " target " << c.target;
  }
}

TEST(LinkCache, BytesNeverExceedTheCapUnderAFloodOfDistinctCodes) {
  LinkCacheOptions options;
  options.max_bytes = 1 << 20;
  options.shards = 16;
  LinkCache cache(options);
  ASSERT_EQ(cache.max_bytes(), std::size_t{1} << 20);
  const std::string target = "https://www.example.com/campaigns/2026/spring/landing?ref=abc12";
  for (std::uint64_t i = 0; i < 1'000'000; ++i) {
    const std::string code = code_number(i);
    // Mixed: scanners' negatives and real links.
    if (i % 4 == 0) {
      cache.put_positive(code, cache.begin_load(code), sample_redirect(target));
    } else {
      cache.put_negative(code, cache.begin_load(code), kT0);
    }
    ASSERT_LE(cache.bytes(), options.max_bytes) << "after " << i + 1 << " puts";
  }
  LinkCache::Stats stats = cache.stats();
  EXPECT_LE(stats.bytes, options.max_bytes);
  EXPECT_GT(stats.bytes, options.max_bytes * 9 / 10) << "the budget is used, not left idle";
  EXPECT_GT(stats.evictions, 900'000u);
  EXPECT_EQ(stats.entries + stats.evictions, 1'000'000u);
}

TEST(LinkCache, HotCodesSurviveAFloodOfOneOffCodes) {
  LinkCacheOptions options;
  options.max_bytes = 1 << 20;
  options.shards = 16;
  LinkCache cache(options);
  ASSERT_TRUE(put(cache, "hot", sample_redirect("https://hot.example/")));
  ASSERT_TRUE(put(cache, "cold", sample_redirect("https://cold.example/")));
  Redirect out;
  int hot_misses = 0;
  for (std::uint64_t i = 0; i < 1'000'000; ++i) {
    const std::string code = code_number(i);
    ASSERT_EQ(cache.lookup(code, kT0, &out), LinkCache::Lookup::kMiss);
    cache.put_negative(code, cache.begin_load(code), kT0);
    if (i % 100 == 0) hot_misses += cache.lookup("hot", kT0, &out) != LinkCache::Lookup::kFound;
  }
  EXPECT_EQ(hot_misses, 0);
  ASSERT_EQ(cache.lookup("hot", kT0, &out), LinkCache::Lookup::kFound);
  EXPECT_EQ(out.target, "https://hot.example/");
  EXPECT_EQ(cache.lookup("cold", kT0, &out), LinkCache::Lookup::kMiss)
      << "a code nobody asked for during the flood was evicted";
}

TEST(LinkCache, CacheBelowTheMinimumSizeCachesNothing) {
  LinkCacheOptions options;
  options.max_bytes = LinkCache::kMinShardBytes - 1;
  LinkCache cache(options);
  EXPECT_FALSE(put(cache, "code", sample_redirect()));
  EXPECT_FALSE(put_missing(cache, "code", kT0));
  Redirect out;
  EXPECT_EQ(cache.lookup("code", kT0, &out), LinkCache::Lookup::kMiss);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(LinkCache, SmallCacheMergesShardsSoThatEntriesStillFit) {
  LinkCacheOptions options;
  options.max_bytes = 3 * LinkCache::kMinShardBytes;
  options.shards = 64;  // 192 bytes each would hold no entry beside the buckets
  LinkCache cache(options);
  EXPECT_EQ(cache.max_bytes(), options.max_bytes);
  int stored = 0;
  for (int i = 0; i < 40; ++i) stored += put(cache, code_number(i), sample_redirect());
  EXPECT_EQ(stored, 40);
  EXPECT_LE(cache.bytes(), options.max_bytes);
  EXPECT_EQ(cache.stats().entries, 40u);
}

TEST(LinkCache, EntryLargerThanAShardIsNotCached) {
  LinkCacheOptions options;
  options.max_bytes = 64 * 1024;
  options.shards = 1;
  LinkCache cache(options);
  EXPECT_FALSE(put(cache, "big", sample_redirect(std::string(70 * 1024, 'x'))));
  EXPECT_LE(cache.bytes(), options.max_bytes);
}

TEST(LinkCache, CodesLongerThanTheLimitAreNotCached) {
  LinkCache cache;
  const std::string longest(LinkCache::kMaxCodeBytes, 'a');
  const std::string too_long(LinkCache::kMaxCodeBytes + 1, 'a');
  EXPECT_TRUE(put(cache, longest, sample_redirect()));
  EXPECT_FALSE(put(cache, too_long, sample_redirect()));
  Redirect out;
  EXPECT_EQ(cache.lookup(longest, kT0, &out), LinkCache::Lookup::kFound);
  EXPECT_EQ(cache.lookup(too_long, kT0, &out), LinkCache::Lookup::kMiss);
}

TEST(LinkCache, HitDoesNotAllocateWhenTheRedirectIsReused) {
  LinkCache cache;
  ASSERT_TRUE(put(cache, "abc1234", sample_redirect(std::string(200, 't'))));
  ASSERT_TRUE(put_missing(cache, "nosuch", kT0));
  Redirect out;
  ASSERT_EQ(cache.lookup("abc1234", kT0, &out), LinkCache::Lookup::kFound);  // sizes out
  const std::size_t before = allocations_on_this_thread;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(cache.lookup("abc1234", kT0, &out), LinkCache::Lookup::kFound);
    ASSERT_EQ(cache.lookup("nosuch", kT0, &out), LinkCache::Lookup::kNotFound);
    ASSERT_EQ(cache.lookup("unknown", kT0, &out), LinkCache::Lookup::kMiss);
  }
  EXPECT_EQ(allocations_on_this_thread, before);
}

// Four threads put, look up, invalidate and clear over a small key space in a
// cache small enough to evict. Every hit must carry the target belonging to
// its code, and the counters must add up.
TEST(LinkCache, ConcurrentUseKeepsEntriesConsistent) {
  LinkCacheOptions options;
  options.max_bytes = 64 * 1024;
  options.shards = 16;
  LinkCache cache(options);
  constexpr int kThreads = 4;
  constexpr int kOpsPerThread = 200'000;
  std::atomic<std::uint64_t> lookups{0};
  std::atomic<int> wrong_targets{0};
  std::atomic<bool> over_cap{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      std::uniform_int_distribution<int> pick_code(0, 1999);
      std::uniform_int_distribution<int> pick_op(0, 99);
      Redirect out;
      std::uint64_t my_lookups = 0;
      for (int i = 0; i < kOpsPerThread; ++i) {
        const std::string code = code_number(static_cast<std::uint64_t>(pick_code(rng)));
        const int op = pick_op(rng);
        if (op < 70) {
          ++my_lookups;
          if (cache.lookup(code, kT0, &out) == LinkCache::Lookup::kFound &&
              out.target != "https://example.com/" + code) {
            ++wrong_targets;
          }
        } else if (op < 85) {
          put(cache, code, sample_redirect("https://example.com/" + code));
        } else if (op < 95) {
          put_missing(cache, code, kT0);
        } else if (op < 99) {
          cache.invalidate(code);
        } else if (i % 1000 == 0) {
          cache.clear();
        }
        if (i % 512 == 0 && cache.bytes() > options.max_bytes) over_cap = true;
      }
      lookups += my_lookups;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong_targets.load(), 0);
  EXPECT_FALSE(over_cap.load());
  LinkCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.hits + stats.negative_hits + stats.misses, lookups.load());
  EXPECT_GT(stats.hits, 0u);
  EXPECT_GT(stats.evictions, 0u);
  EXPECT_LE(stats.bytes, options.max_bytes);
}

// A writer changes the "database" and invalidates, while loaders read it and
// put what they read. Once invalidate() has returned, no lookup may find a
// version older than the one written before it.
TEST(LinkCache, ConcurrentLoadsNeverLeaveAnOlderVersionAfterAnInvalidate) {
  LinkCache cache;
  std::atomic<int> database_version{0};
  std::atomic<bool> done{false};
  auto target_of = [](int version) { return "https://example.com/v" + std::to_string(version); };
  std::vector<std::thread> loaders;
  for (int t = 0; t < 3; ++t) {
    loaders.emplace_back([&] {
      while (!done.load()) {
        LinkCache::LoadToken token = cache.begin_load("code");
        const int version = database_version.load();
        cache.put_positive("code", token, sample_redirect(target_of(version)));
      }
    });
  }
  int stale_reads = 0;
  Redirect out;
  for (int version = 1; version <= 100'000; ++version) {
    database_version.store(version);
    cache.invalidate("code");
    if (cache.lookup("code", kT0, &out) == LinkCache::Lookup::kFound) {
      const int seen = std::stoi(out.target.substr(out.target.rfind('v') + 1));
      stale_reads += seen < version;
    }
  }
  done = true;
  for (auto& loader : loaders) loader.join();
  EXPECT_EQ(stale_reads, 0);
}

}  // namespace
}  // namespace origin
