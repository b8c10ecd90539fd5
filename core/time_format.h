// RFC 3339 timestamps as the API and the visit records write them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace core {

using Clock = std::chrono::system_clock;
using TimePoint = std::chrono::time_point<Clock, std::chrono::milliseconds>;

// Milliseconds since the Unix epoch <-> TimePoint.
TimePoint from_unix_ms(std::int64_t ms);
std::int64_t to_unix_ms(TimePoint tp);
TimePoint now_ms();

// "2026-11-27T20:46:40.123Z": UTC, always with milliseconds.
std::string format_rfc3339_ms(TimePoint tp);

// Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" (RFC 3339; 'T'/'Z' in
// either case). Fractions beyond milliseconds are truncated. Returns nullopt
// for anything else, including out-of-range fields and years outside 1970-9999.
std::optional<TimePoint> parse_rfc3339(std::string_view text);

}  // namespace core
