#include "origin/api_request.h"

#include <gtest/gtest.h>

namespace origin {
namespace {

const core::TimePoint kNow = core::from_unix_ms(1795812400000);  // 2026-11-27T20:46:40Z

core::UrlPolicyOptions policy() {
  core::UrlPolicyOptions options;
  options.own_hosts = {"sho.rt"};
  return options;
}

struct ErrorCase {
  const char* body;
  int status;
  const char* code;
  const char* field;
};

TEST(CreateRequest, ReportsEachErrorWithStatusCodeAndField) {
  const ErrorCase cases[] = {
      {"", 400, "malformed_json", ""},
      {"{", 400, "malformed_json", ""},
      {"{\"url\":\"https://a.example/\"", 400, "malformed_json", ""},
      {"[\"https://a.example/\"]", 400, "malformed_json", ""},
      {"\"https://a.example/\"", 400, "malformed_json", ""},
      {"null", 400, "malformed_json", ""},
      {"{\"url\":\"https://a.example/\xff\"}", 400, "malformed_json", ""},
      {"{\"url\":\"https://a.example/\"} trailing", 400, "malformed_json", ""},
      {"{\"url\":42}", 400, "wrong_type", "url"},
      {"{\"url\":[\"https://a.example/\"]}", 400, "wrong_type", "url"},
      {"{\"url\":\"https://a.example/\",\"alias\":7}", 400, "wrong_type", "alias"},
      {"{\"url\":\"https://a.example/\",\"status\":\"307\"}", 400, "wrong_type", "status"},
      {"{\"url\":\"https://a.example/\",\"forward_query\":\"yes\"}", 400, "wrong_type",
       "forward_query"},
      {"{\"url\":\"https://a.example/\",\"forward_query\":1}", 400, "wrong_type", "forward_query"},
      {"{\"url\":\"https://a.example/\",\"expires_at\":1893456000}", 400, "wrong_type",
       "expires_at"},
      {"{\"url\":\"https://a.example/\",\"target\":\"x\"}", 400, "unknown_field", "target"},
      {"{\"url\":\"https://a.example/\",\"url\":\"https://b.example/\"}", 400, "duplicate_field",
       "url"},
      {"{}", 422, "required", "url"},
      {"{\"url\":null}", 422, "required", "url"},
      {"{\"url\":\"javascript:alert(1)\"}", 422, "invalid_url", "url"},
      {"{\"url\":\"https://bank.example@evil.example/\"}", 422, "invalid_url", "url"},
      {"{\"url\":\"https://sho.rt/abc\"}", 422, "invalid_url", "url"},
      {"{\"url\":\"\"}", 422, "invalid_url", "url"},
      {"{\"url\":\"https://a.example/\",\"alias\":\"has space\"}", 422, "invalid_alias", "alias"},
      {"{\"url\":\"https://a.example/\",\"alias\":\"\"}", 422, "invalid_alias", "alias"},
      {"{\"url\":\"https://a.example/\",\"alias\":\"API\"}", 422, "reserved_alias", "alias"},
      {"{\"url\":\"https://a.example/\",\"alias\":\"healthz\"}", 422, "reserved_alias", "alias"},
      {"{\"url\":\"https://a.example/\",\"status\":300}", 422, "invalid_status", "status"},
      {"{\"url\":\"https://a.example/\",\"status\":304}", 422, "invalid_status", "status"},
      {"{\"url\":\"https://a.example/\",\"status\":307.5}", 422, "invalid_status", "status"},
      {"{\"url\":\"https://a.example/\",\"expires_at\":\"tomorrow\"}", 422, "invalid_expires_at",
       "expires_at"},
      {"{\"url\":\"https://a.example/\",\"expires_at\":\"2020-01-01T00:00:00Z\"}", 422,
       "invalid_expires_at", "expires_at"},
  };
  for (const ErrorCase& c : cases) {
    auto result = parse_create_request(c.body, policy(), kNow);
    ASSERT_TRUE(std::holds_alternative<ApiError>(result)) << "body: " << c.body;
    const ApiError& e = std::get<ApiError>(result);
    EXPECT_EQ(e.status, c.status) << "body: " << c.body;
    EXPECT_EQ(e.code, c.code) << "body: " << c.body;
    EXPECT_EQ(e.field, c.field) << "body: " << c.body;
    EXPECT_FALSE(e.message.empty()) << "body: " << c.body;
  }
}

TEST(CreateRequest, AppliesDefaultsAndNormalizes) {
  auto result = parse_create_request(R"({"url":"HTTPS://Example.COM:443"})", policy(), kNow);
  ASSERT_TRUE(std::holds_alternative<NewLink>(result));
  const NewLink& link = std::get<NewLink>(result);
  EXPECT_EQ(link.target, "https://example.com/");
  EXPECT_EQ(link.status, 307);
  EXPECT_TRUE(link.forward_query);
  EXPECT_FALSE(link.alias.has_value());
  EXPECT_FALSE(link.expires_at.has_value());
}

TEST(CreateRequest, AcceptsEveryField) {
  auto result =
      parse_create_request(R"({"url":"https://a.example/x","alias":"Summer-Sale","status":308,)"
                           R"("forward_query":false,"expires_at":"2030-01-01T00:00:00Z"})",
                           policy(), kNow);
  ASSERT_TRUE(std::holds_alternative<NewLink>(result));
  const NewLink& link = std::get<NewLink>(result);
  EXPECT_EQ(link.alias.value_or(""), "summer-sale");
  EXPECT_EQ(link.status, 308);
  EXPECT_FALSE(link.forward_query);
  ASSERT_TRUE(link.expires_at.has_value());
  EXPECT_EQ(core::format_rfc3339_ms(*link.expires_at), "2030-01-01T00:00:00.000Z");
}

TEST(CreateRequest, SurvivesDeepNesting) {
  std::string body(100000, '[');
  auto result = parse_create_request(body, policy(), kNow);
  ASSERT_TRUE(std::holds_alternative<ApiError>(result));
  EXPECT_EQ(std::get<ApiError>(result).code, "malformed_json");
}

TEST(PatchRequest, ReportsErrorsLikeCreate) {
  const ErrorCase cases[] = {
      {"{", 400, "malformed_json", ""},
      {"{\"disabled\":\"true\"}", 400, "wrong_type", "disabled"},
      {"{\"alias\":\"x\"}", 400, "unknown_field", "alias"},
      {"{\"url\":\"ftp://a.example/\"}", 422, "invalid_url", "url"},
      {"{\"status\":303}", 422, "invalid_status", "status"},
      {"{\"expires_at\":\"2001-01-01T00:00:00Z\"}", 422, "invalid_expires_at", "expires_at"},
  };
  for (const ErrorCase& c : cases) {
    auto result = parse_patch_request(c.body, policy(), kNow);
    ASSERT_TRUE(std::holds_alternative<ApiError>(result)) << "body: " << c.body;
    const ApiError& e = std::get<ApiError>(result);
    EXPECT_EQ(e.status, c.status) << "body: " << c.body;
    EXPECT_EQ(e.code, c.code) << "body: " << c.body;
    EXPECT_EQ(e.field, c.field) << "body: " << c.body;
  }
}

TEST(PatchRequest, NullExpiryClearsIt) {
  auto result = parse_patch_request(R"({"expires_at":null,"disabled":true})", policy(), kNow);
  ASSERT_TRUE(std::holds_alternative<LinkPatch>(result));
  const LinkPatch& patch = std::get<LinkPatch>(result);
  ASSERT_TRUE(patch.expires_at.has_value());
  EXPECT_FALSE(patch.expires_at->has_value());
  EXPECT_EQ(patch.disabled, std::optional<bool>(true));
  EXPECT_FALSE(patch.target.has_value());
}

TEST(PatchRequest, AbsentFieldsStayUnchanged) {
  auto result = parse_patch_request("{}", policy(), kNow);
  ASSERT_TRUE(std::holds_alternative<LinkPatch>(result));
  const LinkPatch& patch = std::get<LinkPatch>(result);
  EXPECT_FALSE(patch.expires_at.has_value());
  EXPECT_FALSE(patch.status.has_value());
}

}  // namespace
}  // namespace origin
