// Structured logs: one JSON object per line on stderr, and the request id
// that ties a request's log lines together.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace origin {

// Writes {"time":...,"level":...,"msg":...,["request_id":...,]<fields>} as one
// line, atomically with respect to other log lines. The request id is the one
// of the RequestLogScope active on the calling thread, if any. Thread-safe.
void log_event(std::string_view level, std::string_view message,
               std::initializer_list<std::pair<std::string_view, std::string_view>> fields = {});

// The first line of `text` (libpq messages span several).
std::string first_line(std::string_view text);

// While alive, log_event on this thread adds "request_id": `id` (which must
// outlive the scope). Scopes nest; the previous id is restored on exit.
class RequestLogScope {
 public:
  explicit RequestLogScope(std::string_view id);
  ~RequestLogScope();
  RequestLogScope(const RequestLogScope&) = delete;
  RequestLogScope& operator=(const RequestLogScope&) = delete;

 private:
  std::string_view previous_;
};

// The id of the innermost RequestLogScope on this thread, or "".
std::string_view current_request_id();

// An incoming X-Request-Id is kept when it is 1-128 characters of
// [A-Za-z0-9._:-] (so it cannot forge log fields or headers); otherwise the
// origin makes one up.
inline constexpr std::size_t kMaxRequestIdBytes = 128;
bool is_valid_request_id(std::string_view id);

// Writes a new 16-hex-digit id into *out (reusing its capacity), advancing
// *state (splitmix64; seed each thread's state differently, e.g. from
// std::random_device). Ids are unique per state for 2^64 calls.
void generate_request_id(std::uint64_t* state, std::string* out);

// One access-log line: {"time","level":"info","msg":"request","request_id",
// "method","path","route","status","duration_ms","ip"}; `path` is cut at the
// query string and at 256 bytes. Thread-safe.
void log_access(std::string_view request_id, std::string_view method, std::string_view target,
                std::string_view route, int status, double duration_ms, std::string_view ip);

}  // namespace origin
