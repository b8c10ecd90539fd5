// The origin's HTTP API as pure request -> response functions. No sockets and
// no Beast types: the session layer (http_server.h) converts.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/url_policy.h"
#include "origin/link_store.h"
#include "origin/origin_config.h"

namespace origin {

class DbHealth;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query as received
  std::string content_type;
  std::string accept;
  std::string body;
  std::string client_ip;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type/Length
  std::string content_type;                                  // empty: no body
  std::string body;
  // Set on answers to GET/HEAD /{code} (redirect, 404, 410): the session
  // journals a visit for this code before it sends the response.
  std::string visit_code;
};

// Routes and answers requests. Thread-safe: handle() may run on many threads.
class Api {
 public:
  // `store` and `health` must outlive the Api; `health` may be null (always ready).
  Api(const OriginConfig& config, LinkStore& store, const DbHealth* health);

  // True when answering `request` needs the database, so the caller runs
  // handle() where blocking is fine; false when handle() answers at once.
  bool needs_database(const HttpRequest& request) const;

  // Answers `request`. Never throws: store failures become 503, anything
  // unexpected 500 (and is logged).
  HttpResponse handle(const HttpRequest& request);

  // Reports whether visits can be journaled (for /readyz). Call before
  // serving; `probe` must be thread-safe.
  void set_journal_probe(std::function<bool()> probe) { journal_ok_ = std::move(probe); }

 private:
  HttpResponse dispatch(const HttpRequest& request);
  HttpResponse create_link(const HttpRequest& request);
  HttpResponse redirect(const HttpRequest& request, const std::string& code,
                        std::string_view query);
  HttpResponse show_link(const std::string& code);
  HttpResponse patch_link(const HttpRequest& request, const std::string& code);
  HttpResponse delete_link(const std::string& code);
  HttpResponse link_response(int status, const core::Link& link) const;

  const OriginConfig& config_;
  LinkStore& store_;
  const DbHealth* health_;
  core::UrlPolicyOptions url_policy_;
  std::string cache_control_;
  std::function<bool()> journal_ok_;
};

}  // namespace origin
