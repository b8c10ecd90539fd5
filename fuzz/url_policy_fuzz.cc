// libFuzzer target: core::normalize_target and core::normalize_query on any
// bytes. Properties beyond "no crash, no sanitizer report":
//   1. an accepted target is at most max_length bytes of printable ASCII
//      without the bytes the header promises never to emit;
//   2. normalizing is idempotent: an accepted target normalizes to itself;
//   3. normalize_query never emits a byte outside printable ASCII, nor a
//      space or '#'.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "core/url_policy.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "url_policy property failed: %s\n", what);
    std::abort();
  }
}

bool printable_ascii(char c) { return c > 0x20 && c < 0x7f; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  core::UrlPolicyOptions options;
  options.own_hosts.push_back("sho.example.test");
  auto result = core::normalize_target(input, options);
  if (const auto* target = std::get_if<std::string>(&result)) {
    check(!target->empty() && target->size() <= options.max_length, "length");
    for (const char c : *target) {
      check(printable_ascii(c), "printable ASCII");
      check(std::string_view("\"\\<>^`{|}").find(c) == std::string_view::npos, "forbidden byte");
    }
    auto again = core::normalize_target(*target, options);
    const auto* second = std::get_if<std::string>(&again);
    check(second != nullptr, "a normalized target is accepted again");
    check(*second == *target, "normalizing is idempotent");
  } else {
    check(!std::get<core::UrlRejection>(result).code.empty(), "rejection has a code");
  }
  const std::string query = core::normalize_query(input);
  for (const char c : query) {
    check(printable_ascii(c) && c != '#', "query bytes");
  }
  return 0;
}
