#include "origin/scanner_tarpit.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace origin {
namespace {

using namespace std::chrono_literals;
using Clock = ScannerTarpit::Clock;

IpAddress ip(const std::string& text) {
  auto parsed = parse_ip(text);
  if (!parsed) throw std::invalid_argument("not an address: " + text);
  return *parsed;
}

ScannerTarpitOptions options(double threshold, std::chrono::milliseconds delay,
                             std::size_t capacity = 64) {
  ScannerTarpitOptions o;
  o.threshold_per_s = threshold;
  o.delay = delay;
  o.capacity = capacity;
  return o;
}

// A fixed start well away from second boundaries' arithmetic edge cases.
const Clock::time_point kStart = Clock::time_point(1000s);

TEST(ScannerTarpit, NeverDelaysAClientUnderTheThreshold) {
  ScannerTarpit tarpit(options(50, 200ms));
  // 40 unknown codes per second, evenly spread, for 30 s.
  for (int i = 0; i < 40 * 30; ++i) {
    const auto verdict = tarpit.note_unknown(ip("192.0.2.7"), kStart + i * 25ms);
    ASSERT_EQ(verdict.delay, 0ms) << "answer " << i << " at rate " << verdict.rate_per_s;
    ASSERT_FALSE(verdict.episode_started) << "answer " << i;
  }
  EXPECT_EQ(tarpit.stats(kStart + 30s).delayed, 0u);
  EXPECT_EQ(tarpit.stats(kStart + 30s).episodes, 0u);
}

TEST(ScannerTarpit, DelaysFromTheAnswerThatCrossesTheThresholdAndReportsTheEpisodeOnce) {
  ScannerTarpit tarpit(options(50, 200ms));
  int first_delayed = -1;
  int episodes = 0;
  // 200 unknown codes within 200 ms.
  for (int i = 0; i < 200; ++i) {
    const auto verdict = tarpit.note_unknown(ip("192.0.2.7"), kStart + i * 1ms);
    if (verdict.episode_started) ++episodes;
    if (verdict.delay > 0ms && first_delayed < 0) first_delayed = i;
    if (first_delayed >= 0) {
      EXPECT_EQ(verdict.delay, 200ms) << "answer " << i;
    }
  }
  EXPECT_EQ(first_delayed, 50) << "the 51st unknown code within a second is over 50/s";
  EXPECT_EQ(episodes, 1);
  const auto s = tarpit.stats(kStart + 1s);
  EXPECT_EQ(s.delayed, 150u);
  EXPECT_EQ(s.episodes, 1u);
  EXPECT_EQ(s.tarpitted, 1u);
}

TEST(ScannerTarpit, AnEpisodeEndsTheHoldAfterTheRateFellAndTheNextOneIsReportedAgain) {
  ScannerTarpit tarpit(options(10, 100ms));
  for (int i = 0; i < 20; ++i) tarpit.note_unknown(ip("192.0.2.7"), kStart + i * 1ms);
  // Slow now (1/s): still held during the hold, even though under the threshold.
  const auto during = tarpit.note_unknown(ip("192.0.2.7"), kStart + 5s);
  EXPECT_EQ(during.delay, 100ms);
  EXPECT_FALSE(during.episode_started);
  const auto after = kStart + ScannerTarpit::kHold + 1s;
  EXPECT_EQ(tarpit.note_unknown(ip("192.0.2.7"), after).delay, 0ms);
  EXPECT_EQ(tarpit.stats(after).tarpitted, 0u);
  bool started = false;
  for (int i = 1; i <= 20; ++i) {
    started = tarpit.note_unknown(ip("192.0.2.7"), after + i * 1ms).episode_started || started;
  }
  EXPECT_TRUE(started);
  EXPECT_EQ(tarpit.stats(after).episodes, 2u);
}

TEST(ScannerTarpit, TracksClientsApart) {
  ScannerTarpit tarpit(options(10, 100ms));
  for (int i = 0; i < 30; ++i) tarpit.note_unknown(ip("192.0.2.7"), kStart + i * 1ms);
  EXPECT_EQ(tarpit.note_unknown(ip("192.0.2.7"), kStart + 40ms).delay, 100ms);
  EXPECT_EQ(tarpit.note_unknown(ip("192.0.2.8"), kStart + 40ms).delay, 0ms);
  EXPECT_EQ(tarpit.note_unknown(ip("2001:db8::1"), kStart + 40ms).delay, 0ms);
}

TEST(ScannerTarpit, CountsAnIpv6ClientAsItsSlash64) {
  ScannerTarpit tarpit(options(10, 100ms));
  // One address after another within 2001:db8:0:1::/64.
  ScannerTarpit::Verdict last;
  for (int i = 1; i <= 30; ++i) {
    char text[64];
    std::snprintf(text, sizeof text, "2001:db8:0:1::%x", i);
    last = tarpit.note_unknown(ip(text), kStart + i * 1ms);
  }
  EXPECT_EQ(last.delay, 100ms);
  EXPECT_EQ(tarpit.note_unknown(ip("2001:db8:0:2::1"), kStart + 40ms).delay, 0ms);
}

TEST(ScannerTarpit, ZeroDelayTurnsItOff) {
  ScannerTarpit tarpit(options(1, 0ms));
  EXPECT_FALSE(tarpit.enabled());
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(tarpit.note_unknown(ip("192.0.2.7"), kStart + i * 1ms).delay, 0ms);
  }
  EXPECT_EQ(tarpit.stats(kStart).tracked, 0u);
}

TEST(ScannerTarpit, ManyDistinctClientsStayWithinTheCapacity) {
  ScannerTarpit tarpit(options(50, 100ms, 256));
  for (int i = 0; i < 100000; ++i) {
    IpAddress a = ip("10.0.0.0");
    a.bytes[13] = static_cast<unsigned char>(i >> 16);
    a.bytes[14] = static_cast<unsigned char>(i >> 8);
    a.bytes[15] = static_cast<unsigned char>(i);
    tarpit.note_unknown(a, kStart + i * 10us);
  }
  const auto s = tarpit.stats(kStart + 1s);
  EXPECT_EQ(s.capacity, 256u);
  EXPECT_EQ(s.tracked, 256u);
  EXPECT_EQ(s.evictions, 100000u - 256u);
}

TEST(ScannerTarpit, AScannerBeingTarpittedSurvivesAChurnOfOtherClients) {
  ScannerTarpit tarpit(options(20, 100ms, 16));
  for (int i = 0; i < 50; ++i) tarpit.note_unknown(ip("192.0.2.7"), kStart + i * 1ms);
  // Thousands of one-off clients (each under the threshold) go through the table.
  for (int i = 0; i < 5000; ++i) {
    IpAddress a = ip("10.0.0.0");
    a.bytes[14] = static_cast<unsigned char>(i >> 8);
    a.bytes[15] = static_cast<unsigned char>(i);
    ASSERT_EQ(tarpit.note_unknown(a, kStart + 100ms + i * 100us).delay, 0ms) << i;
  }
  EXPECT_EQ(tarpit.note_unknown(ip("192.0.2.7"), kStart + 700ms).delay, 100ms);
  EXPECT_EQ(tarpit.stats(kStart + 700ms).episodes, 1u);
}

}  // namespace
}  // namespace origin
