#include "origin/change_listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <memory>
#include <pqxx/pqxx>

#include "origin/log.h"

namespace origin {
namespace {

constexpr long kAwaitMicroseconds = 200000;

// Without these a peer that vanishes without a reset (host down, network cut)
// leaves the socket silent for hours, and with it every change on the other
// instances. 5 s idle, then 3 probes 2 s apart; unacknowledged data gives up
// after 10 s. On a Unix-domain socket these fail, harmlessly: there is no
// network to lose.
void enable_keepalives(int fd) {
  if (fd < 0) return;
  const int on = 1;
  const int idle_s = 5;
  const int interval_s = 2;
  const int probes = 3;
  const unsigned user_timeout_ms = 10000;
  const auto int_size = static_cast<socklen_t>(sizeof(int));
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, int_size);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, int_size);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, int_size);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, int_size);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
               static_cast<socklen_t>(sizeof(user_timeout_ms)));
}

}  // namespace

class ChangeListener::Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, const std::string& channel, ChangeListener& owner,
           const OnChange& on_change)
      : pqxx::notification_receiver(conn, channel), owner_(owner), on_change_(on_change) {}

  void operator()(const std::string& payload, int /*backend_pid*/) override {
    owner_.report_change(on_change_, payload);
  }

 private:
  ChangeListener& owner_;
  const OnChange& on_change_;
};

ChangeListener::ChangeListener(std::string url, OnChange on_change, OnReset on_reset,
                               std::chrono::milliseconds retry_interval,
                               std::vector<ExtraChannel> extra_channels)
    : url_(std::move(url)),
      on_change_(std::move(on_change)),
      on_reset_(std::move(on_reset)),
      retry_interval_(retry_interval),
      extra_channels_(std::move(extra_channels)) {
  thread_ = std::thread([this] { loop(); });
}

ChangeListener::~ChangeListener() {
  stop();
  thread_.join();
}

void ChangeListener::stop() {
  {
    // Under the lock, so the retry wait cannot miss it.
    std::lock_guard<std::mutex> lock(mu_);
    stopping_.store(true, std::memory_order_relaxed);
  }
  wake_.notify_all();
}

bool ChangeListener::wait_until_listening(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return wake_.wait_for(lock, timeout, [this] { return reset_once_; });
}

void ChangeListener::loop() {
  bool logged_down = false;
  while (!stopping()) {
    listen_once(logged_down);
    listening_.store(false, std::memory_order_relaxed);
    std::unique_lock<std::mutex> lock(mu_);
    wake_.wait_for(lock, retry_interval_, [this] { return stopping(); });
  }
}

// One connection's life: connect, LISTEN, report the reset, then relay
// notifications until the connection fails or stop() is called.
void ChangeListener::listen_once(bool& logged_down) {
  std::unique_ptr<pqxx::connection> conn;
  std::vector<std::unique_ptr<Receiver>> receivers;
  try {
    conn = std::make_unique<pqxx::connection>(url_);
    enable_keepalives(conn->sock());
    receivers.push_back(std::make_unique<Receiver>(*conn, kLinkChangedChannel, *this, on_change_));
    for (const ExtraChannel& extra : extra_channels_) {
      receivers.push_back(std::make_unique<Receiver>(*conn, extra.name, *this, extra.on_change));
    }
    // The receiver's LISTEN swallows a connection lost meanwhile; and libpqxx
    // would silently reconnect and LISTEN again on the next query, hiding the
    // gap. So no query is sent after this point, and every wait is followed
    // by a check that this very connection is still open.
    if (!conn->is_open()) throw pqxx::broken_connection("connection lost while starting LISTEN");
    listening_.store(true, std::memory_order_relaxed);
    if (logged_down) log_event("info", "listening for link changes again");
    logged_down = false;
    report_reset();
    {
      std::lock_guard<std::mutex> lock(mu_);
      reset_once_ = true;
    }
    wake_.notify_all();
    while (!stopping()) {
      try {
        conn->await_notification(0, kAwaitMicroseconds);
      } catch (const pqxx::broken_connection&) {
        throw pqxx::broken_connection("connection lost while listening");  // says more
      }
      if (!conn->is_open()) throw pqxx::broken_connection("connection lost while listening");
      if (reset_pending_) report_reset();
    }
  } catch (const std::exception& e) {
    if (!logged_down) {
      log_event("warn", "not listening for link changes; reconnecting",
                {{"error", first_line(e.what())}});
    }
    logged_down = true;
  }
  // Close first: the receiver's destructor would otherwise send UNLISTEN,
  // reconnecting to do so if the connection is broken.
  if (conn) conn->disconnect();
  receivers.clear();
}

void ChangeListener::report_change(const OnChange& on_change, const std::string& payload) {
  try {
    if (on_change) on_change(payload);
  } catch (const std::exception& e) {
    log_event("error", "link change handler failed; resetting",
              {{"code", payload}, {"error", first_line(e.what())}});
    reset_pending_ = true;
  }
}

void ChangeListener::report_reset() {
  reset_pending_ = false;
  try {
    if (on_reset_) on_reset_();
  } catch (const std::exception& e) {
    log_event("error", "link reset handler failed; retrying", {{"error", first_line(e.what())}});
    reset_pending_ = true;
  }
}

}  // namespace origin
