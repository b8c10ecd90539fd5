#include "exporter/watch.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <thread>

#include "exporter/bundle.h"
#include "exporter/tombstones.h"

namespace exporter {
namespace {

using Clock = std::chrono::steady_clock;
using CodeSet = std::vector<std::string>;  // sorted

// How often the listener notes the database time it is known to be listening
// at, and how far before that mark a catch-up after a reconnect looks: a
// change is stamped when its row is written, and notified only at commit, so a
// transaction open longer than the margin could be missed.
constexpr std::chrono::seconds kWatermarkEvery{5};
constexpr std::chrono::seconds kCatchUpMargin{60};

std::string lowercase(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return text;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// State shared by the listener thread and the cycle loop.
class Shared {
 public:
  explicit Shared(const std::atomic<bool>& stop) : stop_(stop) {}

  bool stopping() const { return stop_.load(); }

  // Codes whose tombstone a change must create.
  void set_live(std::shared_ptr<const CodeSet> codes) {
    std::lock_guard<std::mutex> lock(mu_);
    live_ = std::move(codes);
  }
  bool is_live(const std::string& code) const {
    std::shared_ptr<const CodeSet> codes;
    {
      std::lock_guard<std::mutex> lock(mu_);
      codes = live_;
    }
    // Unknown live set (none read yet): every change counts.
    return !codes || std::binary_search(codes->begin(), codes->end(), code);
  }

  // Asks for a cycle no later than `when`.
  void request_cycle(Clock::time_point when) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!due_ || when < *due_) due_ = when;
    }
    wake_.notify_all();
  }

  // Waits until a cycle is due (returns true) or stop (false); `fallback` is
  // the interval's next run.
  bool wait_for_cycle(Clock::time_point fallback) {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping()) {
      const Clock::time_point due = due_ ? std::min(*due_, fallback) : fallback;
      if (Clock::now() >= due) {
        due_.reset();
        return true;
      }
      // Bounded, so a stop is noticed within 200 ms.
      wake_.wait_until(lock, std::min(due, Clock::now() + std::chrono::milliseconds(200)));
    }
    return false;
  }

 private:
  const std::atomic<bool>& stop_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::shared_ptr<const CodeSet> live_;   // guarded by mu_
  std::optional<Clock::time_point> due_;  // guarded by mu_
};

class Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, std::function<void(const std::string&)> on_change)
      : pqxx::notification_receiver(conn, "link_changed"), on_change_(std::move(on_change)) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override { on_change_(payload); }

 private:
  std::function<void(const std::string&)> on_change_;
};

// Creates the tombstone of a changed `payload` code when it is live, and asks
// for a cycle. Called on the listener thread.
void on_change(const WatchOptions& options, Shared& shared, Tombstones& tombstones,
               const std::function<void(const std::string&)>& say, const std::string& payload) {
  const std::string code = lowercase(payload);
  if (!is_tombstone_code(code) || !shared.is_live(code)) return;
  const Clock::time_point at = Clock::now();
  try {
    tombstones.add(code);
  } catch (const std::exception& e) {
    say("cannot tombstone " + code + ": " + e.what() + "; cycle now");
    shared.request_cycle(at);
    return;
  }
  shared.request_cycle(at + options.debounce);
  say("tombstoned " + code);
}

// The database's clock, the one the links trigger stamps updated_at with.
std::string database_clock(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  return tx.exec("SELECT clock_timestamp()::text")[0][0].as<std::string>();
}

// Tombstones the live links changed since `watermark` minus kCatchUpMargin:
// their NOTIFY may have been sent while no connection was listening. Returns
// how many links changed in that span.
std::size_t catch_up(pqxx::connection& conn, const std::string& watermark,
                     const WatchOptions& options, Shared& shared, Tombstones& tombstones,
                     const std::function<void(const std::string&)>& say) {
  pqxx::nontransaction tx(conn);
  const pqxx::result rows = tx.exec_params(
      "SELECT code FROM links WHERE updated_at >= $1::timestamptz - make_interval(secs => $2)",
      watermark, static_cast<double>(kCatchUpMargin.count()));
  for (const auto& row : rows) on_change(options, shared, tombstones, say, row[0].c_str());
  return rows.size();
}

// LISTEN link_changed until stop, reconnecting; see the header for the flow.
void listen_loop(const WatchOptions& options, Shared& shared, Tombstones& tombstones,
                 std::ostream& log, std::mutex& log_mu) {
  const std::function<void(const std::string&)> say = [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(log_mu);
    log << "exporter: watch: " << line << std::endl;
  };
  bool down_logged = false;
  // Database time at which this thread last knew it was listening; empty
  // before the first LISTEN (the startup cycle covers what came before).
  std::string watermark;
  while (!shared.stopping()) {
    std::unique_ptr<pqxx::connection> conn;
    std::unique_ptr<Receiver> receiver;
    try {
      conn = std::make_unique<pqxx::connection>(options.database_url);
      {
        pqxx::nontransaction tx(*conn);
        tx.exec("SET application_name = " + tx.quote(std::string(kListenerApplicationName)));
      }
      receiver = std::make_unique<Receiver>(*conn, [&](const std::string& payload) {
        on_change(options, shared, tombstones, say, payload);
      });
      if (!conn->is_open()) throw pqxx::broken_connection("connection lost while starting LISTEN");
      // Every change committed from now on is notified here.
      const std::string listening_since = database_clock(*conn);
      if (!watermark.empty()) {
        const std::size_t changed = catch_up(*conn, watermark, options, shared, tombstones, say);
        say("listening for link changes again; " + std::to_string(changed) +
            " links changed since " + watermark + " (less " +
            std::to_string(kCatchUpMargin.count()) + " s) checked; cycle now");
      } else {
        say("listening for link changes");
      }
      watermark = listening_since;
      down_logged = false;
      // Changes may have been missed before LISTEN took effect.
      shared.request_cycle(Clock::now());
      Clock::time_point next_mark = Clock::now() + kWatermarkEvery;
      while (!shared.stopping()) {
        conn->await_notification(0, 200000);
        if (!conn->is_open()) throw pqxx::broken_connection("connection lost while listening");
        if (Clock::now() >= next_mark) {
          // Also a liveness check. Notifications still unread when the
          // connection breaks are covered by the catch-up's margin.
          watermark = database_clock(*conn);
          next_mark = Clock::now() + kWatermarkEvery;
        }
      }
    } catch (const std::exception& e) {
      if (!down_logged) say("not listening for link changes: " + first_line(e.what()));
      down_logged = true;
    }
    // Close first: the receiver's destructor would otherwise send UNLISTEN,
    // reconnecting to do so.
    if (conn) conn->disconnect();
    receiver.reset();
    const Clock::time_point until = Clock::now() + options.reconnect;
    while (!shared.stopping() && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

std::string live_folder(const std::string& live_link) {
  std::error_code ec;
  const std::filesystem::path target = std::filesystem::read_symlink(live_link, ec);
  if (ec) return "";
  return target.is_absolute() ? target.string()
                              : (std::filesystem::path(live_link).parent_path() / target).string();
}

}  // namespace

std::vector<std::string> exported_codes(const std::string& dir) {
  std::ifstream in(dir + "/" + kNginxMapFile);
  CodeSet codes;
  if (!in) return codes;
  std::string line;
  // Entry lines: `    <key> "<value>";`, the key with a leading '\' for a
  // keyword; `    default "";` and the partition lines (`    a $var;`) are not.
  while (std::getline(in, line)) {
    if (line.compare(0, 4, "    ") != 0) continue;
    const std::size_t space = line.find(' ', 4);
    if (space == std::string::npos || line.compare(space, 2, " \"") != 0) continue;
    std::string key = line.substr(4, space - 4);
    if (key == "default") continue;
    if (!key.empty() && key[0] == '\\') key.erase(0, 1);
    if (is_tombstone_code(key)) codes.push_back(lowercase(key));
  }
  std::sort(codes.begin(), codes.end());
  codes.erase(std::unique(codes.begin(), codes.end()), codes.end());
  return codes;
}

int watch(const WatchOptions& options, const CompileFunction& compile,
          const std::atomic<bool>& stop, std::ostream& log) {
  std::mutex log_mu;
  auto say = [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(log_mu);
    log << "exporter: watch: " << line << std::endl;
  };
  std::optional<Tombstones> tombstones;
  try {
    tombstones.emplace(options.tombstone_dir);
  } catch (const std::exception& e) {
    say(e.what());
    return 1;
  }
  Shared shared(stop);
  const std::string live = live_folder(options.publish.live_link);
  std::shared_ptr<const CodeSet> live_codes;
  if (!live.empty()) {
    live_codes = std::make_shared<const CodeSet>(exported_codes(live));
    shared.set_live(live_codes);
  }
  say("tombstones in " + options.tombstone_dir + ", " +
      (live_codes ? std::to_string(live_codes->size()) + " codes live" : "nothing live yet"));

  std::thread listener([&] { listen_loop(options, shared, *tombstones, log, log_mu); });

  Clock::time_point next_interval = Clock::now() + options.interval;
  while (shared.wait_for_cycle(next_interval)) {
    const Clock::time_point started = Clock::now();
    std::optional<ExportLock> lock = ExportLock::try_acquire(options.publish.exports_dir);
    if (!lock) {
      say("export lock held by another run; retrying");
      shared.request_cycle(started + options.retry);
      continue;
    }
    const std::uint64_t generation = tombstones->generation();
    PublishResult result;
    try {
      const std::string version = compile();
      // The version about to go live: its codes count as live from now on,
      // so a change during the publish still gets a tombstone.
      auto next_codes = std::make_shared<const CodeSet>(
          exported_codes(options.publish.exports_dir + "/" + version));
      auto both = std::make_shared<CodeSet>();
      std::set_union(next_codes->begin(), next_codes->end(),
                     live_codes ? live_codes->begin() : next_codes->end(),
                     live_codes ? live_codes->end() : next_codes->end(), std::back_inserter(*both));
      shared.set_live(both);
      PublishOptions publish_options = options.publish;
      publish_options.version = version;
      result = publish(publish_options, log);
      const bool live_now = result.outcome == PublishOutcome::kPublished ||
                            result.outcome == PublishOutcome::kUnchanged;
      if (live_now) live_codes = next_codes;
      if (live_codes) shared.set_live(live_codes);
      std::size_t removed = 0;
      if (live_now) removed = tombstones->remove_older_than(generation);
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
      say("cycle in " + std::to_string(ms) + " ms: " + result.summary + "; " +
          std::to_string(removed) + " tombstones removed, " +
          std::to_string(tombstones->codes().size()) + " left");
      if (!live_now) shared.request_cycle(Clock::now() + options.retry);
    } catch (const std::exception& e) {
      if (live_codes) shared.set_live(live_codes);
      say(std::string("cycle failed: ") + first_line(e.what()) + "; tombstones kept");
      shared.request_cycle(Clock::now() + options.retry);
    }
    next_interval = Clock::now() + options.interval;
  }
  listener.join();
  say("stopped");
  return 0;
}

}  // namespace exporter
