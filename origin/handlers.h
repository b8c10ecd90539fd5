// The origin's HTTP API as pure request -> response functions. No sockets and
// no Beast types: the session layer (http_server.h) converts.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/url_policy.h"
#include "origin/access_counters.h"
#include "origin/authenticator.h"
#include "origin/link_cache.h"
#include "origin/link_store.h"
#include "origin/metrics.h"
#include "origin/origin_config.h"
#include "origin/stats.h"

namespace origin {

class DbHealth;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query as received
  std::string content_type;
  std::string accept;
  std::string body;
  std::string client_ip;   // the connection's peer
  std::string request_id;  // the X-Request-Id answered; log lines carry it
  // Credentials and proxy hops; never logged, never echoed.
  std::string authorization;  // Authorization
  std::string api_key;        // X-Api-Key
  std::string forwarded_for;  // every X-Forwarded-For field, joined with ", "
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

// What the store (or the cache) knows about a code, for answering redirects.
struct RedirectLookup {
  enum class Kind { kFound, kNotFound, kUnavailable };
  Kind kind = Kind::kUnavailable;
  Redirect redirect;  // when kFound
};

// Routes and answers requests. Thread-safe: handle() may run on many threads.
class Api {
 public:
  // `store` and `health` must outlive the Api; `health` may be null (always ready).
  Api(const OriginConfig& config, LinkStore& store, const DbHealth* health, LinkCache* cache);

  // True when answering `request` needs the database, so the caller runs
  // handle() where blocking is fine; false when handle() answers at once.
  bool needs_database(const HttpRequest& request) const;

  // Answers `request`. Never throws: store failures become 503, anything
  // unexpected 500 (and is logged).
  HttpResponse handle(const HttpRequest& request);

  // Redirects, split so that the session can answer cached codes on its io
  // thread and coalesce concurrent misses of one code into one load:
  //  - redirect_code: the lowercase code when the request is GET/HEAD /{code}.
  //  - cached_redirect: the cache's answer into *out, reusing the capacity of
  //    out->redirect.target (a session keeping one lookup does not allocate
  //    per hit); false on a miss, *out then unspecified. Never blocks.
  //  - load_redirect: reads the store (blocking) and fills the cache.
  //  - load_redirects: the same for several distinct codes in one store
  //    query; element i answers codes[i]. A store failure answers every
  //    code kUnavailable. Each code's cache token is taken before the query
  //    and its put made after it, as load_redirect does.
  //  - redirect_location: when `lookup` is an active link, true with its
  //    Location for a request to `target` in *location; false when
  //    render_redirect answers something else (404, 410, 503).
  //  - redirect_cache_control: the Cache-Control value of redirects.
  //  - render_redirect: the response for `request` given the lookup. Pure.
  // A session may answer a redirect itself from redirect_location and
  // redirect_cache_control: status lookup.redirect.status, headers Location
  // then Cache-Control, no body, visit journaled; that is what
  // render_redirect returns for an active link.
  std::optional<std::string> redirect_code(std::string_view method, std::string_view target) const;
  bool cached_redirect(std::string_view code, RedirectLookup* out, bool count = true) const;
  RedirectLookup load_redirect(const std::string& code);
  std::vector<RedirectLookup> load_redirects(const std::vector<std::string>& codes);
  bool redirect_location(std::string_view target, const RedirectLookup& lookup,
                         std::string* location) const;
  const std::string& redirect_cache_control() const { return cache_control_; }
  HttpResponse render_redirect(const HttpRequest& request, const std::string& code,
                               const RedirectLookup& lookup) const;

  // Codes whose redirect lookup reached the store, and the store queries
  // that looked them up (one per load_redirects call), for /metrics.
  std::uint64_t store_lookups() const { return store_lookups_.load(std::memory_order_relaxed); }
  std::uint64_t store_queries() const { return store_queries_.load(std::memory_order_relaxed); }

  // The registry whose rendering /metrics serves after the cache counters
  // (may be null: no more). Call before serving; it must outlive the Api.
  void set_metrics_registry(metrics::Registry* registry) { registry_ = registry; }
  metrics::Registry* metrics_registry() const { return registry_; }

  // The route label of a request to `target`, for metrics and logs.
  static metrics::Route metrics_route(std::string_view target);

  // Reports whether visits can be journaled (for /readyz). Call before
  // serving; `probe` must be thread-safe.
  void set_journal_probe(std::function<bool()> probe) { journal_ok_ = std::move(probe); }

  // Where GET /api/links/{code}/stats reads; without one that route is 404.
  void set_stats_store(LinkStatsStore* stats) { stats_ = stats; }

  // Verifies API keys. Call before serving; without one every presented key
  // is invalid, so only OPEN_SHORTEN creation works and nothing can be managed.
  void set_authenticator(Authenticator* authenticator) { authenticator_ = authenticator; }

  // Refusals (401, 403, 429) so far, for /metrics. Thread-safe.
  const AccessCounters& access_counters() const { return access_counters_; }

 private:
  HttpResponse dispatch(const HttpRequest& request);
  HttpResponse create_link(const HttpRequest& request);
  HttpResponse show_link(const core::Link& link);
  HttpResponse patch_link(const HttpRequest& request, const std::string& code);
  HttpResponse delete_link(const std::string& code);
  // The key `request` presents, checked (kInvalid for any key when no
  // authenticator is set). Throws StoreUnavailable.
  Authenticator::Result identify(const HttpRequest& request);
  // nullopt when `request` may manage `code`, whose link is then in *link;
  // otherwise the 401, 403 or 404 to answer.
  std::optional<HttpResponse> authorize_manage(const HttpRequest& request, const std::string& code,
                                               core::Link* link);
  // 401 for a request without a usable key (counted).
  HttpResponse unauthorized(Authenticator::Outcome outcome);
  HttpResponse link_response(int status, const core::Link& link) const;
  std::string metrics_text() const;

  const OriginConfig& config_;
  LinkStore& store_;
  const DbHealth* health_;
  LinkCache* cache_;  // may be null: no caching
  std::atomic<std::uint64_t> store_lookups_{0};
  std::atomic<std::uint64_t> store_queries_{0};
  core::UrlPolicyOptions url_policy_;
  std::string cache_control_;
  std::function<bool()> journal_ok_;
  metrics::Registry* registry_ = nullptr;
  LinkStatsStore* stats_ = nullptr;
  Authenticator* authenticator_ = nullptr;
  AccessCounters access_counters_;
};

}  // namespace origin
