// Slows down clients that scan for codes: a client answered "unknown code"
// (404 of GET/HEAD /{code}) faster than a threshold gets those answers late,
// so enumerating codes becomes slow while its redirects of existing codes,
// and everybody else's, stay fast. Pure bookkeeping: the caller holds the
// answer (with a timer, never blocking a thread) for the delay it is given.
//
// Invariants:
//  1. Memory is fixed at construction: `capacity` slots (rounded up to a
//     multiple of kWays), whatever the number of distinct clients.
//  2. A client is tracked in one set of kWays slots chosen by a hash of its
//     address; a newcomer takes a free slot, else the slot of the client
//     least worth keeping (not tarpitted before tarpitted, then the least
//     recently seen), so a flood of many addresses cannot push out a
//     scanner being tarpitted unless its whole set is scanners.
//  3. The rate is a sliding one-second window (the count of the current
//     second plus the previous second's weighted by the part of it still in
//     the window), so it decays to 0 within 2 s of the last unknown code.
//  4. A client is tarpitted from the unknown code that takes its rate over
//     the threshold until kHold after the last one that did; that span is
//     one episode, reported once (Verdict::episode_started).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>

#include "origin/client_ip.h"

namespace origin {

struct ScannerTarpitOptions {
  double threshold_per_s = 50;           // SCANNER_THRESHOLD: unknown codes per second
  std::chrono::milliseconds delay{200};  // SCANNER_DELAY_MS; 0 turns the tarpit off
  std::size_t capacity = 4096;           // SCANNER_TRACKED_CLIENTS
};

// Thread-safe: note_unknown and stats may be called from any thread (one
// small lock per set of slots).
class ScannerTarpit {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kWays = 4;
  // How long an episode lasts after the rate was last over the threshold.
  static constexpr std::chrono::seconds kHold{10};

  explicit ScannerTarpit(ScannerTarpitOptions options);
  ~ScannerTarpit();
  ScannerTarpit(const ScannerTarpit&) = delete;
  ScannerTarpit& operator=(const ScannerTarpit&) = delete;

  bool enabled() const { return options_.delay.count() > 0; }
  const ScannerTarpitOptions& options() const { return options_; }

  struct Verdict {
    std::chrono::milliseconds delay{0};  // how long to hold this answer; 0: answer now
    bool episode_started = false;        // this answer started the client's episode
    double rate_per_s = 0;               // the client's rate, this answer included
  };

  // Records one unknown-code answer to `client` at `now` and says how long
  // to hold it. An IPv6 client counts as its /64 (one subscriber usually
  // holds a whole /64). When !enabled(), records nothing and returns 0.
  Verdict note_unknown(const IpAddress& client, Clock::time_point now);

  struct Stats {
    std::uint64_t delayed = 0;    // answers held so far
    std::uint64_t episodes = 0;   // episodes started so far
    std::uint64_t evictions = 0;  // tracked clients pushed out by newcomers
    std::size_t tracked = 0;      // slots in use (never above capacity)
    std::size_t tarpitted = 0;    // clients in an episode at `now`
    std::size_t capacity = 0;     // slots
  };
  Stats stats(Clock::time_point now) const;

 private:
  struct Slot;
  struct Set;

  const ScannerTarpitOptions options_;
  const std::size_t set_count_;
  std::unique_ptr<Set[]> sets_;
  std::atomic<std::uint64_t> delayed_{0};
  std::atomic<std::uint64_t> episodes_{0};
  std::atomic<std::uint64_t> evictions_{0};
  std::atomic<std::size_t> tracked_{0};
};

}  // namespace origin
