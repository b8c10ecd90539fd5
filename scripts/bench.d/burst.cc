// burst: N concurrent first requests, one per connection (part of scripts/bench).
//
// Usage: burst HOST PORT PATH N EXPECT_STATUS EXPECT_LOCATION [TIMEOUT_S [BEFORE_SEND]]
//
// Phase 1 opens N TCP connections and waits until every one is established (a
// refused or reset connect is retried), so that no request is sent while others
// are still connecting. BEFORE_SEND, when given, is then run with /bin/sh and
// must exit 0 (scripts/bench uses it to make the lookup slow). Phase 2 writes
// one `GET PATH` with `Connection: close`
// on every connection in a tight loop. Phase 3 reads every response. A response
// is correct when its status is EXPECT_STATUS and its Location header is
// exactly EXPECT_LOCATION.
//
// Prints key=value lines (connected, connect_ms, ok, bad_status, bad_location,
// failed, send_ms, total_ms, p50_ms, p99_ms, max_ms); exits 0 when all N answers are
// correct, 1 otherwise, 2 on usage errors.
//
// Plain sockets and epoll, no dependencies: g++ -O2 -std=c++17 burst.cc -o burst
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

enum class State { kConnecting, kConnected, kSent, kDone, kFailed };

struct Conn {
  int fd = -1;
  State state = State::kConnecting;
  int attempts = 0;
  Clock::time_point sent_at;
  Clock::time_point done_at;
  std::string in;
  int status = 0;
  bool location_ok = false;
};

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

void raise_fd_limit(std::size_t wanted) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur >= wanted) return;
  lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, wanted);
  setrlimit(RLIMIT_NOFILE, &lim);
}

bool start_connect(Conn& c, const sockaddr_in& addr, int ep) {
  c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    std::fprintf(stderr, "burst: socket: %s\n", std::strerror(errno));
    return false;
  }
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ++c.attempts;
  c.state = State::kConnecting;
  int rc = connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  if (rc != 0 && errno != EINPROGRESS) {
    close(c.fd);
    c.fd = -1;
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.ptr = &c;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
    std::fprintf(stderr, "burst: epoll_ctl: %s\n", std::strerror(errno));
    close(c.fd);
    c.fd = -1;
    return false;
  }
  if (rc == 0) c.state = State::kConnected;
  return true;
}

// Parses the status line and Location once the headers are complete.
// Returns true when the whole response (headers and Content-Length bytes of
// body) has arrived.
bool parse_response(Conn& c, const std::string& want_location, bool eof) {
  std::size_t end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) return eof;
  if (c.status == 0) {
    if (c.in.compare(0, 5, "HTTP/") == 0) {
      std::size_t sp = c.in.find(' ');
      if (sp != std::string::npos) c.status = std::atoi(c.in.c_str() + sp + 1);
    }
    if (c.status == 0) c.status = -1;
  }
  std::size_t content_length = 0;
  std::size_t pos = c.in.find("\r\n") + 2;
  while (pos < end) {
    std::size_t eol = c.in.find("\r\n", pos);
    std::string line = c.in.substr(pos, eol - pos);
    pos = eol + 2;
    std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    std::size_t v = colon + 1;
    while (v < line.size() && (line[v] == ' ' || line[v] == '\t')) ++v;
    std::string value = line.substr(v);
    if (name == "location") c.location_ok = value == want_location;
    if (name == "content-length") content_length = std::strtoul(value.c_str(), nullptr, 10);
  }
  return eof || c.in.size() >= end + 4 + content_length;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7 || argc > 9) {
    std::fprintf(stderr,
                 "usage: burst HOST PORT PATH N EXPECT_STATUS EXPECT_LOCATION"
                 " [TIMEOUT_S [BEFORE_SEND]]\n");
    return 2;
  }
  const char* host = argv[1];
  const int port = std::atoi(argv[2]);
  const std::string path = argv[3];
  const std::size_t n = std::strtoul(argv[4], nullptr, 10);
  const int want_status = std::atoi(argv[5]);
  const std::string want_location = argv[6];
  const double timeout_s = argc >= 8 ? std::atof(argv[7]) : 30.0;
  const char* before_send = argc >= 9 ? argv[8] : nullptr;
  if (n == 0 || port <= 0 || port > 65535) {
    std::fprintf(stderr, "burst: invalid arguments\n");
    return 2;
  }
  raise_fd_limit(n + 64);

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    std::fprintf(stderr, "burst: HOST must be an IPv4 address\n");
    return 2;
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host + ":" +
                              std::to_string(port) +
                              "\r\nUser-Agent: bench-burst\r\nConnection: close\r\n\r\n";

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    std::perror("burst: epoll_create1");
    return 1;
  }
  std::vector<Conn> conns(n);
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
  std::vector<epoll_event> events(4096);

  // Phase 1: connect everything.
  const Clock::time_point c0 = Clock::now();
  std::size_t connected = 0;
  for (Conn& c : conns) {
    if (!start_connect(c, addr, ep)) {
      std::fprintf(stderr, "burst: cannot open connection %zu\n",
                   static_cast<std::size_t>(&c - conns.data()));
      return 1;
    }
    if (c.state == State::kConnected) ++connected;
  }
  while (connected < n && Clock::now() < deadline) {
    int k = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    for (int i = 0; i < k; ++i) {
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      if (c.state != State::kConnecting) continue;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) {
        c.state = State::kConnected;
        epoll_event ev{};
        ev.events = 0;  // nothing until the request is sent
        ev.data.ptr = &c;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        ++connected;
      } else {
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        close(c.fd);
        c.fd = -1;
        if (c.attempts >= 5 || !start_connect(c, addr, ep)) {
          c.state = State::kFailed;
          std::fprintf(stderr, "burst: connect failed: %s\n", std::strerror(err));
          return 1;
        }
        if (c.state == State::kConnected) ++connected;
      }
    }
  }
  if (connected < n) {
    std::fprintf(stderr, "burst: only %zu of %zu connections established before the timeout\n",
                 connected, n);
    return 1;
  }

  const double connect_ms = ms_between(c0, Clock::now());
  if (before_send != nullptr && std::system(before_send) != 0) {
    std::fprintf(stderr, "burst: the before-send command failed\n");
    return 1;
  }

  // Phase 2: one request on every connection, as close together as possible.
  const Clock::time_point t0 = Clock::now();
  std::size_t failed = 0;
  for (Conn& c : conns) {
    c.sent_at = Clock::now();
    ssize_t w = send(c.fd, request.data(), request.size(), MSG_NOSIGNAL);
    if (w != static_cast<ssize_t>(request.size())) {
      c.state = State::kFailed;
      ++failed;
      continue;
    }
    c.state = State::kSent;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = &c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
  }
  const double send_ms = ms_between(t0, Clock::now());

  // Phase 3: read every response.
  std::size_t pending = n - failed;
  char buf[8192];
  while (pending > 0 && Clock::now() < deadline) {
    int k = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    for (int i = 0; i < k; ++i) {
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      if (c.state != State::kSent) continue;
      bool eof = false;
      bool error = false;
      for (;;) {
        ssize_t r = recv(c.fd, buf, sizeof buf, 0);
        if (r > 0) {
          c.in.append(buf, static_cast<std::size_t>(r));
          continue;
        }
        if (r == 0) eof = true;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) error = true;
        break;
      }
      bool complete = parse_response(c, want_location, eof || error);
      if (!complete) continue;
      c.done_at = Clock::now();
      c.state = c.status > 0 ? State::kDone : State::kFailed;
      if (c.state == State::kFailed) ++failed;
      epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
      close(c.fd);
      c.fd = -1;
      --pending;
    }
  }
  failed += pending;  // timed out

  std::size_t ok = 0, bad_status = 0, bad_location = 0;
  std::vector<double> latencies;
  latencies.reserve(n);
  Clock::time_point last = t0;
  for (const Conn& c : conns) {
    if (c.state != State::kDone) continue;
    latencies.push_back(ms_between(c.sent_at, c.done_at));
    last = std::max(last, c.done_at);
    if (c.status != want_status) {
      ++bad_status;
    } else if (!c.location_ok) {
      ++bad_location;
    } else {
      ++ok;
    }
  }
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&latencies](double p) {
    if (latencies.empty()) return 0.0;
    std::size_t idx = static_cast<std::size_t>(p / 100.0 * static_cast<double>(latencies.size()));
    return latencies[std::min(idx, latencies.size() - 1)];
  };
  std::printf("connected=%zu\nconnect_ms=%.1f\n", connected, connect_ms);
  std::printf("ok=%zu\nbad_status=%zu\nbad_location=%zu\nfailed=%zu\n", ok, bad_status,
              bad_location, failed);
  std::printf("send_ms=%.2f\ntotal_ms=%.2f\np50_ms=%.3f\np99_ms=%.3f\nmax_ms=%.3f\n", send_ms,
              ms_between(t0, last), pct(50), pct(99), latencies.empty() ? 0.0 : latencies.back());
  for (const Conn& c : conns) {
    if (c.fd >= 0) close(c.fd);
  }
  close(ep);
  return ok == n ? 0 : 1;
}
