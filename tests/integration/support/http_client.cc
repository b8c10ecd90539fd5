#include "integration/support/http_client.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <regex>
#include <utility>

namespace integration {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::uint64_t kMaxResponseBody = 64 * 1024 * 1024;

beast::string_view to_beast(std::string_view text) { return {text.data(), text.size()}; }

std::string lowercase(beast::string_view text) {
  std::string out(text.data(), text.size());
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Errors meaning the server closed a kept-alive connection before reading our
// request: the request was not processed and may be sent again.
bool is_closed_by_peer(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted;
}

}  // namespace

std::string Response::header(const std::string& lowercase_name) const {
  auto it = headers.find(lowercase_name);
  return it == headers.end() ? std::string() : it->second;
}

std::string Response::summary() const {
  return "HTTP " + std::to_string(status) + " " + body.substr(0, 300);
}

struct HttpClient::Impl {
  Impl(std::string h, uint16_t p, std::chrono::milliseconds t)
      : host(std::move(h)), port(p), timeout(t) {}

  // Runs one asynchronous operation to completion on `ioc`; the tcp_stream's
  // expiry turns a stalled operation into beast::error::timeout.
  template <typename Start>
  error_code run(Start start) {
    error_code result = net::error::would_block;
    ioc.restart();
    start([&result](error_code ec, std::size_t = 0) { result = ec; });
    ioc.run();
    return result;
  }

  void connect() {
    error_code ec;
    tcp::resolver resolver(ioc);
    auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (ec) throw TransportError("resolve " + host + ": " + ec.message());
    stream.expires_after(timeout);
    ec = run([&](auto handler) {
      stream.async_connect(endpoints,
                           [handler](error_code e, const tcp::endpoint&) mutable { handler(e); });
    });
    if (ec) {
      stream.close();
      throw TransportError("connect " + host + ":" + std::to_string(port) + ": " + ec.message());
    }
    stream.socket().set_option(tcp::no_delay(true), ec);
    buffer.consume(buffer.size());
    connected = true;
  }

  void disconnect() {
    error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.close();
    buffer.consume(buffer.size());
    connected = false;
  }

  std::string host;
  uint16_t port;
  std::chrono::milliseconds timeout;
  net::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  bool connected = false;
  Headers default_headers;
  std::size_t resent_after_close = 0;
};

HttpClient::HttpClient(std::string host, uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(std::move(host), port, timeout)) {}

HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

void HttpClient::set_timeout(std::chrono::milliseconds timeout) { impl_->timeout = timeout; }

void HttpClient::set_default_headers(Headers headers) {
  impl_->default_headers = std::move(headers);
}

std::size_t HttpClient::resent_after_close() const { return impl_->resent_after_close; }

void HttpClient::close() {
  if (impl_->connected) impl_->disconnect();
}

Response HttpClient::request(std::string_view method, std::string_view target,
                             std::string_view body, const Headers& headers) {
  Impl& c = *impl_;
  http::request<http::string_body> req;
  const http::verb verb = http::string_to_verb(to_beast(method));
  if (verb == http::verb::unknown) {
    req.method_string(to_beast(method));
  } else {
    req.method(verb);
  }
  req.target(to_beast(target));
  req.version(11);
  req.set(http::field::host, c.host + ":" + std::to_string(c.port));
  req.set(http::field::user_agent, "shortener-integration-tests");
  for (const auto& [name, value] : c.default_headers) req.set(name, value);
  for (const auto& [name, value] : headers) req.set(name, value);
  req.body() = std::string(body);
  req.prepare_payload();
  const bool is_head = verb == http::verb::head;

  for (int attempt = 0;; ++attempt) {
    const bool reused = c.connected;
    if (!c.connected) c.connect();
    c.stream.expires_after(c.timeout);

    error_code ec = c.run([&](auto handler) { http::async_write(c.stream, req, handler); });
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBody);
    parser.skip(is_head);
    if (!ec) {
      ec = c.run([&](auto handler) { http::async_read(c.stream, c.buffer, parser, handler); });
    }
    if (!ec) {
      auto& res = parser.get();
      Response out;
      out.status = static_cast<int>(res.result_int());
      for (const auto& field : res) {
        std::string name = lowercase(field.name_string());
        auto [it, inserted] =
            out.headers.emplace(name, std::string(field.value().data(), field.value().size()));
        if (!inserted) it->second += ", " + std::string(field.value().data(), field.value().size());
      }
      out.body = std::move(res.body());
      if (!res.keep_alive()) c.disconnect();
      return out;
    }
    const bool got_response_bytes = parser.got_some();
    c.disconnect();
    if (attempt == 0 && reused && !got_response_bytes && is_closed_by_peer(ec)) {
      ++c.resent_after_close;
      continue;
    }
    throw TransportError(std::string(method) + " " + std::string(target) + " on " + c.host + ":" +
                         std::to_string(c.port) + ": " + ec.message());
  }
}

Response HttpClient::get(std::string_view target, const Headers& headers) {
  return request("GET", target, "", headers);
}

Response HttpClient::post_json(std::string_view target, std::string_view json) {
  return request("POST", target, json, {{"Content-Type", "application/json"}});
}

Response HttpClient::patch_json(std::string_view target, std::string_view json) {
  return request("PATCH", target, json, {{"Content-Type", "application/json"}});
}

JsonBody::JsonBody(const std::string& text) { document_.Parse(text.c_str(), text.size()); }

bool JsonBody::is_object() const { return !document_.HasParseError() && document_.IsObject(); }

const rapidjson::Value* JsonBody::find(std::string_view path) const {
  if (!is_object()) return nullptr;
  const rapidjson::Value* node = &document_;
  while (true) {
    const std::size_t dot = path.find('.');
    const std::string_view name = path.substr(0, dot);
    if (!node->IsObject()) return nullptr;
    auto it = node->FindMember(
        rapidjson::Value(name.data(), static_cast<rapidjson::SizeType>(name.size())));
    if (it == node->MemberEnd()) return nullptr;
    node = &it->value;
    if (dot == std::string_view::npos) return node;
    path.remove_prefix(dot + 1);
  }
}

bool JsonBody::has(std::string_view path) const { return find(path) != nullptr; }

bool JsonBody::is_null(std::string_view path) const {
  const rapidjson::Value* v = find(path);
  return v != nullptr && v->IsNull();
}

std::optional<std::string> JsonBody::str(std::string_view path) const {
  const rapidjson::Value* v = find(path);
  if (v == nullptr || !v->IsString()) return std::nullopt;
  return std::string(v->GetString(), v->GetStringLength());
}

std::optional<int64_t> JsonBody::integer(std::string_view path) const {
  const rapidjson::Value* v = find(path);
  if (v == nullptr || !v->IsInt64()) return std::nullopt;
  return v->GetInt64();
}

std::optional<bool> JsonBody::boolean(std::string_view path) const {
  const rapidjson::Value* v = find(path);
  if (v == nullptr || !v->IsBool()) return std::nullopt;
  return v->GetBool();
}

::testing::AssertionResult IsApiError(const Response& response, int status, std::string_view code,
                                      std::optional<std::string_view> field) {
  const JsonBody body(response.body);
  auto failure = [&](const std::string& what) {
    return ::testing::AssertionFailure() << what << "; got " << response.summary();
  };
  if (response.status != status) {
    return failure("expected status " + std::to_string(status));
  }
  if (!body.is_object()) return failure("expected a JSON object body");
  if (body.str("error.code") != std::string(code)) {
    return failure("expected error.code \"" + std::string(code) + "\"");
  }
  if (!body.str("error.message").has_value()) return failure("expected a string error.message");
  if (field.has_value()) {
    if (body.str("error.field") != std::string(*field)) {
      return failure("expected error.field \"" + std::string(*field) + "\"");
    }
  } else if (body.has("error.field")) {
    return failure("expected no error.field");
  }
  return ::testing::AssertionSuccess();
}

long long metric(HttpClient& client, const std::string& name) {
  const Response r = client.get("/metrics");
  if (r.status != 200) return -1;
  std::smatch m;
  const std::regex line("(^|\n)" + name + " ([0-9]+)\n");
  if (!std::regex_search(r.body, m, line)) return -1;
  return std::stoll(m[2].str());
}

}  // namespace integration
