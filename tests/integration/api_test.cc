// The origin's HTTP API end to end: a real `origin serve` on a migrated
// database of its own, driven over HTTP.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <optional>
#include <pqxx/pqxx>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/http_client.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;

const std::string kJson = "application/json";
const std::string kCacheControl = "private, max-age=90";
const std::string kCodeAlphabet = "abcdefghjkmnpqrstuvwxyz23456789";

// RFC 3339 UTC with milliseconds, the origin's timestamp format.
std::string rfc3339(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03dZ", static_cast<int>(ms.count() % 1000));
  return std::string(text, n) + millis;
}

bool is_rfc3339_millis(const std::optional<std::string>& text) {
  static const std::regex kFormat(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
  return text.has_value() && std::regex_match(*text, kFormat);
}

class LinksApi : public ::testing::Test {
 protected:
  // POSTs `json` to `path` and returns the 201 body; throws (failing the test
  // with the response) on any other answer.
  JsonBody create(const std::string& json, const std::string& path = "/api/links") {
    const Response r = client_.post_json(path, json);
    if (r.status != 201) {
      throw std::runtime_error("POST " + path + " " + json + " -> " + r.summary());
    }
    return JsonBody(r.body);
  }

  std::string create_code(const std::string& json) {
    const std::optional<std::string> code = create(json).str("code");
    if (!code.has_value()) throw std::runtime_error("201 without a string code for " + json);
    return *code;
  }

  JsonBody link(const std::string& code) {
    const Response r = client_.get("/api/links/" + code);
    if (r.status != 200) throw std::runtime_error("GET /api/links/" + code + " -> " + r.summary());
    return JsonBody(r.body);
  }

  TestDatabase db_;
  OriginProcess origin_{db_.url()};
  HttpClient client_ = origin_.client();
};

TEST_F(LinksApi, CreateAnswers201WithTheLinkAndWhereToFindIt) {
  const Response r =
      client_.post_json("/api/links", R"({"url":"https://example.com/docs?page=2","status":302})");
  ASSERT_EQ(r.status, 201) << r.summary();
  const JsonBody body(r.body);
  const std::optional<std::string> code = body.str("code");
  ASSERT_TRUE(code.has_value()) << "code is a string: " << r.body;
  EXPECT_EQ(r.header("location"), "/api/links/" + *code) << "Location of the created link";
  EXPECT_EQ(r.header("content-type").rfind(kJson, 0), 0u)
      << "Content-Type: " << r.header("content-type");
  EXPECT_EQ(body.str("short_url"), std::string(OriginProcess::kPublicBaseUrl) + "/" + *code)
      << "short_url is PUBLIC_BASE_URL/code";
  EXPECT_EQ(body.str("target"), "https://example.com/docs?page=2") << "target";
  EXPECT_EQ(body.integer("status"), 302) << "status";
  EXPECT_EQ(body.boolean("forward_query"), true) << "forward_query defaults to true";
  EXPECT_TRUE(body.is_null("expires_at")) << "expires_at defaults to null: " << r.body;
  EXPECT_TRUE(is_rfc3339_millis(body.str("created_at"))) << "created_at format: " << r.body;
}

TEST_F(LinksApi, StatusDefaultsTo307) {
  const JsonBody body = create(R"({"url":"https://example.com/"})");
  EXPECT_EQ(body.integer("status"), 307) << "default status in the 201 body";
  const Response r = client_.get("/" + body.str("code").value_or(""));
  EXPECT_EQ(r.status, 307) << "default status of the redirect";
}

TEST_F(LinksApi, GeneratedCodesHaveSevenCharactersFromTheUnambiguousAlphabet) {
  std::set<std::string> seen;
  std::string bad_length, bad_alphabet, repeated;
  for (int i = 0; i < 50; ++i) {
    const std::string code = create_code(R"({"url":"https://example.com/g"})");
    if (code.size() != 7) bad_length += " " + code;
    if (code.find_first_not_of(kCodeAlphabet) != std::string::npos) bad_alphabet += " " + code;
    if (!seen.insert(code).second) repeated += " " + code;
  }
  EXPECT_EQ(bad_length, "") << "generated codes whose length is not 7";
  EXPECT_EQ(bad_alphabet, "") << "generated codes with characters outside " << kCodeAlphabet;
  EXPECT_EQ(repeated, "") << "generated codes repeated";
}

TEST_F(LinksApi, RedirectCarriesEachAllowedStatusExactLocationAndCacheControl) {
  const std::string target = "https://example.com/landing?a=1&b=2#top";
  for (int status : {301, 302, 307, 308}) {
    SCOPED_TRACE("link status " + std::to_string(status));
    const std::string code =
        create_code(R"({"url":")" + target + R"(","status":)" + std::to_string(status) + "}");

    const Response plain = client_.get("/" + code);
    EXPECT_EQ(plain.status, status) << "GET status";
    EXPECT_EQ(plain.header("location"), target) << "GET Location without a request query";
    EXPECT_EQ(plain.header("cache-control"), kCacheControl) << "GET Cache-Control";

    const Response merged = client_.get("/" + code + "?b=9&c=3");
    EXPECT_EQ(merged.status, status) << "GET with query: status";
    EXPECT_EQ(merged.header("location"), "https://example.com/landing?a=1&b=2&c=3#top")
        << "GET with query: the link's b wins, c is appended, the fragment stays";

    const Response head = client_.request("HEAD", "/" + code + "?b=9&c=3");
    EXPECT_EQ(head.status, status) << "HEAD status";
    EXPECT_EQ(head.header("location"), merged.header("location")) << "HEAD Location";
    EXPECT_EQ(head.header("cache-control"), kCacheControl) << "HEAD Cache-Control";
    EXPECT_EQ(head.body, "") << "HEAD body";
  }
}

TEST_F(LinksApi, RequestQueryIsMergedIntoTheTargetAndTheLinksParametersWin) {
  struct Case {
    std::string target;
    std::string request_query;
    std::string location;
  };
  const std::vector<Case> cases = {
      {"https://example.com/p", "", "https://example.com/p"},
      {"https://example.com/p", "x=1", "https://example.com/p?x=1"},
      {"https://example.com/p#frag", "x=1&y=2", "https://example.com/p?x=1&y=2#frag"},
      {"https://example.com/p?a=1&b=2", "b=9&c=3", "https://example.com/p?a=1&b=2&c=3"},
      {"https://example.com/p?a=1#frag", "c=3&a=7&d", "https://example.com/p?a=1&c=3&d#frag"},
      {"https://example.com/p?a=1", "a=2", "https://example.com/p?a=1"},
      {"https://example.com/p", "x=1&&y=2", "https://example.com/p?x=1&y=2"},
  };
  for (const Case& c : cases) {
    const std::string code = create_code(R"({"url":")" + c.target + R"("})");
    const std::string path = "/" + code + (c.request_query.empty() ? "" : "?" + c.request_query);
    const Response r = client_.get(path);
    EXPECT_EQ(r.status, 307) << c.target << " + ?" << c.request_query;
    EXPECT_EQ(r.header("location"), c.location) << c.target << " + ?" << c.request_query;
  }
}

TEST_F(LinksApi, QueryIsNotForwardedWhenForwardQueryIsFalse) {
  const JsonBody body = create(R"({"url":"https://example.com/p?a=1","forward_query":false})");
  EXPECT_EQ(body.boolean("forward_query"), false) << "forward_query in the 201 body";
  const Response r = client_.get("/" + body.str("code").value_or("") + "?x=1&a=2");
  EXPECT_EQ(r.status, 307) << r.summary();
  EXPECT_EQ(r.header("location"), "https://example.com/p?a=1") << "Location ignores ?x=1&a=2";
  EXPECT_EQ(r.header("cache-control"), kCacheControl) << "Cache-Control";
}

TEST_F(LinksApi, LocationIsTheStoredNormalizedTarget) {
  struct Case {
    std::string url;
    std::string normalized;
  };
  const std::vector<Case> cases = {
      {"HTTPS://Example.COM", "https://example.com/"},
      {"https://example.com:443/a", "https://example.com/a"},
      {"http://example.com:80/a", "http://example.com/a"},
      {"https://example.com:8443/a", "https://example.com:8443/a"},
      {"https://b\xC3\xBC"
       "cher.example/",
       "https://xn--bcher-kva.example/"},
      {"https://example.com/stra\xC3\x9F"
       "e?q=\xC3\xA4",
       "https://example.com/stra%C3%9Fe?q=%C3%A4"},
      {"https://example.com/a%2Fb?x=%41", "https://example.com/a%2Fb?x=%41"},
  };
  for (const Case& c : cases) {
    const JsonBody body = create(R"({"url":")" + c.url + R"("})");
    EXPECT_EQ(body.str("target"), c.normalized) << "stored target for " << c.url;
    const Response r = client_.get("/" + body.str("code").value_or(""));
    EXPECT_EQ(r.header("location"), c.normalized) << "Location for " << c.url;
  }
}

TEST_F(LinksApi, GetLinkReturnsEveryField) {
  const std::string code = create_code(
      R"({"url":"https://example.com/x","alias":"every-field","status":308,"forward_query":false})");
  const Response r = client_.get("/api/links/" + code);
  ASSERT_EQ(r.status, 200) << r.summary();
  const JsonBody body(r.body);
  EXPECT_EQ(body.str("code"), "every-field") << "code";
  EXPECT_EQ(body.str("short_url"), std::string(OriginProcess::kPublicBaseUrl) + "/every-field")
      << "short_url";
  EXPECT_EQ(body.str("target"), "https://example.com/x") << "target";
  EXPECT_EQ(body.integer("status"), 308) << "status";
  EXPECT_EQ(body.boolean("forward_query"), false) << "forward_query";
  EXPECT_TRUE(body.is_null("expires_at")) << "expires_at: " << r.body;
  EXPECT_EQ(body.boolean("disabled"), false) << "disabled";
  EXPECT_TRUE(is_rfc3339_millis(body.str("created_at"))) << "created_at: " << r.body;
  EXPECT_TRUE(is_rfc3339_millis(body.str("updated_at"))) << "updated_at: " << r.body;
}

TEST_F(LinksApi, PatchChangesWhatTheRedirectAnswers) {
  const JsonBody created = create(R"({"url":"https://example.com/old"})");
  const std::string code = created.str("code").value_or("");
  std::this_thread::sleep_for(10ms);  // so that updated_at can differ from created_at

  Response r = client_.patch_json(
      "/api/links/" + code,
      R"({"url":"https://example.org/new?k=v","status":301,"forward_query":false})");
  ASSERT_EQ(r.status, 200) << r.summary();
  const JsonBody patched(r.body);
  EXPECT_EQ(patched.str("target"), "https://example.org/new?k=v") << "PATCH url";
  EXPECT_EQ(patched.integer("status"), 301) << "PATCH status";
  EXPECT_EQ(patched.boolean("forward_query"), false) << "PATCH forward_query";
  EXPECT_EQ(patched.str("created_at"), created.str("created_at")) << "created_at is kept";
  EXPECT_GT(patched.str("updated_at").value_or(""), created.str("created_at").value_or("~"))
      << "updated_at is bumped";

  r = client_.get("/" + code + "?x=1");
  EXPECT_EQ(r.status, 301) << "redirect status after PATCH";
  EXPECT_EQ(r.header("location"), "https://example.org/new?k=v")
      << "Location after PATCH, query not forwarded";

  const std::string expiry = rfc3339(std::chrono::system_clock::now() + 24h);
  r = client_.patch_json("/api/links/" + code, R"({"expires_at":")" + expiry + R"("})");
  ASSERT_EQ(r.status, 200) << r.summary();
  EXPECT_EQ(JsonBody(r.body).str("expires_at"), expiry) << "PATCH expires_at";
  EXPECT_EQ(client_.get("/" + code).status, 301) << "a future expiry keeps the link live";
  r = client_.patch_json("/api/links/" + code, R"({"expires_at":null})");
  ASSERT_EQ(r.status, 200) << r.summary();
  EXPECT_TRUE(JsonBody(r.body).is_null("expires_at")) << "PATCH expires_at null clears it";

  r = client_.patch_json("/api/links/" + code, R"({"disabled":true})");
  ASSERT_EQ(r.status, 200) << r.summary();
  EXPECT_EQ(JsonBody(r.body).boolean("disabled"), true) << "PATCH disabled true";
  EXPECT_TRUE(IsApiError(client_.get("/" + code), 410, "gone", std::nullopt))
      << "a disabled link is gone";

  r = client_.patch_json("/api/links/" + code, R"({"disabled":false})");
  ASSERT_EQ(r.status, 200) << r.summary();
  EXPECT_EQ(client_.get("/" + code).status, 301) << "re-enabled link redirects again";
}

TEST_F(LinksApi, RejectedPatchesChangeNothing) {
  const std::string code = create_code(R"({"url":"https://example.com/keep"})");
  const std::string before = client_.get("/api/links/" + code).body;
  struct Case {
    std::string label;
    std::string content_type;
    std::string body;
    int status;
    std::string error;
    std::optional<std::string_view> field;
  };
  const std::vector<Case> cases = {
      {"text/plain", "text/plain", R"({"status":301})", 415, "unsupported_media_type",
       std::nullopt},
      {"not JSON", kJson, "{", 400, "malformed_json", std::nullopt},
      {"url as number", kJson, R"({"url":1})", 400, "wrong_type", "url"},
      {"disabled as string", kJson, R"({"disabled":"yes"})", 400, "wrong_type", "disabled"},
      {"unknown field", kJson, R"({"colour":"red"})", 400, "unknown_field", "colour"},
      {"javascript url", kJson, R"j({"url":"javascript:alert(1)"})j", 422, "invalid_url", "url"},
      {"status 300", kJson, R"({"status":300})", 422, "invalid_status", "status"},
      {"expires_at tomorrow", kJson, R"({"expires_at":"tomorrow"})", 422, "invalid_expires_at",
       "expires_at"},
  };
  for (const Case& c : cases) {
    const Response r =
        client_.request("PATCH", "/api/links/" + code, c.body, {{"Content-Type", c.content_type}});
    EXPECT_TRUE(IsApiError(r, c.status, c.error, c.field)) << "PATCH " << c.label;
  }
  EXPECT_EQ(client_.get("/api/links/" + code).body, before) << "link after rejected PATCHes";
}

TEST_F(LinksApi, DeleteMakesTheLinkGoneAndItsCodeIsNeverReused) {
  create_code(R"({"url":"https://example.com/sale","alias":"spring-sale"})");
  const Response deleted = client_.request("DELETE", "/api/links/spring-sale");
  ASSERT_EQ(deleted.status, 200) << deleted.summary();
  EXPECT_EQ(JsonBody(deleted.body).boolean("disabled"), true) << "DELETE answers disabled: true";
  EXPECT_EQ(JsonBody(deleted.body).str("code"), "spring-sale") << "DELETE answers the link";

  EXPECT_TRUE(IsApiError(client_.get("/spring-sale"), 410, "gone", std::nullopt))
      << "GET after DELETE";
  EXPECT_EQ(client_.request("HEAD", "/spring-sale").status, 410) << "HEAD after DELETE";
  EXPECT_TRUE(IsApiError(
      client_.post_json("/api/links", R"({"url":"https://example.com/","alias":"spring-sale"})"),
      409, "alias_taken", "alias"))
      << "the deleted code as a new alias";
  EXPECT_TRUE(IsApiError(
      client_.post_json("/api/links", R"({"url":"https://example.com/","alias":"Spring-Sale"})"),
      409, "alias_taken", "alias"))
      << "the deleted code in another case as a new alias";
}

TEST_F(LinksApi, TakenAliasIsRefusedWith409InAnyCase) {
  create_code(R"({"url":"https://example.com/a","alias":"promo"})");
  EXPECT_TRUE(IsApiError(
      client_.post_json("/api/links", R"({"url":"https://example.com/b","alias":"promo"})"), 409,
      "alias_taken", "alias"))
      << "same alias";
  EXPECT_TRUE(IsApiError(
      client_.post_json("/api/links", R"({"url":"https://example.com/b","alias":"Promo"})"), 409,
      "alias_taken", "alias"))
      << "same alias, other case";
  EXPECT_EQ(client_.get("/promo").header("location"), "https://example.com/a")
      << "the first link keeps the alias";
}

TEST_F(LinksApi, AliasesAreStoredLowercase) {
  const std::string long_alias(64, 'Q');
  struct Case {
    std::string alias;
    std::string code;
  };
  const std::vector<Case> cases = {{"MixedCase_2", "mixedcase_2"},
                                   {"a", "a"},
                                   {"x-y_z-9", "x-y_z-9"},
                                   {long_alias, std::string(64, 'q')}};
  for (const Case& c : cases) {
    const JsonBody body = create(R"({"url":"https://example.com/","alias":")" + c.alias + R"("})");
    EXPECT_EQ(body.str("code"), c.code) << "code for alias " << c.alias;
    EXPECT_EQ(body.str("short_url"), std::string(OriginProcess::kPublicBaseUrl) + "/" + c.code)
        << "short_url for alias " << c.alias;
  }
}

TEST_F(LinksApi, LookupIgnoresCase) {
  create_code(R"({"url":"https://example.com/abc","alias":"abc"})");
  for (const std::string spelling : {"abc", "AbC", "ABC"}) {
    const Response r = client_.get("/" + spelling);
    EXPECT_EQ(r.status, 307) << "GET /" << spelling;
    EXPECT_EQ(r.header("location"), "https://example.com/abc") << "GET /" << spelling;
  }
  const Response api = client_.get("/api/links/ABC");
  EXPECT_EQ(api.status, 200) << "GET /api/links/ABC: " << api.summary();
  EXPECT_EQ(JsonBody(api.body).str("code"), "abc") << "GET /api/links/ABC returns code abc";
}

TEST_F(LinksApi, ExpiredLinkIsGone) {
  const auto expires = std::chrono::system_clock::now() + 1500ms;
  const std::string code = create_code(R"({"url":"https://example.com/soon","expires_at":")" +
                                       rfc3339(expires) + R"("})");
  EXPECT_EQ(client_.get("/" + code).status, 307) << "before expiry";
  std::this_thread::sleep_until(expires + 300ms);
  EXPECT_TRUE(IsApiError(client_.get("/" + code), 410, "gone", std::nullopt)) << "after expiry";
  EXPECT_EQ(client_.request("HEAD", "/" + code).status, 410) << "HEAD after expiry";
}

TEST_F(LinksApi, EachInvalidCreateIsRefusedWithItsStatusCodeAndField) {
  struct Case {
    std::string label;
    std::string content_type;  // "" sends no Content-Type
    std::string body;
    int status;
    std::string error;
    std::optional<std::string_view> field;
  };
  const std::string good_url = R"("url":"https://example.com/")";
  const std::string big_url = "https://example.com/?q=" + std::string(9000, 'a');
  const std::vector<Case> cases = {
      {"text/plain", "text/plain", "{" + good_url + "}", 415, "unsupported_media_type",
       std::nullopt},
      {"no Content-Type", "", "{" + good_url + "}", 415, "unsupported_media_type", std::nullopt},
      {"body over 8192 bytes", kJson, R"({"url":")" + big_url + R"("})", 413, "body_too_large",
       std::nullopt},
      {"not JSON", kJson, "{", 400, "malformed_json", std::nullopt},
      {"empty body", kJson, "", 400, "malformed_json", std::nullopt},
      {"JSON array", kJson, "[]", 400, "malformed_json", std::nullopt},
      {"JSON string", kJson, R"("https://example.com/")", 400, "malformed_json", std::nullopt},
      {"url as number", kJson, R"({"url":42})", 400, "wrong_type", "url"},
      {"status as string", kJson, "{" + good_url + R"(,"status":"302"})", 400, "wrong_type",
       "status"},
      {"forward_query as string", kJson, "{" + good_url + R"(,"forward_query":"yes"})", 400,
       "wrong_type", "forward_query"},
      {"alias as number", kJson, "{" + good_url + R"(,"alias":7})", 400, "wrong_type", "alias"},
      {"expires_at as number", kJson, "{" + good_url + R"(,"expires_at":1700000000})", 400,
       "wrong_type", "expires_at"},
      {"unknown field", kJson, "{" + good_url + R"(,"colour":"red"})", 400, "unknown_field",
       "colour"},
      {"url missing", kJson, "{}", 422, "required", "url"},
      {"url missing, alias given", kJson, R"({"alias":"lonely"})", 422, "required", "url"},
      {"javascript: url", kJson, R"j({"url":"javascript:alert(1)"})j", 422, "invalid_url", "url"},
      {"userinfo in url", kJson, R"({"url":"https://bank.example@evil.example/"})", 422,
       "invalid_url", "url"},
      {"url on own host", kJson, R"({"url":"https://sho.example.test/abc"})", 422, "invalid_url",
       "url"},
      {"url on own host, upper case", kJson, R"({"url":"https://SHO.Example.TEST/abc"})", 422,
       "invalid_url", "url"},
      {"ftp url", kJson, R"({"url":"ftp://example.com/file"})", 422, "invalid_url", "url"},
      {"relative url", kJson, R"({"url":"/just/a/path"})", 422, "invalid_url", "url"},
      {"space in url", kJson, R"({"url":"https://example.com/a b"})", 422, "invalid_url", "url"},
      {"alias with space", kJson, "{" + good_url + R"(,"alias":"has space"})", 422, "invalid_alias",
       "alias"},
      {"alias with slash", kJson, "{" + good_url + R"(,"alias":"a/b"})", 422, "invalid_alias",
       "alias"},
      {"alias of 65 characters", kJson,
       "{" + good_url + R"(,"alias":")" + std::string(65, 'a') + R"("})", 422, "invalid_alias",
       "alias"},
      {"empty alias", kJson, "{" + good_url + R"(,"alias":""})", 422, "invalid_alias", "alias"},
      {"alias api", kJson, "{" + good_url + R"(,"alias":"api"})", 422, "reserved_alias", "alias"},
      {"alias healthz", kJson, "{" + good_url + R"(,"alias":"healthz"})", 422, "reserved_alias",
       "alias"},
      {"alias readyz", kJson, "{" + good_url + R"(,"alias":"readyz"})", 422, "reserved_alias",
       "alias"},
      {"alias shorten", kJson, "{" + good_url + R"(,"alias":"shorten"})", 422, "reserved_alias",
       "alias"},
      {"alias METRICS", kJson, "{" + good_url + R"(,"alias":"METRICS"})", 422, "reserved_alias",
       "alias"},
      {"status 300", kJson, "{" + good_url + R"(,"status":300})", 422, "invalid_status", "status"},
      {"status 304", kJson, "{" + good_url + R"(,"status":304})", 422, "invalid_status", "status"},
      {"status 200", kJson, "{" + good_url + R"(,"status":200})", 422, "invalid_status", "status"},
      {"expires_at tomorrow", kJson, "{" + good_url + R"(,"expires_at":"tomorrow"})", 422,
       "invalid_expires_at", "expires_at"},
      {"expires_at in the past", kJson,
       "{" + good_url + R"(,"expires_at":"2001-01-01T00:00:00.000Z"})", 422, "invalid_expires_at",
       "expires_at"},
  };
  for (const Case& c : cases) {
    Headers headers;
    if (!c.content_type.empty()) headers["Content-Type"] = c.content_type;
    // A fresh connection per case: a server may close after an error.
    HttpClient fresh = origin_.client();
    const Response r = fresh.request("POST", "/api/links", c.body, headers);
    EXPECT_TRUE(IsApiError(r, c.status, c.error, c.field)) << "POST /api/links " << c.label;
  }
  EXPECT_EQ(query_text(db_.url(), "SELECT count(*) FROM links"), "0\n")
      << "no refused request created a link";
}

TEST_F(LinksApi, UnknownCodesAreNotFound) {
  EXPECT_TRUE(IsApiError(client_.get("/nosuchcode"), 404, "not_found", std::nullopt))
      << "GET /nosuchcode";
  EXPECT_EQ(client_.request("HEAD", "/nosuchcode").status, 404) << "HEAD /nosuchcode";
  EXPECT_TRUE(IsApiError(client_.get("/api/links/nosuchcode"), 404, "not_found", std::nullopt))
      << "GET /api/links/nosuchcode";
  EXPECT_TRUE(IsApiError(client_.patch_json("/api/links/nosuchcode", R"({"disabled":true})"), 404,
                         "not_found", std::nullopt))
      << "PATCH /api/links/nosuchcode";
  EXPECT_TRUE(IsApiError(client_.request("DELETE", "/api/links/nosuchcode"), 404, "not_found",
                         std::nullopt))
      << "DELETE /api/links/nosuchcode";
}

TEST_F(LinksApi, BrowsersGetAnHtmlPageForUnknownAndGoneCodes) {
  const Headers browser = {{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"}};
  const Response unknown = client_.get("/nosuchcode", browser);
  EXPECT_EQ(unknown.status, 404) << "unknown code for a browser";
  EXPECT_EQ(unknown.header("content-type").rfind("text/html", 0), 0u)
      << "Content-Type for a browser's 404: " << unknown.header("content-type");

  create_code(R"({"url":"https://example.com/","alias":"retired"})");
  ASSERT_EQ(client_.request("DELETE", "/api/links/retired").status, 200);
  const Response gone = client_.get("/retired", browser);
  EXPECT_EQ(gone.status, 410) << "disabled code for a browser";
  EXPECT_EQ(gone.header("content-type").rfind("text/html", 0), 0u)
      << "Content-Type for a browser's 410: " << gone.header("content-type");
}

TEST_F(LinksApi, ShortenIsTheSameHandlerAsApiLinks) {
  const JsonBody body = create(R"({"url":"https://example.com/legacy","status":302})", "/shorten");
  const std::string code = body.str("code").value_or("");
  EXPECT_EQ(body.str("short_url"), std::string(OriginProcess::kPublicBaseUrl) + "/" + code)
      << "short_url from /shorten";
  EXPECT_EQ(body.str("target"), "https://example.com/legacy") << "target from /shorten";
  EXPECT_EQ(body.integer("status"), 302) << "status from /shorten";
  const Response r = client_.get("/" + code);
  EXPECT_EQ(r.status, 302) << "redirect of a link made by /shorten";
  EXPECT_EQ(r.header("location"), "https://example.com/legacy") << "Location";
  EXPECT_TRUE(
      IsApiError(client_.post_json("/shorten", R"({"url":"https://example.com/","colour":"red"})"),
                 400, "unknown_field", "colour"))
      << "/shorten validates like /api/links";
}

TEST_F(LinksApi, HealthAndReadinessAnswer200) {
  const Response health = client_.get("/healthz");
  EXPECT_EQ(health.status, 200) << "/healthz";
  EXPECT_EQ(JsonBody(health.body).str("status"), "ok") << "/healthz body " << health.body;
  const Response ready = client_.get("/readyz");
  EXPECT_EQ(ready.status, 200) << "/readyz";
  EXPECT_EQ(JsonBody(ready.body).str("status"), "ready") << "/readyz body " << ready.body;
}

// Collects payloads NOTIFYed on channel link_changed.
class LinkChanges : public pqxx::notification_receiver {
 public:
  explicit LinkChanges(pqxx::connection_base& connection)
      : pqxx::notification_receiver(connection, "link_changed") {}
  void operator()(const std::string& payload, int) override { payloads_.push_back(payload); }

  // Waits up to `timeout` for `payload`; returns whether it arrived.
  bool await(pqxx::connection_base& connection, const std::string& payload,
             std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::find(payloads_.begin(), payloads_.end(), payload) == payloads_.end()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      connection.await_notification(0, 100'000);
    }
    payloads_.clear();
    return true;
  }
  const std::vector<std::string>& payloads() const { return payloads_; }

 private:
  std::vector<std::string> payloads_;
};

TEST_F(LinksApi, ChangesAreNotifiedOnLinkChangedWithTheCode) {
  const std::string code = create_code(R"({"url":"https://example.com/n"})");
  pqxx::connection listener{db_.url()};
  LinkChanges changes(listener);

  ASSERT_EQ(client_.patch_json("/api/links/" + code, R"({"status":302})").status, 200);
  EXPECT_TRUE(changes.await(listener, code, 5s))
      << "NOTIFY after PATCH; payloads seen: " << testing::PrintToString(changes.payloads());

  ASSERT_EQ(client_.request("DELETE", "/api/links/" + code).status, 200);
  EXPECT_TRUE(changes.await(listener, code, 5s))
      << "NOTIFY after DELETE; payloads seen: " << testing::PrintToString(changes.payloads());
}

}  // namespace
}  // namespace integration

namespace integration {
namespace {

// A query stuck behind a lock occupies database workers, never io threads:
// /healthz keeps answering at once while redirects wait for the database.
TEST(SlowDatabase, RequestsThatNeedNoDatabaseAreNotStalledByASlowQuery) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"DB_STATEMENT_TIMEOUT_MS", "3000"}, {"ORIGIN_THREADS", "2"}});
  HttpClient setup = origin.client();
  const Response created =
      setup.post_json("/api/links", R"({"url":"https://example.com/slow","alias":"slow"})");
  ASSERT_EQ(created.status, 201) << created.summary();

  pqxx::connection locker(db.url());
  pqxx::work lock_txn(locker);
  lock_txn.exec("LOCK TABLE links IN ACCESS EXCLUSIVE MODE");

  // Saturate every database worker (pool 5 + overflow 10) with blocked lookups.
  std::vector<std::thread> blocked;
  std::atomic<int> blocked_done{0};
  for (int i = 0; i < 20; ++i) {
    blocked.emplace_back([&origin, &blocked_done] {
      HttpClient c = origin.client(std::chrono::seconds(10));
      try {
        c.get("/slow");
      } catch (const std::exception&) {
      }
      ++blocked_done;
    });
  }
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(blocked_done.load(), 0) << "the lock did not hold the lookups";

  HttpClient probe = origin.client(std::chrono::seconds(2));
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const Response health = probe.get("/healthz");
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(health.status, 200) << "probe " << i;
    EXPECT_LT(elapsed, 100ms) << "probe " << i << " waited behind the database";
  }
  lock_txn.abort();
  for (auto& t : blocked) t.join();
  EXPECT_EQ(setup.get("/slow").status, 307) << "lookups work again once the lock is gone";
}

}  // namespace
}  // namespace integration

namespace integration {
namespace {

// curl sends "Expect: 100-continue" with bodies over 1 KiB and waits (here told
// to wait 10 s, so a loaded machine cannot blur the difference) for the interim
// answer before sending the body.
TEST(LargeBodies, ExpectContinueIsAnsweredSoCurlDoesNotWait) {
  TestDatabase db;
  OriginProcess origin(db.url());
  const std::string body =
      R"({"url":"https://example.com/long?)" + std::string(1500, 'q') + R"(","status":302})";
  const CommandResult result =
      run_command({"/usr/bin/curl", "-sS", "--expect100-timeout", "10", "-o", "/dev/null", "-w",
                   "%{http_code} %{time_total}", "-H", "Content-Type: application/json", "-H",
                   "Authorization: Bearer " + origin.admin_key(), "--data-binary", body,
                   "http://127.0.0.1:" + std::to_string(origin.port()) + "/api/links"},
                  inherited_environment(), std::chrono::seconds(30));
  ASSERT_TRUE(result.exit.has_value() && result.exit->success()) << result.describe();
  const std::string status = result.out.substr(0, result.out.find(' '));
  const double seconds = std::stod(result.out.substr(result.out.find(' ') + 1));
  EXPECT_EQ(status, "201") << result.describe();
  EXPECT_LT(seconds, 5.0) << "curl waited for 100 Continue: " << result.describe();
}

}  // namespace
}  // namespace integration
