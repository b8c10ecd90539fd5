// API keys end to end: `origin keys`, who may create and manage links, how
// fast a revocation takes effect on every instance, and that a key never
// shows in a log, a metric or an error body.

#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/http_client.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// `origin keys create`; fails the test unless it printed exactly one key.
std::string create_key(const std::string& db_url, const std::string& name, bool admin = false) {
  std::vector<std::string> args = {"keys", "create", "--name", name};
  if (admin) args.push_back("--admin");
  const CommandResult r = run_origin(args, {{"DATABASE_URL", db_url}});
  EXPECT_TRUE(r.exit && r.exit->success()) << r.describe();
  static const std::regex kOneKey("shk_[A-Za-z0-9_-]{43}\n");
  EXPECT_TRUE(std::regex_match(r.out, kOneKey)) << "stdout is the key alone: " << r.describe();
  return r.out.substr(0, r.out.find('\n'));
}

CommandResult keys(const std::string& db_url, const std::vector<std::string>& args) {
  std::vector<std::string> full = {"keys"};
  full.insert(full.end(), args.begin(), args.end());
  return run_origin(full, {{"DATABASE_URL", db_url}});
}

Headers bearer(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }
Headers x_api_key(const std::string& key) { return {{"X-Api-Key", key}}; }

const Headers kJsonType = {{"Content-Type", "application/json"}};

Headers with_json(Headers h) {
  h["Content-Type"] = "application/json";
  return h;
}

// One management request, labelled for failure messages.
struct Endpoint {
  std::string method;
  std::string path_suffix;  // after /api/links/{code}
  std::string body;
};

const std::vector<Endpoint> kManagement = {
    {"GET", "", ""},
    {"PATCH", "", R"({"status":302})"},
    {"GET", "/stats", ""},
    {"DELETE", "", ""},  // last: it disables the link
};

Response call(HttpClient& client, const Endpoint& e, const std::string& code, Headers headers) {
  if (!e.body.empty()) headers = with_json(std::move(headers));
  return client.request(e.method, "/api/links/" + code + e.path_suffix, e.body, headers);
}

std::string create_link(HttpClient& client, const Headers& headers, const std::string& url) {
  const Response r =
      client.request("POST", "/api/links", R"({"url":")" + url + R"("})", with_json(headers));
  EXPECT_EQ(r.status, 201) << r.summary();
  return JsonBody(r.body).str("code").value_or("");
}

class Access : public ::testing::Test {
 protected:
  TestDatabase db_;
  OriginProcess origin_{db_.url()};
  std::string alice_ = create_key(db_.url(), "alice");
  std::string bob_ = create_key(db_.url(), "bob");
  HttpClient anonymous_ = origin_.anonymous_client();

  void SetUp() override { ASSERT_TRUE(origin_.wait_ready()) << origin_.log_tail(); }
};

TEST_F(Access, KeysCliPrintsTheKeyOnceAndStoresOnlyItsHash) {
  const CommandResult created = keys(db_.url(), {"create", "--name", "carol", "--admin"});
  ASSERT_TRUE(created.exit && created.exit->success()) << created.describe();
  const std::string key = created.out.substr(0, created.out.find('\n'));
  EXPECT_EQ(created.err.find(key), std::string::npos) << "stderr must not repeat the key";
  EXPECT_NE(created.err.find("carol"), std::string::npos) << created.err;

  // Only the SHA-256 and a short prefix are stored.
  EXPECT_EQ(query_text(db_.url(), "SELECT key_hash = sha256(convert_to('" + key +
                                      "', 'UTF8')), key_prefix, is_admin FROM api_keys"
                                      " WHERE name = 'carol'"),
            "t|" + key.substr(0, 10) + "|t\n");
  EXPECT_EQ(query_text(db_.url(), "SELECT count(*) FROM api_keys WHERE position('" +
                                      key.substr(10) + "' IN api_keys::text) > 0"),
            "0\n");

  const CommandResult list = keys(db_.url(), {"list"});
  ASSERT_TRUE(list.exit && list.exit->success()) << list.describe();
  EXPECT_NE(list.out.find("carol\t" + key.substr(0, 10) + "\tyes\t"), std::string::npos)
      << list.out;
  for (const std::string& k : {key, alice_, bob_}) {
    EXPECT_EQ(list.out.find(k), std::string::npos) << "list printed a key";
  }
}

TEST_F(Access, KeysCliRefusesBadUsageAndUnknownOrDuplicateNamesInOneLine) {
  struct Case {
    std::vector<std::string> args;
    int exit;
    std::string says;
  } cases[] = {
      {{"create", "--name", "alice"}, 1, "already exists"},
      {{"create"}, 2, "--name"},
      {{"create", "--name", "bad name"}, 2, "must be 1-64 characters"},
      {{"create", "--name", "x", "--bogus"}, 2, "unexpected argument '--bogus'"},
      {{"revoke", "nobody"}, 1, "no key named 'nobody'"},
      {{"revoke"}, 2, "exactly one NAME"},
      {{"list", "extra"}, 2, "no arguments"},
      {{"frobnicate"}, 2, "unknown subcommand"},
      {{}, 2, "missing subcommand"},
  };
  for (const Case& c : cases) {
    const CommandResult r = keys(db_.url(), c.args);
    std::string label = "origin keys";
    for (const auto& a : c.args) label += " " + a;
    ASSERT_TRUE(r.exit.has_value()) << label;
    EXPECT_EQ(r.exit->code, c.exit) << label << ": " << r.describe();
    EXPECT_TRUE(r.out.empty()) << label << ": " << r.describe();
    EXPECT_NE(r.err.find(c.says), std::string::npos) << label << ": " << r.describe();
    // One line, plus the usage for usage errors.
    EXPECT_EQ(r.err.substr(0, r.err.find('\n')).find("origin keys"), 0u) << label;
  }
  // A second revoke is not an error.
  EXPECT_EQ(keys(db_.url(), {"revoke", "bob"}).exit->code, 0);
  const CommandResult again = keys(db_.url(), {"revoke", "bob"});
  EXPECT_EQ(again.exit->code, 0) << again.describe();
  EXPECT_NE(again.err.find("already revoked"), std::string::npos) << again.describe();
}

TEST_F(Access, EveryManagementEndpointNeedsTheCreatorsKeyOrAnAdminKey) {
  const std::string admin = origin_.admin_key();
  ASSERT_FALSE(admin.empty());
  const std::string carol = create_key(db_.url(), "carol");
  ASSERT_EQ(keys(db_.url(), {"revoke", "carol"}).exit->code, 0);
  const std::string code = create_link(anonymous_, bearer(alice_), "https://example.com/alice");
  ASSERT_FALSE(code.empty());

  for (const Endpoint& e : kManagement) {
    const std::string label = e.method + " /api/links/{code}" + e.path_suffix;
    struct Refusal {
      const char* who;
      Headers headers;
      int status;
      const char* error;
    } refusals[] = {
        {"no key", {}, 401, "unauthorized"},
        {"revoked key", bearer(carol), 401, "unauthorized"},
        {"revoked key as X-Api-Key", x_api_key(carol), 401, "unauthorized"},
        {"unknown key", bearer("shk_" + std::string(43, 'A')), 401, "unauthorized"},
        {"junk", bearer("password"), 401, "unauthorized"},
        {"another user's key", bearer(bob_), 403, "forbidden"},
        {"another user's key as X-Api-Key", x_api_key(bob_), 403, "forbidden"},
    };
    for (const Refusal& r : refusals) {
      const Response res = call(anonymous_, e, code, r.headers);
      EXPECT_TRUE(IsApiError(res, r.status, r.error, std::nullopt)) << label << " with " << r.who;
      if (r.status == 401) {
        EXPECT_EQ(res.header("www-authenticate").rfind("Bearer", 0), 0u)
            << label << " with " << r.who << ": " << res.header("www-authenticate");
      }
    }
    // The creator and an admin may (DELETE only once: the admin re-enables).
    const Response own = call(anonymous_, e, code, x_api_key(alice_));
    EXPECT_EQ(own.status, 200) << label << " by its creator: " << own.summary();
    const Response by_admin = call(anonymous_, e, code, bearer(admin));
    EXPECT_EQ(by_admin.status, 200) << label << " by an admin: " << by_admin.summary();
  }
  // Refusals changed nothing; the allowed PATCH and DELETE did.
  const Response link = anonymous_.get("/api/links/" + code, bearer(alice_));
  EXPECT_EQ(JsonBody(link.body).integer("status"), 302);
  EXPECT_EQ(JsonBody(link.body).boolean("disabled"), true);
  // An unknown code is still 404 for a valid key, 401 without.
  EXPECT_EQ(anonymous_.get("/api/links/nosuchcode", bearer(bob_)).status, 404);
  EXPECT_EQ(anonymous_.get("/api/links/nosuchcode").status, 401);
}

TEST_F(Access, CreatingNeedsAValidKeyAndRedirectsNeedNone) {
  const std::string body = R"({"url":"https://example.com/k"})";
  EXPECT_TRUE(IsApiError(anonymous_.request("POST", "/api/links", body, kJsonType), 401,
                         "unauthorized", std::nullopt));
  EXPECT_TRUE(IsApiError(anonymous_.request("POST", "/shorten", body, kJsonType), 401,
                         "unauthorized", std::nullopt));
  EXPECT_TRUE(IsApiError(anonymous_.request("POST", "/api/links", body,
                                            with_json(bearer("shk_" + std::string(43, 'z')))),
                         401, "unauthorized", std::nullopt));
  const Response made = anonymous_.request("POST", "/shorten", body, with_json(x_api_key(bob_)));
  ASSERT_EQ(made.status, 201) << made.summary();
  const std::string code = JsonBody(made.body).str("code").value_or("");
  EXPECT_EQ(query_text(db_.url(),
                       "SELECT k.name FROM links l JOIN api_keys k"
                       " ON k.id = l.owner_key_id WHERE l.code = '" +
                           code + "'"),
            "bob\n");
  const Response redirect = anonymous_.get("/" + code);
  EXPECT_EQ(redirect.status, 307) << redirect.summary();
  EXPECT_EQ(redirect.header("location"), "https://example.com/k");
}

TEST(AccessOpenMode, AnyoneCreatesAndOnlyAdminsManageKeylessLinks) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"OPEN_SHORTEN", "true"}});
  ASSERT_TRUE(origin.wait_ready());
  const std::string alice = create_key(db.url(), "alice");
  HttpClient anonymous = origin.anonymous_client();

  const Response made =
      anonymous.post_json("/api/links", R"({"url":"https://example.com/open","alias":"open1"})");
  ASSERT_EQ(made.status, 201) << made.summary();
  EXPECT_EQ(query_text(db.url(), "SELECT owner_key_id IS NULL FROM links WHERE code = 'open1'"),
            "t\n");
  EXPECT_EQ(anonymous.get("/open1").status, 307);
  EXPECT_EQ(anonymous.get("/api/links/open1").status, 401);
  EXPECT_EQ(anonymous.get("/api/links/open1", bearer(alice)).status, 403);
  EXPECT_EQ(anonymous.get("/api/links/open1", bearer(origin.admin_key())).status, 200);
  // A key may still be given; it then owns the link. A bad key is refused,
  // not ignored: its sender meant to be someone.
  const std::string owned = create_link(anonymous, bearer(alice), "https://example.com/mine");
  EXPECT_EQ(anonymous.get("/api/links/" + owned, bearer(alice)).status, 200);
  EXPECT_EQ(anonymous
                .request("POST", "/api/links", R"({"url":"https://example.com/x"})",
                         with_json(bearer("shk_" + std::string(43, 'q'))))
                .status,
            401);
}

// Polls until `key` gets 401 from `client`; returns how long that took.
std::optional<std::chrono::milliseconds> time_until_refused(HttpClient& client,
                                                            const std::string& path,
                                                            const std::string& key,
                                                            Clock::time_point since,
                                                            std::chrono::milliseconds limit) {
  while (Clock::now() - since < limit) {
    if (client.get(path, bearer(key)).status == 401) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since);
    }
    std::this_thread::sleep_for(5ms);
  }
  return std::nullopt;
}

TEST(AccessRevocation, ARevokedKeyStopsWorkingOnEveryInstanceWithinASecond) {
  TestDatabase db;
  // A long TTL, so only the NOTIFY can explain a quick stop.
  const Environment env = {{"API_KEY_CACHE_TTL_MS", "60000"}};
  OriginProcess a(db.url(), env);
  OriginProcess b(db.url(), env);
  ASSERT_TRUE(a.wait_ready() && b.wait_ready());
  const std::string dave = create_key(db.url(), "dave");
  HttpClient ca = a.anonymous_client();
  HttpClient cb = b.anonymous_client();
  const std::string code = create_link(ca, bearer(dave), "https://example.com/dave");
  const std::string path = "/api/links/" + code;
  ASSERT_EQ(ca.get(path, bearer(dave)).status, 200);  // cached on both
  ASSERT_EQ(cb.get(path, bearer(dave)).status, 200);

  const auto revoked_at = Clock::now();
  const CommandResult r = keys(db.url(), {"revoke", "dave"});
  ASSERT_TRUE(r.exit && r.exit->success()) << r.describe();
  const auto on_a = time_until_refused(ca, path, dave, revoked_at, 5s);
  const auto on_b = time_until_refused(cb, path, dave, revoked_at, 5s);
  ASSERT_TRUE(on_a.has_value()) << "instance A still accepts the revoked key after 5 s";
  ASSERT_TRUE(on_b.has_value()) << "instance B still accepts the revoked key after 5 s";
  // From the start of the CLI run (a process start and a connection included).
  EXPECT_LT(*on_a, 1000ms);
  EXPECT_LT(*on_b, 1000ms);
  std::cout << "revocation took effect after " << on_a->count() << " ms (A), " << on_b->count()
            << " ms (B), counted from the start of `origin keys revoke` (" << r.elapsed.count()
            << " ms)\n";
  EXPECT_EQ(ca.request("POST", "/api/links", R"({"url":"https://example.com/no"})",
                       with_json(bearer(dave)))
                .status,
            401);
}

TEST(AccessRevocation, WithoutNotificationsTheCacheTtlBoundsARevocation) {
  TestDatabase db;
  constexpr auto kTtl = 2000ms;
  OriginProcess origin(db.url(), {{"API_KEY_CACHE_TTL_MS", std::to_string(kTtl.count())}});
  ASSERT_TRUE(origin.wait_ready());
  const std::string erin = create_key(db.url(), "erin");
  HttpClient client = origin.anonymous_client();
  const std::string code = create_link(client, bearer(erin), "https://example.com/erin");
  const std::string path = "/api/links/" + code;
  // As if the NOTIFY were lost: the revocation arrives unannounced.
  query_text(db.url(), "ALTER TABLE api_keys DISABLE TRIGGER api_keys_notify");
  ASSERT_EQ(client.get(path, bearer(erin)).status, 200);
  const auto cached_at = Clock::now();
  query_text(db.url(), "UPDATE api_keys SET revoked_at = now() WHERE name = 'erin'");
  const auto revoked_at = Clock::now();
  const Response soon = client.get(path, bearer(erin));
  if (Clock::now() - cached_at < kTtl - 200ms) {
    EXPECT_EQ(soon.status, 200) << "within the TTL the cached answer is used (no lookup)";
  }
  const auto refused = time_until_refused(client, path, erin, revoked_at, kTtl + 3s);
  ASSERT_TRUE(refused.has_value()) << "the revoked key worked beyond the TTL";
  EXPECT_LE(*refused, kTtl + 500ms);
}

TEST(AccessLogs, KeysNeverAppearInLogsMetricsOrErrorBodies) {
  TestDatabase db;
  std::string origin_log;
  std::vector<std::string> all_keys;
  {
    OriginProcess origin(db.url(), {{"RATE_LIMIT_CREATE_PER_KEY_PER_MIN", "3"}});
    ASSERT_TRUE(origin.wait_ready());
    const std::string frank = create_key(db.url(), "frank");
    const std::string gina = create_key(db.url(), "gina");
    const std::string henry = create_key(db.url(), "henry");
    ASSERT_EQ(keys(db.url(), {"revoke", "henry"}).exit->code, 0);
    const std::string never_issued = "shk_" + std::string(43, 'N');
    all_keys = {frank, gina, henry, never_issued, origin.admin_key()};
    HttpClient c = origin.anonymous_client();
    const std::string code = create_link(c, bearer(frank), "https://example.com/f");
    std::vector<Response> answers;
    // Success, 401 (revoked, unknown), 403, 404, 405, 415, 422, 429 and a
    // malformed body, each with a key attached.
    for (const std::string& key : all_keys) {
      for (const Headers& h : {bearer(key), x_api_key(key)}) {
        answers.push_back(c.get("/api/links/" + code, h));
        answers.push_back(c.get("/api/links/zzzzzz", h));
        answers.push_back(c.request("PUT", "/api/links/" + code, "", h));
        answers.push_back(c.request("POST", "/api/links", "{}", h));
        answers.push_back(c.request("POST", "/api/links", "{", with_json(h)));
        answers.push_back(c.request("POST", "/api/links", R"({"url":"nope"})", with_json(h)));
        for (int i = 0; i < 4; ++i) {
          answers.push_back(
              c.request("POST", "/api/links", R"({"url":"https://example.com/n"})", with_json(h)));
        }
        answers.push_back(c.get("/" + code, h));
      }
    }
    answers.push_back(c.get("/metrics"));
    bool saw_429 = false;
    for (const Response& r : answers) {
      saw_429 = saw_429 || r.status == 429;
      for (const std::string& key : all_keys) {
        EXPECT_EQ(r.body.find(key.substr(4)), std::string::npos) << "a body quotes a key";
        for (const auto& [name, value] : r.headers) {
          EXPECT_EQ(value.find(key.substr(4)), std::string::npos) << "header " << name;
        }
      }
    }
    EXPECT_TRUE(saw_429) << "the per-key limit of 3 was reached";
    origin.process().terminate(10s);
    origin_log = read_text(origin.log_path());
  }
  ASSERT_FALSE(origin_log.empty());
  for (const std::string& key : all_keys) {
    // Any 12 consecutive characters of the secret part would be a leak.
    for (std::size_t at = 4; at + 12 <= key.size(); at += 6) {
      EXPECT_EQ(origin_log.find(key.substr(at, 12)), std::string::npos)
          << "the origin log holds part of a key";
    }
  }
}

}  // namespace
}  // namespace integration
