#include "origin/api_request.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <set>

#include "core/code.h"
#include "core/link.h"

namespace origin {
namespace {

using rapidjson::Value;

ApiError error(int status, std::string code, std::string message, std::string field = {}) {
  return ApiError{status, std::move(code), std::move(message), std::move(field)};
}

ApiError wrong_type(const std::string& field, const char* expected) {
  return error(400, "wrong_type", "'" + field + "' must be " + expected, field);
}

// Parses `body` into an object, checking for duplicate and unknown keys.
std::variant<rapidjson::Document, ApiError> parse_object(std::string_view body,
                                                         const std::set<std::string>& allowed) {
  rapidjson::Document doc;
  // Iterative parsing: deep nesting cannot exhaust the stack.
  doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(body.data(),
                                                                                    body.size());
  if (doc.HasParseError()) {
    return error(400, "malformed_json",
                 std::string("request body is not valid JSON: ") +
                     rapidjson::GetParseError_En(doc.GetParseError()) + " at offset " +
                     std::to_string(doc.GetErrorOffset()));
  }
  if (!doc.IsObject()) return error(400, "malformed_json", "request body must be a JSON object");
  std::set<std::string> seen;
  for (const auto& member : doc.GetObject()) {
    std::string name(member.name.GetString(), member.name.GetStringLength());
    if (!seen.insert(name).second) {
      return error(400, "duplicate_field", "field '" + name + "' appears more than once", name);
    }
    if (allowed.count(name) == 0) {
      std::string shown = name.size() > 64 ? name.substr(0, 64) + "..." : name;
      return error(400, "unknown_field", "unknown field '" + shown + "'", shown);
    }
  }
  return doc;
}

std::variant<std::string, ApiError> read_url(const Value& v,
                                             const core::UrlPolicyOptions& url_policy) {
  if (!v.IsString()) return wrong_type("url", "a string");
  auto result =
      core::normalize_target(std::string_view(v.GetString(), v.GetStringLength()), url_policy);
  if (auto* rejection = std::get_if<core::UrlRejection>(&result)) {
    return error(422, "invalid_url", rejection->message, "url");
  }
  return std::get<std::string>(std::move(result));
}

std::variant<int, ApiError> read_status(const Value& v) {
  if (!v.IsInt64()) {
    return v.IsNumber()
               ? error(422, "invalid_status", "'status' must be 301, 302, 307 or 308", "status")
               : wrong_type("status", "an integer");
  }
  const long long status = v.GetInt64();
  if (!core::is_redirect_status(status)) {
    return error(422, "invalid_status", "'status' must be 301, 302, 307 or 308", "status");
  }
  return static_cast<int>(status);
}

// expires_at: an RFC 3339 string after `now`, or null when `allow_null`.
std::variant<std::optional<core::TimePoint>, ApiError> read_expiry(const Value& v,
                                                                   core::TimePoint now) {
  if (v.IsNull()) return std::optional<core::TimePoint>();
  if (!v.IsString()) return wrong_type("expires_at", "an RFC 3339 timestamp string or null");
  auto parsed = core::parse_rfc3339(std::string_view(v.GetString(), v.GetStringLength()));
  if (!parsed) {
    return error(422, "invalid_expires_at",
                 "'expires_at' must be an RFC 3339 timestamp such as 2030-01-31T12:00:00Z",
                 "expires_at");
  }
  if (*parsed <= now) {
    return error(422, "invalid_expires_at", "'expires_at' must be in the future", "expires_at");
  }
  return std::optional<core::TimePoint>(*parsed);
}

std::variant<bool, ApiError> read_bool(const Value& v, const std::string& field) {
  if (!v.IsBool()) return wrong_type(field, "true or false");
  return v.GetBool();
}

}  // namespace

std::variant<NewLink, ApiError> parse_create_request(std::string_view body,
                                                     const core::UrlPolicyOptions& url_policy,
                                                     core::TimePoint now) {
  auto parsed = parse_object(body, {"url", "alias", "expires_at", "status", "forward_query"});
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  const rapidjson::Document& doc = std::get<rapidjson::Document>(parsed);

  NewLink link;
  // Type errors first (400), then value errors (422), so a client fixing one
  // class of mistake sees the next consistently.
  auto url_it = doc.FindMember("url");
  if (url_it == doc.MemberEnd() || url_it->value.IsNull()) {
    return error(422, "required", "'url' is required", "url");
  }
  if (!url_it->value.IsString()) return wrong_type("url", "a string");
  if (auto it = doc.FindMember("alias"); it != doc.MemberEnd() && !it->value.IsNull()) {
    if (!it->value.IsString()) return wrong_type("alias", "a string");
  }

  auto url = read_url(url_it->value, url_policy);
  if (auto* e = std::get_if<ApiError>(&url)) return *e;
  link.target = std::get<std::string>(std::move(url));

  if (auto it = doc.FindMember("alias"); it != doc.MemberEnd() && !it->value.IsNull()) {
    std::string alias =
        core::lowercase_ascii(std::string_view(it->value.GetString(), it->value.GetStringLength()));
    switch (core::check_alias(alias)) {
      case core::AliasCheck::kInvalid:
        return error(422, "invalid_alias",
                     "'alias' must be 1-64 characters from a-z, 0-9, '_' and '-'", "alias");
      case core::AliasCheck::kReserved:
        return error(422, "reserved_alias", "'alias' is a word the service uses itself", "alias");
      case core::AliasCheck::kOk:
        break;
    }
    link.alias = std::move(alias);
  }
  if (auto it = doc.FindMember("status"); it != doc.MemberEnd()) {
    auto status = read_status(it->value);
    if (auto* e = std::get_if<ApiError>(&status)) return *e;
    link.status = std::get<int>(status);
  }
  if (auto it = doc.FindMember("forward_query"); it != doc.MemberEnd()) {
    auto forward = read_bool(it->value, "forward_query");
    if (auto* e = std::get_if<ApiError>(&forward)) return *e;
    link.forward_query = std::get<bool>(forward);
  }
  if (auto it = doc.FindMember("expires_at"); it != doc.MemberEnd()) {
    auto expiry = read_expiry(it->value, now);
    if (auto* e = std::get_if<ApiError>(&expiry)) return *e;
    link.expires_at = std::get<std::optional<core::TimePoint>>(expiry);
  }
  return link;
}

std::variant<LinkPatch, ApiError> parse_patch_request(std::string_view body,
                                                      const core::UrlPolicyOptions& url_policy,
                                                      core::TimePoint now) {
  auto parsed = parse_object(body, {"url", "status", "forward_query", "expires_at", "disabled"});
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  const rapidjson::Document& doc = std::get<rapidjson::Document>(parsed);

  LinkPatch patch;
  if (auto it = doc.FindMember("url"); it != doc.MemberEnd()) {
    auto url = read_url(it->value, url_policy);
    if (auto* e = std::get_if<ApiError>(&url)) return *e;
    patch.target = std::get<std::string>(std::move(url));
  }
  if (auto it = doc.FindMember("status"); it != doc.MemberEnd()) {
    auto status = read_status(it->value);
    if (auto* e = std::get_if<ApiError>(&status)) return *e;
    patch.status = std::get<int>(status);
  }
  if (auto it = doc.FindMember("forward_query"); it != doc.MemberEnd()) {
    auto forward = read_bool(it->value, "forward_query");
    if (auto* e = std::get_if<ApiError>(&forward)) return *e;
    patch.forward_query = std::get<bool>(forward);
  }
  if (auto it = doc.FindMember("expires_at"); it != doc.MemberEnd()) {
    auto expiry = read_expiry(it->value, now);
    if (auto* e = std::get_if<ApiError>(&expiry)) return *e;
    patch.expires_at = std::get<std::optional<core::TimePoint>>(expiry);
  }
  if (auto it = doc.FindMember("disabled"); it != doc.MemberEnd()) {
    auto disabled = read_bool(it->value, "disabled");
    if (auto* e = std::get_if<ApiError>(&disabled)) return *e;
    patch.disabled = std::get<bool>(disabled);
  }
  return patch;
}

}  // namespace origin
