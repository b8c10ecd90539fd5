// Follows link changes announced by PostgreSQL, so that every origin instance
// drops cached answers for a code soon after it changes.
//
// The links table trigger runs pg_notify('link_changed', code) for every
// updated and deleted row, and pg_notify('link_created', code) for every
// inserted one (migrations/0004); PostgreSQL delivers them when the
// transaction commits. Inserts matter too: they end a cached "no such code"
// (main.cc listens to link_created as an extra channel).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace origin {

inline constexpr const char* kLinkChangedChannel = "link_changed";

// Runs LISTEN link_changed on its own connection on a background thread.
//
// Contract of the callbacks, both called on the listener's thread only, never
// concurrently with each other; they should be quick and must not throw (an
// exception is logged; one from on_change is followed by on_reset, since a
// change may have been missed):
//  - on_change(code): a change of `code` was committed.
//  - on_reset(): listening has (re)started after a time without it, during
//    which changes may have been missed, so every cached answer is suspect.
//    Called after each successful connect, the first included, once LISTEN is
//    in effect: a change committed after on_reset() starts is reported.
//
// While PostgreSQL is unreachable, reconnects every `retry_interval`.
// A connection that dies silently (network gone, no reset) is noticed through
// TCP keepalives within about 10 s; connecting to an unreachable host blocks
// for libpq's connect_timeout (set it in the URL), and so may the destructor.
class ChangeListener {
 public:
  using OnChange = std::function<void(const std::string& code)>;
  using OnReset = std::function<void()>;

  // Another channel followed on the same connection (e.g. api_key_changed):
  // its on_change receives that channel's payloads, under the same contract.
  struct ExtraChannel {
    std::string name;
    OnChange on_change;
  };

  // Starts the thread. `url` is a libpq connection string or URI. on_reset
  // covers the extra channels too.
  ChangeListener(std::string url, OnChange on_change, OnReset on_reset,
                 std::chrono::milliseconds retry_interval = std::chrono::milliseconds(250),
                 std::vector<ExtraChannel> extra_channels = {});
  ~ChangeListener();  // stop()s and joins the thread
  ChangeListener(const ChangeListener&) = delete;
  ChangeListener& operator=(const ChangeListener&) = delete;

  // Asks the thread to end; it notices within about 200 ms (or once a
  // connection attempt in progress ends). Does not wait. Thread-safe.
  void stop();

  // Waits until the first on_reset() has returned (LISTEN in effect), at
  // most `timeout`; false when it has not. Lets a server start answering only
  // once its cache can be kept coherent, so that the first reset does not
  // discard what the first requests loaded. Thread-safe.
  bool wait_until_listening(std::chrono::milliseconds timeout);

  // True while LISTEN is in effect on a live connection (as of the last
  // check, at most ~200 ms old). Thread-safe.
  bool listening() const { return listening_.load(std::memory_order_relaxed); }

 private:
  class Receiver;
  void loop();
  void listen_once(bool& logged_down);
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  void report_change(const OnChange& on_change, const std::string& payload);
  void report_reset();

  const std::string url_;
  const OnChange on_change_;
  const OnReset on_reset_;
  const std::chrono::milliseconds retry_interval_;
  const std::vector<ExtraChannel> extra_channels_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> listening_{false};
  bool reset_pending_ = false;  // used by the listener thread only
  std::mutex mu_;               // with wake_, interrupts the retry wait
  bool reset_once_ = false;     // guarded by mu_
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace origin
