// libFuzzer target: core::parse_visit_line, the parser of every journal and
// edge log line the ingester reads. Beyond "no crash, no sanitizer report":
// an accepted line formats (format_visit_line) into a line that parses back
// to the same record, and that line honours the format's invariants (one
// trailing '\n', no other raw newline, valid UTF-8).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "core/visit_record.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "visit_record property failed: %s\n", what);
    std::abort();
  }
}

bool same(const core::VisitRecord& a, const core::VisitRecord& b) {
  return a.time == b.time && a.code == b.code && a.ip == b.ip && a.user_agent == b.user_agent &&
         a.referrer == b.referrer && a.status == b.status && a.source == b.source;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  auto parsed = core::parse_visit_line(line);
  if (const auto* reason = std::get_if<std::string>(&parsed)) {
    check(!reason->empty(), "a refusal has a reason");
    return 0;
  }
  const core::VisitRecord& record = std::get<core::VisitRecord>(parsed);
  const std::string formatted = core::format_visit_line(record);
  check(!formatted.empty() && formatted.back() == '\n', "ends with a newline");
  check(formatted.find('\n') == formatted.size() - 1, "one line");
  check(core::to_valid_utf8(formatted) == formatted, "valid UTF-8");
  auto again = core::parse_visit_line(formatted);
  const auto* back = std::get_if<core::VisitRecord>(&again);
  check(back != nullptr, "a formatted line parses");
  check(same(*back, record), "format then parse gives the same record");
  return 0;
}
