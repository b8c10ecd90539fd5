// The origin's HTTP/1.1 server on Boost.Beast: one io_context per io thread,
// each with its own SO_REUSEPORT acceptor, so connections never hop threads
// and need no strand. Requests that need the database run on a separate
// worker pool, so a slow query never stalls an io thread.
#pragma once

#include <memory>

#include "origin/handlers.h"
#include "origin/origin_config.h"

namespace origin {

class HttpServer {
 public:
  // `api` must outlive the server. Binds the listen address; throws
  // std::system_error when it cannot.
  HttpServer(const OriginConfig& config, Api& api);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves until stop() has been called and in-flight requests finished (or
  // `drain_deadline` passed). Call from one thread.
  void run();

  // Begins a graceful stop: no new connections, idle keep-alive connections
  // closed, busy ones closed after their response. Thread-safe, idempotent.
  void stop();

  // False while any io thread cannot write its visit journal. Thread-safe.
  bool journal_healthy() const;

  class Impl;  // public only so the session type in the .cc can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace origin
