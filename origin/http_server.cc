#include "origin/http_server.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_set>
#include <vector>

#include "core/json.h"
#include "core/visit_record.h"
#include "origin/journal.h"
#include "origin/log.h"
#include "origin/metrics.h"
#include "origin/single_flight.h"

namespace origin {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using reuse_port = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr auto kDrainDeadline = std::chrono::seconds(9);

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
  // Concurrent misses of one code share one store lookup.
  SingleFlight<std::string, std::shared_ptr<const RedirectLookup>> redirect_flights;

 private:
  void do_accept(Worker& worker);
  void begin_drain(Worker& worker);
  void schedule_journal_upkeep(Worker& worker);

  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex mu_;  // guards stop_requested_, finished_
  std::condition_variable changed_;
  bool stop_requested_ = false;
  unsigned finished_ = 0;
};

namespace {

// The session's I/O objects use the io_context's own executor type rather
// than the polymorphic any_io_executor: every handler then dispatches
// without type-erased executor copies.
using Executor = net::io_context::executor_type;
using Socket = net::basic_stream_socket<tcp, Executor>;
using DeadlineTimer =
    net::basic_waitable_timer<std::chrono::steady_clock,
                              net::wait_traits<std::chrono::steady_clock>, Executor>;
using Clock = std::chrono::steady_clock;

std::string_view to_std(beast::string_view text) { return {text.data(), text.size()}; }

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket&& socket, Worker& worker, HttpServer::Impl& server)
      : socket_(std::move(socket)),
        deadline_timer_(socket_.get_executor()),
        worker_(worker),
        server_(server) {}

  ~Session() { worker_.sessions.erase(this); }

  void start() {
    worker_.sessions.insert(this);
    beast::error_code ec;
    auto endpoint = socket_.remote_endpoint(ec);
    if (!ec) client_ip_ = endpoint.address().to_string();
    socket_.set_option(tcp::no_delay(true), ec);
    // Lets send_redirect write without blocking and fall back to an
    // asynchronous write only when the socket buffer is full.
    socket_.non_blocking(true, ec);
    visit_.ip = core::anonymize_ip(client_ip_, server_.config.ip_mode);
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
    request_id_.clear();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.config.max_header_bytes));
    parser_->body_limit(server_.config.max_body_bytes);
    set_deadline(server_.config.read_timeout);
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  // curl and other clients send "Expect: 100-continue" with larger bodies and
  // wait (curl: 1 s) for an interim answer before sending the body.
  void on_header(beast::error_code ec) {
    if (ec || parser_->is_done()) return on_read(ec);
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
      return send_error(400, "bad_request", "malformed HTTP request");
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
        return send(server_.api.render_redirect(make_request(), *code, lookup_));
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
    for (auto [it, end] = req.equal_range("X-Forwarded-For"); it != end; ++it) {
      if (!request.forwarded_for.empty()) request.forwarded_for += ", ";
      request.forwarded_for.append(it->value().data(), it->value().size());
    }
    return request;
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
    if (mode == OriginConfig::AccessLog::kErrors && status < 500 &&
        elapsed < server_.config.access_log_slow) {
      return;
    }
    const http::request<http::string_body>& req = parser_->get();
    log_access(request_id_, to_std(req.method_string()), to_std(req.target()),
               metrics::route_name(route), status,
               std::chrono::duration<double, std::milli>(elapsed).count(),
               core::anonymize_ip(client_ip_, server_.config.ip_mode));
  }

  // A cache miss. The first session to miss a code loads it on a database
  // worker; sessions missing the same code meanwhile wait for that load, so a
  // launch hitting a fresh code with thousands of requests costs one query.
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
            self->send(self->server_.api.render_redirect(*shared_request, code, *result));
          });
        });
    if (worker_.metrics != nullptr) {
      leader ? worker_.metrics->flight_led() : worker_.metrics->flight_joined();
    }
    if (!leader) return;
    HttpServer::Impl& server = server_;
    if (server.pending_db.fetch_add(1) >= server.config.max_pending_db_requests) {
      server.pending_db.fetch_sub(1);
      server.redirect_flights.complete(code, std::make_shared<const RedirectLookup>());
      return;
    }
    auto enqueued = std::chrono::steady_clock::now();
    net::post(server.db_workers, [&server, code = std::move(code), enqueued, shared_request] {
      RequestLogScope log_scope(shared_request->request_id);
      auto result = std::make_shared<RedirectLookup>();
      // A load that waited longer than a client would answers "unavailable".
      if (std::chrono::steady_clock::now() - enqueued <= server.config.database.acquire_timeout) {
        *result = server.api.load_redirect(code);
      }
      server.pending_db.fetch_sub(1);
      server.redirect_flights.complete(code, result);
    });
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

  void send_error(int status, std::string_view code, std::string_view message) {
    keep_alive_ = false;
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
  void journal_visit(const std::string& code, int status) {
    const http::request<http::string_body>& req = parser_->get();
    visit_.time = core::now_ms();
    visit_.code = code;
    visit_.user_agent.assign(to_std(req[http::field::user_agent]));
    visit_.referrer.assign(to_std(req[http::field::referer]));
    visit_.status = status;
    if (worker_.journal->append(core::format_visit_line(visit_))) return;
    ++worker_.journal_failures;
    const auto now = std::chrono::steady_clock::now();
    if (now >= worker_.next_journal_warning) {
      worker_.next_journal_warning = now + std::chrono::seconds(5);
      log_event("error", "visit not journaled",
                {{"error", worker_.journal->last_error()},
                 {"failures_on_thread", std::to_string(worker_.journal_failures)}});
    }
  }

  void send(HttpResponse response) {
    RequestLogScope log_scope(request_id());
    response.headers.emplace_back("X-Request-Id", request_id_);
    if (!response.visit_code.empty() && worker_.journal)
      journal_visit(response.visit_code, response.status);
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
    set_deadline(server_.config.read_timeout);
    http::async_write(
        socket_, *res,
        [self = shared_from_this(), res, close_after](beast::error_code ec, std::size_t) {
          if (ec || close_after) return self->close();
          self->wait_for_request();
        });
  }

  // An active cached link: the bytes send() would have Beast write for
  // render_redirect's answer (status line, Server, Location, Cache-Control,
  // Connection: close when not keeping alive, Content-Length: 0; the same
  // for HEAD), serialized by hand into a buffer kept by the session.
  void send_redirect(const std::string& code, int status) {
    RequestLogScope log_scope(request_id());
    if (worker_.journal) journal_visit(code, status);
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
  Clock::time_point started_{};  // first byte of the current request
  std::string request_id_;       // of the current request; "" until known
  // Reused by every request of the session, so a cached redirect allocates
  // little: the cache fills lookup_ in place, the response goes into out_.
  RedirectLookup lookup_;
  std::string location_;
  std::string out_;
  core::VisitRecord visit_;  // ip and source set once per session
  bool idle_ = false;
  bool keep_alive_ = true;
  bool head_ = false;
};

}  // namespace

HttpServer::Impl::Impl(const OriginConfig& cfg, Api& a)
    : config(cfg), api(a), db_workers(cfg.database.pool_size + cfg.database.max_overflow) {
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
    std::make_shared<Session>(std::move(socket), worker, *this)->start();
    do_accept(worker);
  });
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
