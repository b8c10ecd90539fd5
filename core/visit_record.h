// The visit record: one JSON object per line, written by the origin's journal
// and by nginx's access log for edge-served redirects, read by the ingester.
//
// Shape (keys in this order when the origin writes them):
//   {"time":"2026-11-27T20:46:40.123Z","code":"abc","ip":"203.0.113.0",
//    "ua":"...","ref":"...","status":307,"src":"origin"}\n
//
// nginx writes the same keys with
//   log_format visit escape=json '{"time":"$msec","code":"$visit_code",'
//       '"ip":"$remote_addr","ua":"$http_user_agent","ref":"$http_referer",'
//       '"status":$status,"src":"edge"}';
// so the `time` field has two accepted forms:
//   1. RFC 3339 with a zone, with or without a fraction (the origin always
//      writes UTC with exactly three fraction digits);
//   2. Unix seconds with an optional fraction of 1-9 digits, as nginx's $msec
//      writes it: "1795812400.123". Always UTC by definition.
// Fractions beyond milliseconds are truncated.
//
// Invariants of every line format_visit_line returns:
//   1. It is valid UTF-8 and valid JSON, ends with exactly one '\n', and holds
//      no other raw newline (control characters are \-escaped).
//   2. Text fields hold no NUL (PostgreSQL text cannot store it) and no
//      invalid UTF-8: both are replaced by U+FFFD before capping.
//   3. Text fields are capped in bytes at a character boundary (see k*Bytes),
//      so a line is at most about 12 KiB.
//
// Everything here is pure and thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/time_format.h"

namespace core {

inline constexpr std::size_t kMaxUserAgentBytes = 512;
inline constexpr std::size_t kMaxReferrerBytes = 1024;
inline constexpr std::size_t kMaxIpBytes = 64;
// Longer lines are refused by parse_visit_line. nginx's default header buffers
// (8 KiB per header line) bound an edge line well below this even when every
// byte of the user agent and referrer is escaped as \u00XX.
inline constexpr std::size_t kMaxVisitLineBytes = 128 * 1024;

inline constexpr std::string_view kSourceOrigin = "origin";
inline constexpr std::string_view kSourceEdge = "edge";

struct VisitRecord {
  TimePoint time;          // UTC, millisecond precision
  std::string code;        // lowercase, [a-z0-9_-]{1,64}
  std::string ip;          // as the writer chose to store it (see anonymize_ip)
  std::string user_agent;  // "" when the client sent none
  std::string referrer;    // "" when the client sent none
  int status = 0;          // HTTP status sent to the client
  std::string source;      // kSourceOrigin or kSourceEdge
};

// One line, terminated by '\n', satisfying the invariants above. Text fields
// are repaired and capped, never refused: logging a redirect cannot fail here.
// The caller passes a valid lowercase code and a known source; the line is
// written anyway if not, and parse_visit_line will refuse it.
std::string format_visit_line(const VisitRecord& record);

// Strict parse of one line (with or without its trailing '\n'). Returns the
// record, or a one-line reason naming the rule that failed (no user data is
// quoted in it). Requirements:
//   - at most kMaxVisitLineBytes, valid UTF-8 (nginx does not validate, so a
//     raw invalid byte in a header ends here as "invalid UTF-8 at byte N");
//   - one JSON object; escapes must decode to valid UTF-8 (no lone surrogate);
//   - "code", "time", "src" strings and "status" an integer, all required;
//     "ip", "ua", "ref" strings, optional (missing means "");
//   - code matches [a-z0-9_-]{1,64} after ASCII lowercasing (stored lowercase);
//   - time in one of the two forms above, year 1970-9999;
//   - status 100-599; src "origin" or "edge";
//   - no known field twice. Unknown fields are ignored, so an edge may log
//     more than the record needs.
// Text fields get NUL replaced by U+FFFD and are capped like format does.
std::variant<VisitRecord, std::string> parse_visit_line(std::string_view line);

// `text` with every invalid UTF-8 sequence replaced by U+FFFD (one per
// maximal invalid subpart, as WHATWG decoders do). Valid input is unchanged.
std::string to_valid_utf8(std::string_view text);

// The longest prefix of valid UTF-8 `text` of at most `max_bytes` bytes that
// ends at a character boundary.
std::string_view cap_utf8(std::string_view text, std::size_t max_bytes);

enum class IpMode {
  kAnonymized,  // IPv4: last octet zeroed; IPv6: last 80 bits zeroed
  kFull,        // kept as given
  kNone,        // not stored
};

// "anonymized", "full" or "none" (VISIT_IP_MODE); nullopt otherwise.
std::optional<IpMode> parse_ip_mode(std::string_view text);

// The client address as `mode` says to store it. kAnonymized parses with
// inet_pton and writes the canonical inet_ntop form ("2001:db8:abcd::"); an
// IPv4-mapped IPv6 address (::ffff:a.b.c.d) is anonymized as IPv4 and stays
// mapped. Anything inet_pton refuses (brackets, ports, zone ids, "unix:")
// gives "". kFull returns `ip` unchanged; kNone returns "".
std::string anonymize_ip(std::string_view ip, IpMode mode);

// True when the user agent is not a person clicking in a browser or an app:
// crawlers and search engines, link-preview fetchers (chat apps, social
// networks), headless browsers, and scripted HTTP clients (curl, wget,
// language HTTP libraries). Case-insensitive substring match against a fixed
// list (see the .cc); "bot" does not match inside "cubot" (a phone brand).
// An empty or blank user agent counts as a bot: every browser sends one.
bool is_bot_user_agent(std::string_view user_agent);

}  // namespace core
