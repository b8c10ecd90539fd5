#include "origin/handlers.h"

#include <stdexcept>
#include <string_view>

#include "core/code.h"
#include "core/json.h"
#include "core/redirect.h"
#include "origin/api_request.h"
#include "origin/client_ip.h"
#include "origin/db_health.h"
#include "origin/log.h"

namespace origin {
namespace {

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kLinksPrefix = "/api/links/";

enum class RouteKind {
  kHealth,
  kReady,
  kMetrics,
  kCreate,
  kLinkItem,
  kLinkStats,
  kRedirect,
  kUnknown
};
constexpr std::string_view kStatsSuffix = "/stats";

struct Route {
  RouteKind kind = RouteKind::kUnknown;
  std::string code;  // lowercase, valid, for kLinkItem and kRedirect
};

Route route_of(std::string_view target) {
  Route route;
  std::string_view path = target.substr(0, target.find('?'));
  if (path == "/healthz") {
    route.kind = RouteKind::kHealth;
  } else if (path == "/readyz") {
    route.kind = RouteKind::kReady;
  } else if (path == "/metrics") {
    route.kind = RouteKind::kMetrics;
  } else if (path == "/api/links" || path == "/shorten") {
    route.kind = RouteKind::kCreate;
  } else if (path.substr(0, kLinksPrefix.size()) == kLinksPrefix) {
    std::string_view rest = path.substr(kLinksPrefix.size());
    RouteKind kind = RouteKind::kLinkItem;
    if (rest.size() > kStatsSuffix.size() &&
        rest.substr(rest.size() - kStatsSuffix.size()) == kStatsSuffix) {
      rest.remove_suffix(kStatsSuffix.size());
      kind = RouteKind::kLinkStats;
    }
    std::string code = core::lowercase_ascii(rest);
    if (core::is_valid_code(code)) {
      route.kind = kind;
      route.code = std::move(code);
    }
  } else if (path.size() > 1 && path[0] == '/') {
    std::string code = core::lowercase_ascii(path.substr(1));
    if (core::is_valid_code(code) && !core::is_reserved_word(code)) {
      route.kind = RouteKind::kRedirect;
      route.code = std::move(code);
    }
  }
  return route;
}

bool method_allowed(RouteKind kind, std::string_view method) {
  switch (kind) {
    case RouteKind::kHealth:
    case RouteKind::kReady:
    case RouteKind::kMetrics:
    case RouteKind::kRedirect:
    case RouteKind::kLinkStats:
      return method == "GET" || method == "HEAD";
    case RouteKind::kCreate:
      return method == "POST";
    case RouteKind::kLinkItem:
      return method == "GET" || method == "PATCH" || method == "DELETE";
    case RouteKind::kUnknown:
      return true;
  }
  return false;
}

const char* allow_header(RouteKind kind) {
  switch (kind) {
    case RouteKind::kCreate:
      return "POST";
    case RouteKind::kLinkItem:
      return "GET, PATCH, DELETE";
    default:
      return "GET, HEAD";
  }
}

HttpResponse json_response(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = std::string(kJson);
  r.body = std::move(body);
  return r;
}

HttpResponse error_response(int status, std::string_view code, std::string_view message,
                            std::string_view field = {}) {
  return json_response(status, core::error_json(code, message, field));
}

HttpResponse error_response(const ApiError& e) {
  return error_response(e.status, e.code, e.message, e.field);
}

HttpResponse unavailable() {
  HttpResponse r =
      error_response(503, "database_unavailable", "the database is unavailable; retry shortly");
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

bool is_json(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  return core::lowercase_ascii(media) == kJson;
}

std::string_view query_of(std::string_view target) {
  auto q = target.find('?');
  return q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
}

bool wants_html(std::string_view accept) {
  return accept.find("text/html") != std::string_view::npos;
}

// A person following a dead link on a phone gets a page, not JSON.
HttpResponse html_page(int status, std::string_view title, std::string_view text) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.body =
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>";
  r.body.append(title);
  r.body +=
      "</title></head><body style=\"font-family:sans-serif;max-width:32em;margin:3em auto;"
      "padding:0 1em\"><h1>";
  r.body.append(title);
  r.body += "</h1><p>";
  r.body.append(text);
  r.body += "</p></body></html>";
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

}  // namespace

Api::Api(const OriginConfig& config, LinkStore& store, const DbHealth* health, LinkCache* cache)
    : config_(config), store_(store), health_(health), cache_(cache) {
  url_policy_.own_hosts.push_back(config.public_host);
  cache_control_ = "private, max-age=" + std::to_string(config.redirect_max_age);
}

bool Api::needs_database(const HttpRequest& request) const {
  Route route = route_of(request.target);
  switch (route.kind) {
    case RouteKind::kCreate:
    case RouteKind::kLinkItem:
    case RouteKind::kLinkStats:
    case RouteKind::kRedirect:
      return method_allowed(route.kind, request.method);
    default:
      return false;
  }
}

metrics::Route Api::metrics_route(std::string_view target) {
  switch (route_of(target).kind) {
    case RouteKind::kHealth:
      return metrics::Route::kHealth;
    case RouteKind::kReady:
      return metrics::Route::kReady;
    case RouteKind::kMetrics:
      return metrics::Route::kMetrics;
    case RouteKind::kCreate:
      return metrics::Route::kCreate;
    case RouteKind::kLinkItem:
      return metrics::Route::kLink;
    case RouteKind::kLinkStats:
      return metrics::Route::kStats;
    case RouteKind::kRedirect:
      return metrics::Route::kRedirect;
    case RouteKind::kUnknown:
      break;
  }
  return metrics::Route::kOther;
}

HttpResponse Api::handle(const HttpRequest& request) {
  RequestLogScope log_scope(request.request_id);
  try {
    return dispatch(request);
  } catch (const StoreUnavailable& e) {
    log_event("warn", "database unavailable", {{"error", first_line(e.what())}});
    return unavailable();
  } catch (const std::exception& e) {
    log_event("error", "request failed",
              {{"error", first_line(e.what())}, {"target", request.target}});
    return error_response(500, "internal_error", "internal error");
  }
}

HttpResponse Api::dispatch(const HttpRequest& request) {
  Route route = route_of(request.target);
  if (!method_allowed(route.kind, request.method)) {
    HttpResponse r = error_response(405, "method_not_allowed",
                                    "method " + request.method + " is not allowed here");
    r.headers.emplace_back("Allow", allow_header(route.kind));
    return r;
  }
  switch (route.kind) {
    case RouteKind::kHealth:
      return json_response(200, R"({"status":"ok"})");
    case RouteKind::kReady: {
      const bool database = health_ == nullptr || health_->ready();
      const bool journal = !journal_ok_ || journal_ok_();
      if (database && journal) return json_response(200, R"({"status":"ready"})");
      return json_response(503, std::string(R"({"status":"unavailable","database":")") +
                                    (database ? "up" : "down") + R"(","journal":")" +
                                    (journal ? "ok" : "failing") + "\"}");
    }
    case RouteKind::kMetrics: {
      if (!config_.metrics_allow.contains(request.client_ip)) {
        return error_response(403, "forbidden",
                              "metrics are not served to this address (see METRICS_ALLOW)");
      }
      HttpResponse r;
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = metrics_text();
      return r;
    }
    case RouteKind::kUnknown:
      if (wants_html(request.accept)) {
        return html_page(404, "Link not found", "There is no short link at this address.");
      }
      return error_response(404, "not_found", "no such resource");
    default:
      break;
  }
  if (health_ != nullptr && !health_->ready()) return unavailable();
  switch (route.kind) {
    case RouteKind::kCreate:
      return create_link(request);
    case RouteKind::kRedirect:
      return render_redirect(request, route.code, load_redirect(route.code));
    case RouteKind::kLinkStats:
    case RouteKind::kLinkItem: {
      core::Link link;
      if (auto refused = authorize_manage(request, route.code, &link)) return std::move(*refused);
      if (route.kind == RouteKind::kLinkStats) {
        if (stats_ == nullptr) {
          return error_response(404, "not_found", "stats are not served here");
        }
        return handle_stats(*stats_, route.code, query_of(request.target), core::now_ms());
      }
      if (request.method == "GET") return show_link(link);
      if (request.method == "PATCH") return patch_link(request, route.code);
      return delete_link(route.code);
    }
    default:
      return error_response(404, "not_found", "no such resource");
  }
}

Authenticator::Result Api::identify(const HttpRequest& request) {
  std::optional<std::string> key = presented_key(request.authorization, request.api_key);
  if (authenticator_ == nullptr) {
    Authenticator::Result result;
    if (key) result.outcome = Authenticator::Outcome::kInvalid;
    return result;
  }
  return authenticator_->authenticate(key);
}

HttpResponse Api::unauthorized(Authenticator::Outcome outcome) {
  const bool missing = outcome == Authenticator::Outcome::kNoKey;
  (missing ? access_counters_.auth_missing : access_counters_.auth_invalid)
      .fetch_add(1, std::memory_order_relaxed);
  // Never quotes the key: it may be a real key sent to the wrong place.
  HttpResponse r = error_response(
      401, "unauthorized",
      missing ? "an API key is required: send Authorization: Bearer <key> or X-Api-Key: <key>"
              : "the API key is not valid (unknown or revoked)");
  r.headers.emplace_back("WWW-Authenticate",
                         missing ? R"(Bearer realm="shortener")"
                                 : R"(Bearer realm="shortener", error="invalid_token")");
  return r;
}

std::optional<HttpResponse> Api::authorize_manage(const HttpRequest& request,
                                                  const std::string& code, core::Link* link) {
  const Authenticator::Result caller = identify(request);
  if (caller.outcome != Authenticator::Outcome::kValid) return unauthorized(caller.outcome);
  std::optional<core::Link> found = store_.find(code);
  if (!found) return error_response(404, "not_found", "no link with this code");
  // 403 rather than 404: GET /{code} tells anyone whether a code exists, so
  // pretending it does not would hide nothing and only confuse its owner.
  if (!caller.identity.admin && found->owner_key_id != caller.identity.id) {
    access_counters_.auth_forbidden.fetch_add(1, std::memory_order_relaxed);
    return error_response(403, "forbidden",
                          "this API key did not create this link and is not an admin key");
  }
  *link = std::move(*found);
  return std::nullopt;
}

HttpResponse Api::create_link(const HttpRequest& request) {
  const Authenticator::Result caller = identify(request);
  if (caller.outcome == Authenticator::Outcome::kInvalid ||
      (caller.outcome == Authenticator::Outcome::kNoKey && !config_.open_shorten)) {
    return unauthorized(caller.outcome);
  }
  if (!is_json(request.content_type)) {
    return error_response(415, "unsupported_media_type", "Content-Type must be application/json");
  }
  auto parsed = parse_create_request(request.body, url_policy_, core::now_ms());
  if (auto* e = std::get_if<ApiError>(&parsed)) return error_response(*e);
  NewLink& new_link = std::get<NewLink>(parsed);
  const bool exempt = config_.rate_limit_exempt_admin &&
                      caller.outcome == Authenticator::Outcome::kValid && caller.identity.admin;
  if (config_.create_per_ip_per_min > 0 && !exempt) {
    std::optional<IpAddress> peer = parse_ip(request.client_ip);
    new_link.limits.push_back({peer ? rate_limit_subject(client_address(
                                          *peer, request.forwarded_for, config_.trusted_proxies))
                                    : "ip:" + request.client_ip,
                               config_.create_per_ip_per_min});
  }
  if (caller.outcome == Authenticator::Outcome::kValid) {
    new_link.owner_key_id = caller.identity.id;
    if (config_.create_per_key_per_min > 0 && !exempt) {
      new_link.limits.push_back(
          {"key:" + std::to_string(caller.identity.id), config_.create_per_key_per_min});
    }
  }
  auto created = store_.create(new_link);
  if (auto* limited = std::get_if<RateLimited>(&created)) {
    const bool by_key = limited->subject.rfind("key:", 0) == 0;
    (by_key ? access_counters_.rate_limited_key : access_counters_.rate_limited_ip)
        .fetch_add(1, std::memory_order_relaxed);
    const std::string seconds = std::to_string(limited->retry_after_s);
    HttpResponse r = error_response(429, "rate_limited",
                                    std::string("too many links created ") +
                                        (by_key ? "with this API key" : "from this address") +
                                        " in this minute (limit " +
                                        std::to_string(by_key ? config_.create_per_key_per_min
                                                              : config_.create_per_ip_per_min) +
                                        "); retry in " + seconds + " s");
    r.headers.emplace_back("Retry-After", seconds);
    return r;
  }
  if (auto* failure = std::get_if<CreateFailure>(&created)) {
    if (*failure == CreateFailure::kAliasTaken) {
      return error_response(409, "alias_taken", "this alias is already taken", "alias");
    }
    log_event("error", "no free code after retries; raise CODE_LENGTH");
    return error_response(503, "no_free_code", "could not allocate a code; retry");
  }
  const core::Link& link = std::get<core::Link>(created);
  // This instance may hold a negative entry for the new code; other instances
  // hear of it through NOTIFY.
  if (cache_ != nullptr) cache_->invalidate_negative(link.code);
  HttpResponse r = link_response(201, link);
  r.headers.emplace_back("Location", std::string(kLinksPrefix) + link.code);
  return r;
}

std::optional<std::string> Api::redirect_code(std::string_view method,
                                              std::string_view target) const {
  if (method != "GET" && method != "HEAD") return std::nullopt;
  Route route = route_of(target);
  if (route.kind != RouteKind::kRedirect) return std::nullopt;
  return std::move(route.code);
}

bool Api::cached_redirect(std::string_view code, RedirectLookup* out, bool count) const {
  if (cache_ == nullptr) return false;
  switch (cache_->lookup(code, core::now_ms(), &out->redirect, count)) {
    case LinkCache::Lookup::kFound:
      out->kind = RedirectLookup::Kind::kFound;
      return true;
    case LinkCache::Lookup::kNotFound:
      out->kind = RedirectLookup::Kind::kNotFound;
      return true;
    case LinkCache::Lookup::kMiss:
      break;
  }
  return false;
}

RedirectLookup Api::load_redirect(const std::string& code) {
  return std::move(load_redirects({code}).front());
}

std::vector<RedirectLookup> Api::load_redirects(const std::vector<std::string>& codes) {
  std::vector<RedirectLookup> lookups(codes.size());  // kUnavailable
  if (codes.empty()) return lookups;
  if (health_ != nullptr && !health_->ready()) return lookups;
  std::vector<LinkCache::LoadToken> tokens(cache_ != nullptr ? codes.size() : 0);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = cache_->begin_load(codes[i]);
  try {
    store_lookups_.fetch_add(codes.size(), std::memory_order_relaxed);
    store_queries_.fetch_add(1, std::memory_order_relaxed);
    std::vector<std::optional<core::Link>> links = store_.find_many(codes);
    if (links.size() != codes.size()) throw std::logic_error("find_many: result size mismatch");
    const core::TimePoint now = core::now_ms();
    for (std::size_t i = 0; i < codes.size(); ++i) {
      RedirectLookup& lookup = lookups[i];
      if (!links[i]) {
        lookup.kind = RedirectLookup::Kind::kNotFound;
        if (cache_ != nullptr) cache_->put_negative(codes[i], tokens[i], now);
      } else {
        lookup.redirect = redirect_of(*links[i]);
        lookup.kind = RedirectLookup::Kind::kFound;
        if (cache_ != nullptr) cache_->put_positive(codes[i], tokens[i], lookup.redirect);
      }
    }
  } catch (const StoreUnavailable& e) {
    log_event("warn", "database unavailable",
              {{"error", first_line(e.what())}, {"codes", std::to_string(codes.size())}});
  } catch (const std::exception& e) {
    log_event("error", "redirect lookup failed",
              {{"error", first_line(e.what())}, {"codes", std::to_string(codes.size())}});
    // Nothing half-answered: a code filled before the failure is unavailable too.
    for (RedirectLookup& lookup : lookups) lookup = RedirectLookup{};
  }
  return lookups;
}

bool Api::redirect_location(std::string_view target, const RedirectLookup& lookup,
                            std::string* location) const {
  if (lookup.kind != RedirectLookup::Kind::kFound ||
      state_at(lookup.redirect, core::now_ms()) != core::LinkState::kActive) {
    return false;
  }
  *location =
      core::build_location(lookup.redirect.target, query_of(target), lookup.redirect.forward_query);
  return true;
}

HttpResponse Api::render_redirect(const HttpRequest& request, const std::string& code,
                                  const RedirectLookup& lookup) const {
  HttpResponse r;
  switch (lookup.kind) {
    case RedirectLookup::Kind::kUnavailable:
      return unavailable();
    case RedirectLookup::Kind::kNotFound:
      r = wants_html(request.accept)
              ? html_page(404, "Link not found", "There is no short link at this address.")
              : error_response(404, "not_found", "no link with this code");
      break;
    case RedirectLookup::Kind::kFound: {
      std::string location;
      if (!redirect_location(request.target, lookup, &location)) {
        r = wants_html(request.accept)
                ? html_page(410, "Link no longer available",
                            "This short link has expired or was switched off by its owner.")
                : error_response(410, "gone", "this link has expired or was disabled");
        break;
      }
      r.status = lookup.redirect.status;
      r.headers.emplace_back("Location", std::move(location));
      r.headers.emplace_back("Cache-Control", cache_control_);
      break;
    }
  }
  r.visit_code = code;
  return r;
}

HttpResponse Api::show_link(const core::Link& link) { return link_response(200, link); }

HttpResponse Api::patch_link(const HttpRequest& request, const std::string& code) {
  if (!is_json(request.content_type)) {
    return error_response(415, "unsupported_media_type", "Content-Type must be application/json");
  }
  auto parsed = parse_patch_request(request.body, url_policy_, core::now_ms());
  if (auto* e = std::get_if<ApiError>(&parsed)) return error_response(*e);
  std::optional<core::Link> link = store_.update(code, std::get<LinkPatch>(parsed));
  if (!link) return error_response(404, "not_found", "no link with this code");
  // Read-your-writes on this instance without waiting for the NOTIFY.
  if (cache_ != nullptr) cache_->invalidate(code);
  return link_response(200, *link);
}

HttpResponse Api::delete_link(const std::string& code) {
  LinkPatch patch;
  patch.disabled = true;
  std::optional<core::Link> link = store_.update(code, patch);
  if (!link) return error_response(404, "not_found", "no link with this code");
  if (cache_ != nullptr) cache_->invalidate(code);
  return link_response(200, *link);
}

std::string Api::metrics_text() const {
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help, std::uint64_t value,
                       const char* labels = "") {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
    out += name;
    out += labels;
    out += ' ';
    out += std::to_string(value);
    out += '\n';
  };
  metric("origin_redirect_store_lookups_total", "counter",
         "Codes whose redirect lookup reached the database.", store_lookups());
  metric("origin_redirect_store_queries_total", "counter",
         "Database queries of redirect lookups (each looks up a batch of codes).", store_queries());
  if (cache_ != nullptr) {
    const LinkCache::Stats s = cache_->stats();
    metric("origin_link_cache_hits_total", "counter", "Redirects answered from the cache.", s.hits);
    metric("origin_link_cache_negative_hits_total", "counter",
           "Unknown codes answered from the negative cache.", s.negative_hits);
    metric("origin_link_cache_misses_total", "counter", "Cache lookups that missed.", s.misses);
    metric("origin_link_cache_evictions_total", "counter", "Entries evicted to stay under the cap.",
           s.evictions);
    metric("origin_link_cache_entries", "gauge", "Entries in the link cache.", s.entries);
    metric("origin_link_cache_bytes", "gauge", "Bytes charged to the link cache.", s.bytes);
    metric("origin_link_cache_max_bytes", "gauge", "Memory cap of the link cache.",
           cache_->max_bytes());
  }
  if (registry_ != nullptr) out += registry_->render();
  return out;
}

HttpResponse Api::link_response(int status, const core::Link& link) const {
  rapidjson::StringBuffer buffer;
  core::JsonWriter w(buffer);
  w.StartObject();
  core::write_field(w, "code", link.code);
  core::write_field(w, "short_url", config_.public_base_url + "/" + link.code);
  core::write_field(w, "target", link.target);
  core::write_field(w, "status", static_cast<long long>(link.status));
  core::write_field(w, "forward_query", link.forward_query);
  if (link.expires_at) {
    core::write_field(w, "expires_at", core::format_rfc3339_ms(*link.expires_at));
  } else {
    core::write_null_field(w, "expires_at");
  }
  core::write_field(w, "disabled", link.disabled);
  core::write_field(w, "created_at", core::format_rfc3339_ms(link.created_at));
  core::write_field(w, "updated_at", core::format_rfc3339_ms(link.updated_at));
  w.EndObject();
  return json_response(status, std::string(buffer.GetString(), buffer.GetSize()));
}

}  // namespace origin
