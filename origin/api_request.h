// Parsing and validating JSON bodies of the link API. Pure: no I/O.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "core/time_format.h"
#include "core/url_policy.h"
#include "origin/link_store.h"

namespace origin {

// An expected client error: HTTP status, stable code, message, and the field
// at fault (empty when the request as a whole is wrong).
struct ApiError {
  int status = 400;
  std::string code;
  std::string message;
  std::string field;
};

// Body of POST /api/links: {url, alias?, expires_at?, status?, forward_query?}.
// The URL is normalized, the alias lowercased and checked; expires_at must lie
// after `now`. Errors: 400 malformed_json / wrong_type / unknown_field /
// duplicate_field, 422 required / invalid_url / invalid_alias /
// reserved_alias / invalid_status / invalid_expires_at.
std::variant<NewLink, ApiError> parse_create_request(std::string_view body,
                                                     const core::UrlPolicyOptions& url_policy,
                                                     core::TimePoint now);

// Body of PATCH /api/links/{code}: any of {url, status, forward_query,
// expires_at (null clears), disabled}. Same errors as create.
std::variant<LinkPatch, ApiError> parse_patch_request(std::string_view body,
                                                      const core::UrlPolicyOptions& url_policy,
                                                      core::TimePoint now);

}  // namespace origin
