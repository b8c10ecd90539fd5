#include "origin/http_server.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_set>
#include <vector>

#include "core/code.h"
#include "core/json.h"
#include "core/visit_record.h"
#include "origin/batch_queue.h"
#include "origin/client_ip.h"
#include "origin/journal.h"
#include "origin/log.h"
#include "origin/metrics.h"
#include "origin/scanner_tarpit.h"
#include "origin/single_flight.h"

namespace origin {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using reuse_port = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
using Clock = std::chrono::steady_clock;
// The session's I/O objects use the io_context's own executor type rather
// than the polymorphic any_io_executor: every handler then dispatches
// without type-erased executor copies.
using Executor = net::io_context::executor_type;
using Socket = net::basic_stream_socket<tcp, Executor>;

constexpr auto kDrainDeadline = std::chrono::seconds(9);
// How long a connection closed after an error answer keeps reading (and
// discarding) what the client still sends, and how much at most.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr std::size_t kLingerMaxBytes = 1 << 20;
// Between two "connection cap reached" log lines.
constexpr auto kCapLogInterval = std::chrono::seconds(10);
// File descriptors kept free beside client connections (listeners, journal
// files, database connections, logs).
constexpr std::size_t kReservedDescriptors = 64;

class Session;

// One io thread: its io_context, its acceptor and the sessions it owns. Only
// that thread touches `sessions` and `draining`.
struct Worker {
  std::unordered_set<Session*> sessions;  // declared first: outlives ioc
  bool draining = false;
  net::io_context ioc{1};
  std::optional<net::basic_socket_acceptor<tcp, net::io_context::executor_type>> acceptor;
  std::optional<net::steady_timer> accept_backoff;
  // This thread's visit journal: no lock is shared between io threads.
  std::unique_ptr<JournalWriter> journal;
  std::optional<net::steady_timer> journal_timer;
  std::chrono::steady_clock::time_point next_journal_warning{};
  std::uint64_t journal_failures = 0;
  // Group write: the visit lines of the answers produced in one turn of the
  // event loop, and their sessions, each holding its answer until the lines
  // are written (Session::flush_visits, posted by the first of them).
  std::string visit_lines;
  std::size_t visit_count = 0;
  std::vector<std::shared_ptr<Session>> awaiting_journal;
  bool visit_flush_posted = false;
  // This thread's request counters (null without a registry) and the state
  // of its request id generator.
  metrics::RequestShard* metrics = nullptr;
  std::uint64_t request_id_state = 0;
};

}  // namespace

class HttpServer::Impl {
 public:
  Impl(const OriginConfig& config, Api& api);
  ~Impl();
  void run();
  void stop();
  bool journal_healthy() const;

  const OriginConfig& config;
  Api& api;
  net::thread_pool db_workers;
  std::atomic<std::size_t> pending_db{0};
  // Open client connections over all io threads, and the cap on them
  // (MAX_CONNECTIONS, lowered to what the descriptor limit allows).
  std::atomic<std::size_t> connections{0};
  std::size_t max_connections = 0;
  // Concurrent misses of one code share one store lookup.
  SingleFlight<std::string, std::shared_ptr<const RedirectLookup>> redirect_flights;
  // The leaders of those flights, waiting for a database worker. A worker
  // that becomes free looks up everything waiting in one query.
  struct PendingLookup {
    std::string code;
    Clock::time_point enqueued;
    std::shared_ptr<const HttpRequest> request;  // of the flight's leader, for log lines
  };
  BatchQueue<PendingLookup> redirect_batches;
  // Looks `batch` up and ends each code's flight (on a database worker).
  void load_redirect_batch(std::vector<PendingLookup>& batch);
  // Clients answered "unknown code" too fast get those answers late.
  ScannerTarpit scanner;

 private:
  void do_accept(Worker& worker);
  void refuse(Socket& socket);
  void begin_drain(Worker& worker);
  void schedule_journal_upkeep(Worker& worker);

  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex mu_;  // guards stop_requested_, finished_
  std::condition_variable changed_;
  bool stop_requested_ = false;
  unsigned finished_ = 0;
  std::mutex cap_log_mu_;  // guards the two fields below
  Clock::time_point next_cap_log_{};
  std::uint64_t refused_since_log_ = 0;
};

namespace {

using DeadlineTimer =
    net::basic_waitable_timer<std::chrono::steady_clock,
                              net::wait_traits<std::chrono::steady_clock>, Executor>;

std::string_view to_std(beast::string_view text) { return {text.data(), text.size()}; }

// A request refused from its header alone; the connection is closed after the
// answer, since the body (if any) cannot be delimited or is not wanted.
struct Refusal {
  int status;
  std::string_view code;
  std::string_view message;
};

// Methods some route of the API implements. Any other is answered 501; one of
// these on a route that does not take it, 405 (by the handlers).
bool is_implemented_method(http::verb method) {
  return method == http::verb::get || method == http::verb::head || method == http::verb::post ||
         method == http::verb::patch || method == http::verb::delete_;
}

bool is_digits(beast::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// What Beast 1.74 lets through but RFC 9112 (sections 5.2, 6.1, 6.3, 3.2) and
// request smuggling call for refusing: a Content-Length that is repeated (even
// with the same value; RFC 9112 allows folding identical ones, refusing is
// safer behind a proxy that may pick another), a list or not plain digits;
// Transfer-Encoding beside Content-Length (in any order), in HTTP/1.0, not
// ending in exactly one "chunked", or with another coding (501); obsolete
// line folding; more than one Host; methods no route implements (501).
// (Beast itself refuses versions other than 1.0 and 1.1.)
std::optional<Refusal> refuse_header(const http::request<http::string_body>& req, bool obs_fold) {
  if (obs_fold) {
    return Refusal{400, "obsolete_line_folding", "a header field is folded over several lines"};
  }
  int content_lengths = 0;
  int transfer_encodings = 0;
  int hosts = 0;
  bool valid_length = true;
  std::vector<std::string> codings;
  for (const auto& field : req) {
    switch (field.name()) {
      case http::field::content_length:
        ++content_lengths;
        valid_length = valid_length && is_digits(field.value());
        break;
      case http::field::transfer_encoding:
        ++transfer_encodings;
        for (const auto coding : http::token_list{field.value()}) {
          codings.emplace_back(core::lowercase_ascii(to_std(coding)));
        }
        break;
      case http::field::host:
        ++hosts;
        break;
      default:
        break;
    }
  }
  if (content_lengths > 1) {
    return Refusal{400, "duplicate_content_length", "Content-Length appears more than once"};
  }
  if (!valid_length) {
    return Refusal{400, "invalid_content_length", "Content-Length must be one decimal number"};
  }
  if (transfer_encodings > 0) {
    if (content_lengths > 0) {
      return Refusal{400, "conflicting_framing",
                     "Content-Length and Transfer-Encoding must not both be sent"};
    }
    if (req.version() == 10) {
      return Refusal{400, "invalid_transfer_encoding", "Transfer-Encoding is not HTTP/1.0"};
    }
    const auto chunked = std::count(codings.begin(), codings.end(), "chunked");
    if (codings.empty() || codings.back() != "chunked" || chunked != 1) {
      return Refusal{400, "invalid_transfer_encoding",
                     "Transfer-Encoding must end with a single chunked"};
    }
    if (codings.size() != 1) {
      return Refusal{501, "unsupported_transfer_encoding",
                     "only chunked transfer coding is supported"};
    }
  }
  // A missing Host is let through although RFC 9112 says 400: the edge
  // proxies with `Host $http_host`, which sends none for an HTTP/1.0 client
  // that sent none, and the origin does not route by host.
  if (hosts > 1) return Refusal{400, "duplicate_host", "Host appears more than once"};
  if (!is_implemented_method(req.method())) {
    return Refusal{501, "method_not_implemented", "this method is not implemented"};
  }
  return std::nullopt;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket&& socket, Worker& worker, HttpServer::Impl& server)
      : socket_(std::move(socket)),
        deadline_timer_(socket_.get_executor()),
        worker_(worker),
        server_(server) {
    server_.connections.fetch_add(1, std::memory_order_relaxed);
  }

  ~Session() {
    worker_.sessions.erase(this);
    server_.connections.fetch_sub(1, std::memory_order_relaxed);
  }

  void start() {
    worker_.sessions.insert(this);
    beast::error_code ec;
    auto endpoint = socket_.remote_endpoint(ec);
    if (!ec) client_ip_ = endpoint.address().to_string();
    peer_ = parse_ip(client_ip_);
    socket_.set_option(tcp::no_delay(true), ec);
    // Lets send_redirect write without blocking and fall back to an
    // asynchronous write only when the socket buffer is full.
    socket_.non_blocking(true, ec);
    visit_.ip = core::anonymize_ip(client_ip_, server_.config.ip_mode);
    if (peer_ && server_.config.trusted_proxies.contains(*peer_)) trusted_peer_ = peer_;
    visit_.source = std::string(core::kSourceOrigin);
    wait_for_request();
  }

  // Called on the session's thread when the server stops.
  void drain() {
    if (idle_) cancel_io();
  }

 private:
  // Deadlines. One timer per session instead of one wait per I/O operation:
  // starting a phase only stores its deadline, and the timer, never armed
  // further ahead than the shortest timeout, checks it when it fires and
  // waits again if the deadline moved later. Since every deadline lies at
  // least the shortest timeout ahead when it is set, the pending wait always
  // fires at or before it, so a timeout is never late. An expired deadline
  // cancels the pending I/O, whose handler closes the connection, as a
  // timeout of Beast's tcp_stream did; with no I/O pending (a database
  // lookup) it does nothing, and sending the answer starts a new deadline.
  void set_deadline(std::chrono::seconds timeout) {
    deadline_ = Clock::now() + timeout;
    if (!timer_pending_) arm_timer();
  }

  void arm_timer() {
    const Clock::duration shortest =
        std::min(server_.config.read_timeout, server_.config.idle_timeout);
    timer_pending_ = true;
    deadline_timer_.expires_at(std::min(deadline_, Clock::now() + shortest));
    deadline_timer_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      auto self = weak.lock();
      if (!self || ec == net::error::operation_aborted) return;
      self->timer_pending_ = false;
      if (Clock::now() < self->deadline_) return self->arm_timer();
      self->cancel_io();
    });
  }

  void cancel_io() {
    beast::error_code ec;
    socket_.cancel(ec);
  }

  // Keep-alive wait: up to the idle timeout for the first byte of a request.
  void wait_for_request() {
    if (buffer_.size() > 0) return read_request();
    if (worker_.draining) return close();
    idle_ = true;
    set_deadline(server_.config.idle_timeout);
    socket_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->idle_ = false;
                              if (ec) return self->close();
                              self->buffer_.commit(n);
                              self->read_request();
                            });
  }

  // The whole request (headers and body) must arrive within the read timeout,
  // so a client trickling bytes is cut off.
  void read_request() {
    started_ = Clock::now();
    held_ = {};
    request_id_.clear();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.config.max_header_bytes));
    parser_->body_limit(server_.config.max_body_bytes);
    header_bytes_ = 0;
    header_previous_byte_ = 0;
    obs_fold_ = false;
    set_deadline(server_.config.read_timeout);
    parse_header();
  }

  // http::async_read_header, written out for two things Beast 1.74 lacks:
  // every byte of the header block passes through note_header_bytes (Beast
  // accepts obsolete line folding and joins the lines, after which it cannot
  // be told apart), and the header limit holds for the whole block: Beast
  // applies it to each put() alone, and put() consumes complete fields, so a
  // header arriving in pieces could grow without bound.
  void parse_header() {
    beast::error_code ec;
    while (buffer_.size() > 0) {
      const std::size_t limit = server_.config.max_header_bytes;
      if (header_bytes_ >= limit) return on_read(http::error::header_limit);
      parser_->header_limit(static_cast<std::uint32_t>(limit - header_bytes_));
      const net::const_buffer data = buffer_.data();
      const std::size_t used = parser_->put(data, ec);
      header_bytes_ += used;
      note_header_bytes(std::string_view(static_cast<const char*>(data.data()), used));
      buffer_.consume(used);
      if (ec == http::error::need_more) {
        if (used == 0) break;
        continue;
      }
      if (ec || parser_->is_header_done()) return on_header(ec);
    }
    socket_.async_read_some(buffer_.prepare(beast::read_size(buffer_, 65536)),
                            [self = shared_from_this()](beast::error_code rec, std::size_t n) {
                              if (rec) return self->on_read(rec);
                              self->buffer_.commit(n);
                              self->parse_header();
                            });
  }

  // A line of the header block that starts with a space or a tab continues
  // the previous one (obs-fold). Before the first field Beast refuses it.
  void note_header_bytes(std::string_view bytes) {
    for (const char c : bytes) {
      if (header_previous_byte_ == '\n' && (c == ' ' || c == '\t')) obs_fold_ = true;
      header_previous_byte_ = c;
    }
  }

  // curl and other clients send "Expect: 100-continue" with larger bodies and
  // wait (curl: 1 s) for an interim answer before sending the body.
  void on_header(beast::error_code ec) {
    if (ec) return on_read(ec);
    if (auto refusal = refuse_header(parser_->get(), obs_fold_)) {
      head_ = false;
      return send_error(refusal->status, refusal->code, refusal->message);
    }
    if (parser_->is_done()) return on_read(ec);
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      auto interim =
          std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      return http::async_write(
          socket_, *interim,
          [self = shared_from_this(), interim](beast::error_code wec, std::size_t) {
            if (wec) return self->close();
            self->read_body();
          });
    }
    read_body();
  }

  void read_body() {
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    head_ = false;
    if (ec == http::error::body_limit) {
      return send_error(
          413, "body_too_large",
          "request body exceeds " + std::to_string(server_.config.max_body_bytes) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return send_error(431, "headers_too_large", "request header block is too large");
    }
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted) {
      return close();
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_method).category()) {
      // end_of_stream is of this category too, but handled above.
      return send_error(400, "bad_request", "malformed HTTP request: " + ec.message());
    }
    if (ec) return close();

    const http::request<http::string_body>& req = parser_->get();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    const std::string_view target = to_std(req.target());
    if (std::optional<std::string> code =
            server_.api.redirect_code(to_std(req.method_string()), target)) {
      if (server_.api.cached_redirect(*code, &lookup_)) {
        // The hot path: answered from views into the parsed request and
        // buffers kept by the session, without an HttpRequest or a Beast
        // response.
        if (server_.api.redirect_location(target, lookup_, &location_)) {
          return send_redirect(*code, lookup_.redirect.status);
        }
        return answer_redirect(server_.api.render_redirect(make_request(), *code, lookup_));
      }
      return join_redirect_flight(make_request(), std::move(*code));
    }
    HttpRequest request = make_request();
    if (!server_.api.needs_database(request)) return send(server_.api.handle(request));
    dispatch_to_database(std::move(request));
  }

  // Moves the body out of the parsed request.
  HttpRequest make_request() {
    http::request<http::string_body>& req = parser_->get();
    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    request.content_type = std::string(req[http::field::content_type]);
    request.accept = std::string(req[http::field::accept]);
    request.body = std::move(req.body());
    request.client_ip = client_ip_;
    request.request_id = request_id();
    request.authorization = std::string(req[http::field::authorization]);
    request.api_key = std::string(req["X-Api-Key"]);
    request.forwarded_for = forwarded_for();
    return request;
  }

  // The address visits and access lines record, as VISIT_IP_MODE stores it:
  // behind a trusted proxy, the client it forwards for (as for rate limits).
  std::string recorded_ip() const {
    if (!trusted_peer_) return core::anonymize_ip(client_ip_, server_.config.ip_mode);
    return core::anonymize_ip(
        format_ip(client_address(*trusted_peer_, forwarded_for(), server_.config.trusted_proxies)),
        server_.config.ip_mode);
  }

  // The request's X-Request-Id when it sent a valid one, else a new id.
  const std::string& request_id() {
    if (!request_id_.empty()) return request_id_;
    const std::string_view incoming = to_std(parser_->get()["X-Request-Id"]);
    if (is_valid_request_id(incoming)) {
      request_id_.assign(incoming);
    } else {
      generate_request_id(&worker_.request_id_state, &request_id_);
    }
    return request_id_;
  }

  // Counts the answered request and writes its access-log line if due.
  void finish_request(metrics::Route route, int status) {
    const Clock::duration elapsed = Clock::now() - started_;
    if (worker_.metrics != nullptr) worker_.metrics->record(route, status, elapsed);
    const OriginConfig::AccessLog mode = server_.config.access_log;
    if (mode == OriginConfig::AccessLog::kOff) return;
    // A tarpitted answer is slow on purpose: not a slow request to log.
    if (mode == OriginConfig::AccessLog::kErrors && status < 500 &&
        elapsed - held_ < server_.config.access_log_slow) {
      return;
    }
    const http::request<http::string_body>& req = parser_->get();
    log_access(request_id_, to_std(req.method_string()), to_std(req.target()),
               metrics::route_name(route), status,
               std::chrono::duration<double, std::milli>(elapsed).count(), recorded_ip());
  }

  // A cache miss. The first session to miss a code leads its flight: the
  // code waits in redirect_batches until a database worker looks it up,
  // together with every other code waiting then, in one query. Sessions
  // missing the same code meanwhile wait for that flight, so a launch hitting
  // a fresh code with thousands of requests costs one query.
  void join_redirect_flight(HttpRequest request, std::string code) {
    auto shared_request = std::make_shared<const HttpRequest>(std::move(request));
    auto executor = socket_.get_executor();
    // The work guard keeps this io_context running while the session waits
    // with no operation of its own pending.
    const bool leader = server_.redirect_flights.join(
        code, [self = shared_from_this(), executor, shared_request, code,
               guard = std::make_shared<net::executor_work_guard<decltype(executor)>>(executor)](
                  const std::shared_ptr<const RedirectLookup>& result) {
          net::post(executor, [self, shared_request, code, result, guard] {
            self->answer_redirect(
                self->server_.api.render_redirect(*shared_request, code, *result));
          });
        });
    if (worker_.metrics != nullptr) {
      leader ? worker_.metrics->flight_led() : worker_.metrics->flight_joined();
    }
    if (!leader) return;
    HttpServer::Impl& server = server_;
    // A request that missed the cache just before the previous flight of this
    // code put its answer there and ended leads a new flight: it is answered
    // from the cache, not by a second database query (the put comes before
    // the flight ends).
    if (auto cached = std::make_shared<RedirectLookup>();
        server.api.cached_redirect(code, cached.get(), /*count=*/false)) {
      server.redirect_flights.complete(code, cached);
      return;
    }
    if (server.pending_db.fetch_add(1) >= server.config.max_pending_db_requests) {
      server.pending_db.fetch_sub(1);
      server.redirect_flights.complete(code, std::make_shared<const RedirectLookup>());
      return;
    }
    server.redirect_batches.push({std::move(code), Clock::now(), std::move(shared_request)});
  }

  void dispatch_to_database(HttpRequest request) {
    if (server_.pending_db.fetch_add(1) >= server_.config.max_pending_db_requests) {
      server_.pending_db.fetch_sub(1);
      return send_error(503, "overloaded", "too many requests waiting for the database");
    }
    auto enqueued = std::chrono::steady_clock::now();
    net::post(server_.db_workers, [self = shared_from_this(), request = std::move(request),
                                   guard = net::make_work_guard(worker_.ioc), enqueued]() mutable {
      HttpResponse response;
      // A request that waited longer than a client would is answered, not run.
      if (std::chrono::steady_clock::now() - enqueued >
          self->server_.config.database.acquire_timeout) {
        response.status = 503;
        response.content_type = "application/json";
        response.body =
            core::error_json("overloaded", "too many requests waiting for the database");
        response.headers.emplace_back("Retry-After", "1");
      } else {
        response = self->server_.api.handle(request);
      }
      self->server_.pending_db.fetch_sub(1);
      auto executor = self->socket_.get_executor();
      net::post(executor, [self = std::move(self), response = std::move(response)]() mutable {
        self->send(std::move(response));
      });
    });
  }

  // Answers GET/HEAD /{code}. An unknown code (404; not a 410, which names a
  // code that exists) counts towards the client's scanner rate, and once the
  // client is tarpitted its answer waits on a timer, which keeps the io
  // thread free and this connection's later requests behind it. Redirects
  // are never held: the database has been asked by then (a code missing from
  // the negative cache may have been created since), so a held answer is
  // always a true 404.
  void answer_redirect(HttpResponse response) {
    if (response.status != 404 || !server_.scanner.enabled()) return send(std::move(response));
    const IpAddress client =
        peer_ ? client_address(*peer_, forwarded_for(), server_.config.trusted_proxies)
              : IpAddress{};
    const ScannerTarpit::Verdict verdict = server_.scanner.note_unknown(client, Clock::now());
    if (verdict.episode_started) {
      RequestLogScope log_scope(request_id());
      log_event("warn", "scanner tarpitted: unknown codes answered late",
                {{"client", core::anonymize_ip(format_ip(client), server_.config.ip_mode)},
                 {"unknown_codes_per_s", std::to_string(static_cast<long>(verdict.rate_per_s))},
                 {"threshold_per_s",
                  std::to_string(static_cast<long>(server_.scanner.options().threshold_per_s))},
                 {"delay_ms", std::to_string(verdict.delay.count())}});
    }
    if (verdict.delay.count() <= 0) return send(std::move(response));
    held_ = verdict.delay;
    if (!hold_timer_) hold_timer_.emplace(socket_.get_executor());
    hold_timer_->expires_after(verdict.delay);
    hold_timer_->async_wait([self = shared_from_this(), response = std::move(response)](
                                beast::error_code) mutable { self->send(std::move(response)); });
  }

  // Every X-Forwarded-For field of the current request, joined with ", ".
  std::string forwarded_for() const {
    std::string joined;
    const http::request<http::string_body>& req = parser_->get();
    for (auto [it, end] = req.equal_range("X-Forwarded-For"); it != end; ++it) {
      if (!joined.empty()) joined += ", ";
      joined.append(it->value().data(), it->value().size());
    }
    return joined;
  }

  // Answers and closes the connection, lingering (see linger_close).
  void send_error(int status, std::string_view code, std::string_view message) {
    keep_alive_ = false;
    linger_ = true;
    HttpResponse response;
    response.status = status;
    response.content_type = "application/json";
    response.body = core::error_json(code, message);
    send(std::move(response));
  }

  // The visit is in the journal before the first byte of the response is
  // sent, so a crash after the client got its redirect cannot lose it. When
  // the journal fails the redirect is still sent: a person clicking a link
  // matters more than one count, and /readyz reports the failure so traffic
  // moves to an instance that can record. Visits are only journaled for
  // parsed requests, whose headers stay in parser_ until the next read.
  //
  // Group write: the line joins the others of this turn of the event loop,
  // and the answer (out_, or pending_response_ when set) waits until
  // flush_visits, posted by the first visit of the turn and so run after
  // every handler already queued (the other connections the same epoll wait
  // found ready), has written them all with one write(2). Under load one
  // system call journals many visits; alone, a visit waits for nothing but
  // that post.
  void journal_then_send(const std::string& code, int status, bool close_after) {
    const http::request<http::string_body>& req = parser_->get();
    visit_.time = core::now_ms();
    visit_.code = code;
    visit_.user_agent.assign(to_std(req[http::field::user_agent]));
    visit_.referrer.assign(to_std(req[http::field::referer]));
    visit_.status = status;
    if (trusted_peer_) visit_.ip = recorded_ip();
    worker_.visit_lines += core::format_visit_line(visit_);
    ++worker_.visit_count;
    close_after_journal_ = close_after;
    worker_.awaiting_journal.push_back(shared_from_this());
    if (worker_.visit_flush_posted) return;
    worker_.visit_flush_posted = true;
    net::post(worker_.ioc, [&worker = worker_] { flush_visits(worker); });
  }

  static void flush_visits(Worker& worker) {
    std::vector<std::shared_ptr<Session>> waiting;
    waiting.swap(worker.awaiting_journal);
    std::string lines;
    lines.swap(worker.visit_lines);
    const std::size_t count = std::exchange(worker.visit_count, 0);
    worker.visit_flush_posted = false;
    if (!lines.empty() && !worker.journal->append_lines(lines)) {
      worker.journal_failures += count;
      const auto now = std::chrono::steady_clock::now();
      if (now >= worker.next_journal_warning) {
        worker.next_journal_warning = now + std::chrono::seconds(5);
        log_event("error", "visit not journaled",
                  {{"error", worker.journal->last_error()},
                   {"visits", std::to_string(count)},
                   {"failures_on_thread", std::to_string(worker.journal_failures)}});
      }
    }
    for (const auto& session : waiting) session->send_journaled();
    // Keep the buffers' capacity for the next turn.
    waiting.clear();
    lines.clear();
    if (worker.awaiting_journal.capacity() == 0) worker.awaiting_journal.swap(waiting);
    if (worker.visit_lines.capacity() == 0) worker.visit_lines.swap(lines);
  }

  // The answer held for the journal write.
  void send_journaled() {
    if (!pending_response_) return write_out(close_after_journal_);
    auto res = std::move(pending_response_);
    write_response(std::move(res), close_after_journal_);
  }

  void send(HttpResponse response) {
    RequestLogScope log_scope(request_id());
    response.headers.emplace_back("X-Request-Id", request_id_);
    finish_request(Api::metrics_route(to_std(parser_->get().target())), response.status);
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(response.status), 11);
    res->set(http::field::server, "shortener-origin");
    if (!response.content_type.empty()) {
      res->set(http::field::content_type, response.content_type);
      res->body() = std::move(response.body);
    }
    for (auto& [name, value] : response.headers) res->set(name, value);
    res->keep_alive(keep_alive_ && !worker_.draining);
    res->prepare_payload();
    // HEAD: the headers a GET would get, Content-Length included, no body.
    if (head_) res->body().clear();
    const bool close_after = !res->keep_alive();
    if (!response.visit_code.empty() && worker_.journal) {
      pending_response_ = std::move(res);
      return journal_then_send(response.visit_code, response.status, close_after);
    }
    write_response(std::move(res), close_after);
  }

  void write_response(std::shared_ptr<http::response<http::string_body>> res, bool close_after) {
    set_deadline(server_.config.read_timeout);
    http::async_write(
        socket_, *res,
        [self = shared_from_this(), res, close_after](beast::error_code ec, std::size_t) {
          if (ec) return self->close();
          if (close_after) return self->linger_ ? self->linger_close() : self->close();
          self->wait_for_request();
        });
  }

  // An active cached link: the bytes send() would have Beast write for
  // render_redirect's answer (status line, Server, Location, Cache-Control,
  // Connection: close when not keeping alive, Content-Length: 0; the same
  // for HEAD), serialized by hand into a buffer kept by the session.
  void send_redirect(const std::string& code, int status) {
    RequestLogScope log_scope(request_id());
    const bool keep_alive = keep_alive_ && !worker_.draining;
    out_.assign("HTTP/1.1 ");
    out_.push_back(static_cast<char>('0' + status / 100));
    out_.push_back(static_cast<char>('0' + status / 10 % 10));
    out_.push_back(static_cast<char>('0' + status % 10));
    out_.push_back(' ');
    const beast::string_view reason = http::obsolete_reason(static_cast<http::status>(status));
    out_.append(reason.data(), reason.size());
    out_.append("\r\nServer: shortener-origin\r\nLocation: ");
    out_.append(location_);
    out_.append("\r\nCache-Control: ");
    out_.append(server_.api.redirect_cache_control());
    out_.append("\r\nX-Request-Id: ");
    out_.append(request_id_);
    out_.append(keep_alive ? "\r\nContent-Length: 0\r\n\r\n"
                           : "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    finish_request(metrics::Route::kRedirect, status);
    if (worker_.journal) return journal_then_send(code, status, !keep_alive);
    write_out(!keep_alive);
  }

  // Writes out_ at once when the socket takes it (almost always: it is a few
  // hundred bytes), else finishes asynchronously under the read timeout.
  void write_out(bool close_after) {
    beast::error_code ec;
    const std::size_t written = socket_.write_some(net::buffer(out_), ec);
    if (ec == net::error::would_block || ec == net::error::try_again) {
      ec = {};
    } else if (ec) {
      return close();
    }
    if (written == out_.size()) {
      if (close_after) return close();
      // A pipelined request already buffered continues from the io_context,
      // not from this stack, so a long pipeline cannot grow the stack.
      if (buffer_.size() > 0) {
        return net::post(socket_.get_executor(),
                         [self = shared_from_this()] { self->wait_for_request(); });
      }
      return wait_for_request();
    }
    set_deadline(server_.config.read_timeout);
    net::async_write(socket_, net::buffer(out_.data() + written, out_.size() - written),
                     [self = shared_from_this(), close_after](beast::error_code wec, std::size_t) {
                       if (wec || close_after) return self->close();
                       self->wait_for_request();
                     });
  }

  // After an error answer the client may still be sending (the rest of an
  // oversized header or body). Closing a socket with unread bytes makes the
  // kernel send a reset, which can destroy the answer before the client has
  // read it; so, like nginx's lingering_close, stop sending, then read and
  // discard until the client closes, for at most kLingerTime and
  // kLingerMaxBytes.
  void linger_close() {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    buffer_.clear();
    set_deadline(std::chrono::duration_cast<std::chrono::seconds>(kLingerTime));
    discard();
  }

  void discard() {
    socket_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->lingered_bytes_ += n;
                              if (ec || self->lingered_bytes_ > kLingerMaxBytes) {
                                return self->close();
                              }
                              self->discard();
                            });
  }

  void close() {
    beast::error_code ec;
    deadline_timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    socket_.close(ec);
  }

  Socket socket_;
  DeadlineTimer deadline_timer_;
  Clock::time_point deadline_{};
  bool timer_pending_ = false;  // a wait of deadline_timer_ is outstanding
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Worker& worker_;
  HttpServer::Impl& server_;
  std::string client_ip_;
  std::optional<IpAddress> peer_;  // client_ip_ parsed
  // The peer, when it is in TRUSTED_PROXIES (visits then record the client).
  std::optional<IpAddress> trusted_peer_;
  Clock::time_point started_{};              // first byte of the current request
  Clock::duration held_{};                   // how long the tarpit held its answer
  std::optional<DeadlineTimer> hold_timer_;  // made when first needed
  std::string request_id_;                   // of the current request; "" until known
  // Reused by every request of the session, so a cached redirect allocates
  // little: the cache fills lookup_ in place, the response goes into out_.
  RedirectLookup lookup_;
  std::string location_;
  std::string out_;
  // An answer waiting for its visit's journal write (flush_visits): out_,
  // or this Beast response when set.
  std::shared_ptr<http::response<http::string_body>> pending_response_;
  bool close_after_journal_ = false;
  core::VisitRecord visit_;  // source set once per session, ip too unless trusted_peer_
  bool idle_ = false;
  bool keep_alive_ = true;
  bool head_ = false;
  bool linger_ = false;  // close through linger_close after the answer
  std::size_t lingered_bytes_ = 0;
  std::size_t header_bytes_ = 0;  // of the current request's header, consumed
  char header_previous_byte_ = 0;
  bool obs_fold_ = false;
};

}  // namespace

HttpServer::Impl::Impl(const OriginConfig& cfg, Api& a)
    : config(cfg),
      api(a),
      db_workers(cfg.database.pool_size + cfg.database.max_overflow),
      redirect_batches({cfg.redirect_batch_max_codes, cfg.redirect_batch_queries},
                       [this] {
                         net::post(db_workers, [this] {
                           redirect_batches.drain([this](std::vector<PendingLookup>& batch) {
                             load_redirect_batch(batch);
                           });
                         });
                       }),
      scanner(cfg.scanner) {
  // The server outlives every scrape: /metrics is only served by it.
  if (metrics::Registry* registry = api.metrics_registry()) {
    registry->add_collector([this](core::PromText& out) {
      const ScannerTarpit::Stats s = scanner.stats(Clock::now());
      out.single("origin_scanner_delayed_total", "counter",
                 "Unknown-code answers held by the scanner tarpit (SCANNER_DELAY_MS).", s.delayed);
      out.single("origin_scanner_episodes_total", "counter",
                 "Times a client went over SCANNER_THRESHOLD unknown codes per second.",
                 s.episodes);
      out.single("origin_scanner_tarpitted_clients", "gauge",
                 "Clients whose unknown-code answers are held now.",
                 static_cast<std::uint64_t>(s.tarpitted));
      out.single("origin_scanner_tracked_clients", "gauge",
                 "Clients the scanner tarpit keeps a rate for (at most its capacity).",
                 static_cast<std::uint64_t>(s.tracked));
      out.single("origin_scanner_tracked_clients_max", "gauge",
                 "Capacity of the scanner tarpit's table (SCANNER_TRACKED_CLIENTS).",
                 static_cast<std::uint64_t>(s.capacity));
      out.single("origin_scanner_evictions_total", "counter",
                 "Tracked clients pushed out of the full table by newcomers.", s.evictions);
    });
  }
  // Each connection is a descriptor: take the hard limit, and keep the cap
  // below it so that running out shows as a clear refusal, not failing
  // accepts and journal writes.
  max_connections = config.max_connections;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    if (limit.rlim_cur < limit.rlim_max) {
      rlimit raised = limit;
      raised.rlim_cur = limit.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    const std::size_t reserved = kReservedDescriptors + config.threads + config.database.pool_size +
                                 config.database.max_overflow;
    const std::size_t usable = limit.rlim_cur > reserved + 1 ? limit.rlim_cur - reserved : 1;
    if (limit.rlim_cur != RLIM_INFINITY && usable < max_connections) {
      log_event("warn", "MAX_CONNECTIONS lowered to fit the file descriptor limit",
                {{"max_connections", std::to_string(usable)},
                 {"configured", std::to_string(max_connections)},
                 {"nofile_limit", std::to_string(limit.rlim_cur)}});
      max_connections = usable;
    }
  }
  const auto address = net::ip::make_address(config.listen_host);
  const tcp::endpoint endpoint(address, config.listen_port);
  for (unsigned i = 0; i < config.threads; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->acceptor.emplace(worker->ioc.get_executor());
    worker->acceptor->open(endpoint.protocol());
    worker->acceptor->set_option(net::socket_base::reuse_address(true));
    worker->acceptor->set_option(reuse_port(true));
    worker->acceptor->bind(endpoint);
    worker->acceptor->listen(net::socket_base::max_listen_connections);
    worker->accept_backoff.emplace(worker->ioc);
    JournalOptions journal_options;
    journal_options.max_bytes = config.journal_max_bytes;
    journal_options.max_age = config.journal_max_age;
    if (config.journal_dir != kJournalOff) {
      worker->journal = std::make_unique<JournalWriter>(
          config.journal_dir, config.journal_instance + "-t" + std::to_string(i), journal_options);
    }
    worker->journal_timer.emplace(worker->ioc);
    if (metrics::Registry* registry = api.metrics_registry()) {
      worker->metrics = &registry->add_request_shard();
    }
    worker->request_id_state =
        (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
    workers_.push_back(std::move(worker));
  }
}

HttpServer::Impl::~Impl() {
  // Database jobs post back into the workers' io_contexts: finish them first.
  db_workers.join();
}

void HttpServer::Impl::load_redirect_batch(std::vector<PendingLookup>& batch) {
  // A single lookup's log lines carry its request id; a batch's name no
  // request (they say how many codes failed).
  std::optional<RequestLogScope> log_scope;
  if (batch.size() == 1) log_scope.emplace(batch.front().request->request_id);
  // A lookup that waited longer than a client would answers "unavailable"
  // without a query.
  const Clock::time_point now = Clock::now();
  std::vector<std::string> codes;
  std::vector<std::size_t> looked_up;  // index in `batch` of codes[i]
  codes.reserve(batch.size());
  looked_up.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (now - batch[i].enqueued > config.database.acquire_timeout) continue;
    codes.push_back(batch[i].code);
    looked_up.push_back(i);
  }
  std::vector<std::shared_ptr<const RedirectLookup>> results(batch.size());
  try {
    std::vector<RedirectLookup> found = api.load_redirects(codes);
    for (std::size_t i = 0; i < found.size(); ++i) {
      results[looked_up[i]] = std::make_shared<const RedirectLookup>(std::move(found[i]));
    }
  } catch (const std::exception& e) {
    // Every flight must end, or its requests would wait for ever.
    log_event("error", "redirect lookup failed", {{"error", first_line(e.what())}});
  }
  pending_db.fetch_sub(batch.size());
  const auto unavailable = std::make_shared<const RedirectLookup>();
  for (std::size_t i = 0; i < batch.size(); ++i) {
    // A callback that throws (it only posts the answer) must not keep the
    // flights after it from ending.
    try {
      redirect_flights.complete(batch[i].code, results[i] ? results[i] : unavailable);
    } catch (const std::exception& e) {
      log_event("error", "answering a redirect lookup failed", {{"error", e.what()}});
    }
  }
}

void HttpServer::Impl::do_accept(Worker& worker) {
  worker.acceptor->async_accept([this, &worker](beast::error_code ec, Socket socket) {
    if (worker.draining) return;
    if (ec) {
      // Out of file descriptors and the like: back off instead of spinning.
      log_event("warn", "accept failed", {{"error", ec.message()}});
      worker.accept_backoff->expires_after(std::chrono::milliseconds(100));
      worker.accept_backoff->async_wait([this, &worker](beast::error_code) { do_accept(worker); });
      return;
    }
    if (connections.load(std::memory_order_relaxed) >= max_connections) {
      refuse(socket);
    } else {
      std::make_shared<Session>(std::move(socket), worker, *this)->start();
    }
    do_accept(worker);
  });
}

// Over the cap: a short 503 written without waiting (it fits any socket
// buffer), then the socket is closed at once. One log line per
// kCapLogInterval at most, counting the connections refused since the last.
void HttpServer::Impl::refuse(Socket& socket) {
  static const std::string kAnswer = [] {
    const std::string body = core::error_json(
        "too_many_connections", "the server has too many open connections; retry shortly");
    return "HTTP/1.1 503 Service Unavailable\r\nServer: shortener-origin\r\n"
           "Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
           "Content-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  beast::error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(net::buffer(kAnswer), ec);
  socket.shutdown(tcp::socket::shutdown_send, ec);
  socket.close(ec);
  std::uint64_t refused = 0;
  {
    std::lock_guard<std::mutex> lock(cap_log_mu_);
    ++refused_since_log_;
    const auto now = Clock::now();
    if (now < next_cap_log_) return;
    next_cap_log_ = now + kCapLogInterval;
    refused = refused_since_log_;
    refused_since_log_ = 0;
  }
  log_event("warn", "connection cap reached; refusing new connections",
            {{"max_connections", std::to_string(max_connections)},
             {"open_connections", std::to_string(connections.load())},
             {"refused_since_last_log", std::to_string(refused)}});
}

bool HttpServer::Impl::journal_healthy() const {
  for (const auto& worker : workers_) {
    if (worker->journal && !worker->journal->healthy()) return false;
  }
  return true;
}

// Closes journal files by age without traffic, and retries a failing journal.
void HttpServer::Impl::schedule_journal_upkeep(Worker& worker) {
  worker.journal_timer->expires_after(std::chrono::seconds(1));
  worker.journal_timer->async_wait([this, &worker](beast::error_code ec) {
    if (ec || worker.draining || !worker.journal) return;
    worker.journal->rotate_if_idle();
    schedule_journal_upkeep(worker);
  });
}

void HttpServer::Impl::begin_drain(Worker& worker) {
  worker.draining = true;
  beast::error_code ec;
  worker.acceptor->close(ec);
  worker.accept_backoff->cancel();
  worker.journal_timer->cancel();
  // drain() may destroy sessions; iterate over a copy.
  std::vector<Session*> sessions(worker.sessions.begin(), worker.sessions.end());
  for (Session* s : sessions) {
    if (worker.sessions.count(s) != 0) s->drain();
  }
}

void HttpServer::Impl::run() {
  std::vector<std::thread> threads;
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    net::post(w->ioc, [this, w] {
      do_accept(*w);
      schedule_journal_upkeep(*w);
    });
    threads.emplace_back([this, w] {
      w->ioc.run();
      std::lock_guard<std::mutex> lock(mu_);
      ++finished_;
      changed_.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [this] { return stop_requested_ || finished_ == workers_.size(); });
    bool drained =
        changed_.wait_for(lock, kDrainDeadline, [this] { return finished_ == workers_.size(); });
    if (!drained) {
      log_event("warn", "drain deadline passed; closing remaining connections");
      for (auto& worker : workers_) worker->ioc.stop();
    }
  }
  for (auto& t : threads) t.join();
}

void HttpServer::Impl::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_requested_) return;
    stop_requested_ = true;
  }
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    net::post(w->ioc, [this, w] { begin_drain(*w); });
  }
  changed_.notify_all();
}

HttpServer::HttpServer(const OriginConfig& config, Api& api)
    : impl_(std::make_unique<Impl>(config, api)) {}

HttpServer::~HttpServer() = default;

void HttpServer::run() { impl_->run(); }

void HttpServer::stop() { impl_->stop(); }

bool HttpServer::journal_healthy() const { return impl_->journal_healthy(); }

}  // namespace origin
