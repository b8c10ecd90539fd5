// libFuzzer target: the JSON bodies of POST /api/links and PATCH
// /api/links/{code} (origin/api_request). Beyond "no crash, no sanitizer
// report" (deep nesting included: the parser is iterative): an accepted
// create carries a target the URL policy accepts unchanged and a valid code
// or none; an error has a status of 400 or 422 and a code.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "core/code.h"
#include "core/url_policy.h"
#include "origin/api_request.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "api_request property failed: %s\n", what);
    std::abort();
  }
}

void check_error(const origin::ApiError& e) {
  check(e.status == 400 || e.status == 422, "error status");
  check(!e.code.empty() && !e.message.empty(), "error code and message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  core::UrlPolicyOptions policy;
  policy.own_hosts.push_back("sho.example.test");
  // A fixed "now" keeps runs reproducible.
  const core::TimePoint now = core::from_unix_ms(1795812400123);
  auto created = origin::parse_create_request(body, policy, now);
  if (const auto* link = std::get_if<origin::NewLink>(&created)) {
    auto again = core::normalize_target(link->target, policy);
    const auto* target = std::get_if<std::string>(&again);
    check(target != nullptr && *target == link->target, "target is normalized");
    check(!link->alias || core::is_valid_code(*link->alias), "alias is a valid code");
  } else {
    check_error(std::get<origin::ApiError>(created));
  }
  auto patched = origin::parse_patch_request(body, policy, now);
  if (const auto* e = std::get_if<origin::ApiError>(&patched)) check_error(*e);
  return 0;
}
