// A small synchronous HTTP/1.1 client for integration tests, and helpers to
// read the JSON bodies the origin answers with.
#pragma once

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace integration {

// Header fields of a request (names as written) or a response (names lowercased;
// repeated fields joined with ", ").
using Headers = std::map<std::string, std::string>;

struct Response {
  int status = 0;
  Headers headers;
  std::string body;

  // Value of the header `lowercase_name`, or "" when absent.
  std::string header(const std::string& lowercase_name) const;
  // "HTTP <status> <first 300 bytes of body>", for failure messages.
  std::string summary() const;
};

// The exchange failed below HTTP: connection refused, timeout, connection
// closed without a response.
class TransportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One keep-alive connection to host:port. Not thread-safe: give each thread its
// own client. Movable, not copyable.
class HttpClient {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{5000};

  // Does not connect yet; the first request does. `host` is an IP address or a
  // name resolved at connect time.
  HttpClient(std::string host, uint16_t port, std::chrono::milliseconds timeout = kDefaultTimeout);
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  // Sends one request and reads its response, all within the timeout (connect
  // included). Adds Host and, when needed, Content-Length; `headers` are sent as
  // given. If a reused connection turns out to be closed by the server before
  // any response byte arrived, reconnects and sends once more. A response to
  // HEAD has an empty body. Throws TransportError on any other failure; the
  // connection is then closed and the next request opens a new one.
  Response request(std::string_view method, std::string_view target, std::string_view body = "",
                   const Headers& headers = {});

  Response get(std::string_view target, const Headers& headers = {});
  // POST/PATCH with Content-Type: application/json.
  Response post_json(std::string_view target, std::string_view json);
  Response patch_json(std::string_view target, std::string_view json);

  // How many requests were sent a second time because a reused connection was
  // closed by the server before any response byte arrived (see request()).
  std::size_t resent_after_close() const;

  // Applies to requests started afterwards.
  void set_timeout(std::chrono::milliseconds timeout);
  // Header fields sent with every later request, unless the request's own
  // `headers` name the same field (which then wins).
  void set_default_headers(Headers headers);
  // Closes the connection if open; the next request reconnects.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Read-only view of a JSON document for assertions. Paths are member names
// joined by '.', e.g. "error.code". Accessors return nullopt when the path is
// missing or holds another JSON type, so `EXPECT_EQ(body.str("code"), "abc")`
// fails with a readable message in both cases.
class JsonBody {
 public:
  explicit JsonBody(const std::string& text);

  // True when the text parsed and the root is an object.
  bool is_object() const;
  bool has(std::string_view path) const;
  bool is_null(std::string_view path) const;
  std::optional<std::string> str(std::string_view path) const;
  std::optional<int64_t> integer(std::string_view path) const;
  std::optional<bool> boolean(std::string_view path) const;
  const rapidjson::Document& document() const { return document_; }

 private:
  const rapidjson::Value* find(std::string_view path) const;

  rapidjson::Document document_;
};

// Success when `response` has `status`, a JSON body whose error.code is `code`,
// and an error.field equal to `field` (nullopt: the body has no error.field).
::testing::AssertionResult IsApiError(const Response& response, int status, std::string_view code,
                                      std::optional<std::string_view> field);

// The value of an unlabelled counter or gauge in GET /metrics, or -1 when the
// scrape fails or the metric is absent.
long long metric(HttpClient& client, const std::string& name);

}  // namespace integration
