// The nginx edge end to end: links created through the real origin's API (and
// a few written straight into PostgreSQL), read back from the database,
// rendered by the exporter library, served by a real nginx from
// nginx/edge.conf.template, and compared request by request with the origin.

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "core/redirect.h"
#include "exporter/bundle.h"
#include "exporter/bundle_writer.h"
#include "exporter/edge_config.h"
#include "exporter/nginx_map.h"
#include "integration/support/http_client.h"
#include "integration/support/nginx_process.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;

// A fresh folder under $TMPDIR that nginx's workers (nobody, when the tests
// run as root) can enter; removed when destroyed unless the test failed.
class TempDir {
 public:
  TempDir() { path_ = make_nginx_readable_dir("edge"); }
  ~TempDir() {
    if (::testing::Test::HasFailure()) {
      std::cerr << "kept " << path_ << "\n";
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A real nginx serving nginx/edge.conf.template with the export in
// `export_dir`, proxying misses to 127.0.0.1:`origin_port`. The constructor
// runs `nginx -t` first and throws if it fails or prints any warning, then
// starts nginx and waits until /_edge/version answers `version`.
class NginxEdge {
 public:
  NginxEdge(const std::string& dir, const std::string& export_dir, uint16_t origin_port,
            int max_age, const std::string& version)
      : dir_(dir), port_(free_port()) {
    std::filesystem::create_directories(dir_ + "/tmp");
    exporter::EdgeConfigParams params;
    params.prefix = dir_;
    params.worker_processes = "1";
    params.listen = "127.0.0.1:" + std::to_string(port_);
    params.origins = {"127.0.0.1:" + std::to_string(origin_port)};
    params.export_dir = export_dir;
    params.visit_log_format = std::string(PROJECT_SOURCE_DIR) + "/nginx/visit_log.conf";
    params.visit_log = visit_log();
    params.redirect_max_age = max_age;
    write_text(conf(), exporter::render_edge_config(
                           read_text(std::string(PROJECT_SOURCE_DIR) + "/nginx/edge.conf.template"),
                           params));

    const CommandResult test = run_command(
        {kNginx, "-t", "-q", "-p", dir_ + "/", "-e", dir_ + "/startup.log", "-c", conf()},
        inherited_environment(), 120s);
    if (!test.exit || !test.exit->success() || !test.err.empty() || !test.out.empty()) {
      throw std::runtime_error("nginx -t did not pass silently: " + test.describe());
    }
    test_elapsed_ = test.elapsed;

    process_.emplace(dir_, conf(), port_, version);
  }

  NginxEdge(const NginxEdge&) = delete;
  NginxEdge& operator=(const NginxEdge&) = delete;

  uint16_t port() const { return port_; }
  std::string conf() const { return dir_ + "/nginx.conf"; }
  std::string visit_log() const { return dir_ + "/visits.jsonl"; }
  std::string error_log() const { return tail_of_file(dir_ + "/error.log"); }
  std::chrono::milliseconds test_elapsed() const { return test_elapsed_; }
  HttpClient client() const { return HttpClient("127.0.0.1", port_); }

 private:
  std::string dir_;
  uint16_t port_;
  std::chrono::milliseconds test_elapsed_{0};
  std::optional<NginxProcess> process_;
};

// What a differential compares.
struct Answer {
  int status = 0;
  std::string location;
  std::string cache_control;

  bool operator==(const Answer& other) const {
    return status == other.status && location == other.location &&
           cache_control == other.cache_control;
  }
};

Answer answer_of(const Response& r) {
  return Answer{r.status, r.header("location"), r.header("cache-control")};
}

std::ostream& operator<<(std::ostream& out, const Answer& a) {
  return out << a.status << " Location[" << a.location << "] Cache-Control[" << a.cache_control
             << "]";
}

std::vector<exporter::ExportEntry> exportable_links(const std::string& database_url) {
  pqxx::connection connection(database_url);
  pqxx::read_transaction tx(connection);
  std::vector<exporter::ExportEntry> entries;
  for (const auto& row :
       tx.exec("SELECT code, target, status, forward_query FROM links WHERE NOT disabled"
               " AND (expires_at IS NULL OR expires_at > now()) ORDER BY code")) {
    exporter::ExportEntry entry;
    entry.code = row[0].as<std::string>();
    entry.target = row[1].as<std::string>();
    entry.status = row[2].as<int>();
    entry.forward_query = row[3].as<bool>();
    entries.push_back(std::move(entry));
  }
  return entries;
}

// Visits the edge logged itself, by code.
std::map<std::string, int> edge_visits(const std::string& path) {
  std::map<std::string, int> counts;
  std::istringstream lines(read_text(path));
  std::string line;
  while (std::getline(lines, line)) {
    const JsonBody body(line);
    EXPECT_EQ(body.str("src"), "edge") << line;
    // $visit_code keeps the request's case; the ingester lowercases it.
    std::string code = body.str("code").value_or("?");
    for (char& c : code) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ++counts[code];
  }
  return counts;
}

std::string random_query(std::mt19937& rng) {
  static const std::vector<std::string> kPieces = {
      "a=1",   "a=2",     "b=x",       "c",       "c=",        "=",       "=v",       "x=1",
      "flag",  "y=%41",   "%7e=1",     "utm=tv",  "q=a+b",     "p=a/b?c", "k=$host",  "d=${x}",
      "t='1'", "s=(x)*!", "e=%",       "e=%4",    "e=%zz",     "z=\"q\"", "u=%C3%BC", "w=a%20b",
      "l=<x>", "m={y}",   "n=|",       "o=^",     "g=`",       "h=[1]",   "bs=\\",    "semi=a;b",
      "at=@:", "tilde=~", "comma=1,2", "hash=#x", "r=\xc3\xbc"};
  std::string query;
  const int count = 1 + static_cast<int>(rng() % 4);
  for (int k = 0; k < count; ++k) {
    if (k > 0) query += rng() % 6 == 0 ? "&&" : "&";
    query += kPieces[rng() % kPieces.size()];
  }
  if (rng() % 10 == 0) query = "&" + query;
  if (rng() % 10 == 0) query += "&";
  return query;
}

std::string mixed_case(std::string code, std::mt19937& rng) {
  for (char& c : code) {
    if (c >= 'a' && c <= 'z' && rng() % 2 == 0) c = static_cast<char>(c - 'a' + 'A');
  }
  return code;
}

class EdgeDifferential : public ::testing::Test {
 protected:
  static constexpr int kMaxAge = 45;

  std::string create(const std::string& url, int status, bool forward_query,
                     const std::string& alias = "") {
    std::string json = "{\"url\":" + core::json_quote(url) +
                       ",\"status\":" + std::to_string(status) +
                       ",\"forward_query\":" + (forward_query ? "true" : "false");
    if (!alias.empty()) json += ",\"alias\":" + core::json_quote(alias);
    json += "}";
    const Response r = client_.post_json("/api/links", json);
    if (r.status == 201) return JsonBody(r.body).str("code").value_or("");
    if (r.status != 422) throw std::runtime_error("POST " + json + " -> " + r.summary());
    ++refused_;
    return "";
  }

  TestDatabase db_;
  OriginProcess origin_{db_.url(), {{"REDIRECT_MAX_AGE", std::to_string(kMaxAge)}}};
  HttpClient client_ = origin_.client();
  int refused_ = 0;
};

TEST_F(EdgeDifferential, EdgeAnswersExactlyLikeTheOriginForEveryLinkAndQuery) {
  const int statuses[] = {301, 302, 307, 308};
  // 7 target shapes x 4 statuses x 2 forwarding settings, every combination.
  for (int i = 0; i < 1050; ++i) {
    const std::string n = std::to_string(i);
    const std::string shapes[] = {
        "https://example.com/p/" + n,
        "https://example.com/p/" + n + "?a=" + n + "&b=2",
        "https://example.com/p/" + n + "#sec" + n,
        "https://example.com/p/" + n + "?x=1#y",
        "http://host" + n + ".example.org:8080/deep/path/" + n + "/",
        "https://example.com/p/" + n + "?",
        "https://example.com/q?flag&c=" + n + "&",
    };
    create(shapes[i % 7], statuses[i % 4], (i / 4) % 2 == 0);
  }
  const std::vector<std::string> hostile = {
      "https://example.com/a\"b",
      "https://example.com/a\\b",
      "https://example.com/a\\nb",
      "https://example.com/a\r\nSet-Cookie: x=1",
      "https://example.com/a;b;c",
      "https://example.com/{x}/}{",
      "https://example.com/?q=$host",
      "https://example.com/$http_x_foo",
      "https://example.com/${uri}",
      "https://example.com/$1",
      "https://example.com/p#frag#more",
      "https://example.com/#",
      "https://example.com/'single'",
      "https://example.com/a%20b%zz%4",
      "https://example.com/~user/(x)*!+,=:@",
      "https://b\xc3\xbc"
      "cher.example/stra\xc3\x9f"
      "e?q=\xc3\xa9",
      "https://xn--bcher-kva.example/",
      "HTTPS://EXAMPLE.COM:443/Upper",
      "https://example.com/a b",
      "https://example.com/" + std::string(2000, 'l'),
      "https://example.com/" + std::string(2100, 'l'),
      "javascript:alert(1)",
  };
  for (const std::string& url : hostile) {
    for (const bool forward : {false, true}) create(url, forward ? 307 : 301, forward);
  }
  for (const std::string alias : {"default", "include", "hostnames", "volatile", "MiXeD-Case_1"}) {
    create("https://example.com/alias/" + alias, 302, true, alias);
  }
  EXPECT_GT(refused_, 0) << "the URL policy refuses some hostile targets";
  // Targets the API never stores, written straight into the table: the
  // exporter must leave them to the origin.
  {
    pqxx::connection connection(db_.url());
    pqxx::work tx(connection);
    tx.exec(
        "INSERT INTO links (code, target, status, forward_query) VALUES"
        " ('sql-quote', 'https://example.com/a\"b', 307, true),"
        " ('sql-backslash', 'https://example.com/a\\b', 302, false),"
        " ('sql-space', 'https://example.com/a b', 301, true),"
        " ('sql-tab', 'https://example.com/a' || chr(9) || 'b', 308, false)");
    tx.commit();
  }

  const std::vector<exporter::ExportEntry> entries = exportable_links(db_.url());
  ASSERT_GE(entries.size(), 1000u);
  // What the origin's API reports is what the exporter reads.
  std::map<std::string, const exporter::ExportEntry*> entry_of;
  for (const exporter::ExportEntry& e : entries) entry_of[e.code] = &e;
  for (const exporter::ExportEntry& e : entries) {
    const Response r = client_.get("/api/links/" + e.code);
    ASSERT_EQ(r.status, 200) << r.summary();
    EXPECT_EQ(JsonBody(r.body).str("target"), e.target) << e.code;
  }

  TempDir dir;
  exporter::BundleOptions options;
  options.version = "it-1";
  options.created_at = "2026-11-27T20:00:00.000Z";
  options.selection = {{"mode", "test"}};
  options.cloudflare.source_host = "sho.example.test";
  options.cloudfront.redirect_max_age = kMaxAge;
  const exporter::Bundle bundle = exporter::render_bundle(entries, options);
  const std::string export_dir = exporter::write_bundle(bundle, dir.path() + "/exports");

  std::map<std::string, std::string> excluded;  // nginx output only
  for (const exporter::Exclusion& x : bundle.exclusions) {
    if (x.output == "nginx" || x.output == "all") excluded[x.code] = x.reason;
  }
  EXPECT_EQ(excluded["sql-quote"], "quote_in_target");
  EXPECT_EQ(excluded["sql-backslash"], "backslash_in_target");
  EXPECT_EQ(excluded["sql-space"], "control_or_space_in_target");
  EXPECT_EQ(excluded["sql-tab"], "control_or_space_in_target");
  for (const exporter::ExportEntry& e : entries) {
    if (e.target.find('$') != std::string::npos) {
      EXPECT_EQ(excluded[e.code], "dollar_in_target") << e.target;
    }
  }
  EXPECT_EQ(bundle.nginx.entries + excluded.size(), entries.size());

  NginxEdge edge(dir.path() + "/nginx", export_dir, origin_.port(), kMaxAge, "it-1");
  HttpClient edge_client = edge.client();
  // The same key as client_, so API paths proxied to the origin compare alike.
  edge_client.set_default_headers({{"Authorization", "Bearer " + origin_.admin_key()}});

  std::mt19937 rng(20261127);
  std::map<std::string, int> expected_visits;
  std::size_t requests = 0;
  std::size_t answered_at_edge = 0;
  auto compare = [&](const std::string& method, const std::string& target,
                     const Headers& edge_headers, const std::string& code) {
    const Answer at_edge = answer_of(edge_client.request(method, target, "", edge_headers));
    const Answer at_origin = answer_of(client_.request(method, target));
    ++requests;
    EXPECT_EQ(at_edge, at_origin) << method << " " << target;
    if (code.empty() || excluded.count(code) != 0) return;
    const exporter::ExportEntry* entry = entry_of.at(code);
    const std::size_t question = target.find('?');
    const std::string query = question == std::string::npos ? "" : target.substr(question + 1);
    if (exporter::edge_location(exporter::nginx_map_value(*entry), query)) {
      ++expected_visits[code];
      ++answered_at_edge;
    }
  };

  const Headers hostile_headers = {
      {"Host", "evil.example:666"},       {"X-Forwarded-Host", "evil.example"},
      {"X-Forwarded-Proto", "http"},      {"Forwarded", "host=evil.example;proto=http"},
      {"X-Original-URL", "/other"},       {"X-Rewrite-URL", "/other"},
      {"X-Http-Method-Override", "POST"}, {"Referer", "$host"},
      {"User-Agent", "${http_x}"}};
  int index = 0;
  for (const exporter::ExportEntry& e : entries) {
    const std::string path = "/" + (index % 3 == 0 ? mixed_case(e.code, rng) : e.code);
    compare("GET", path, {}, e.code);
    compare("GET", path + "?", {}, e.code);
    compare("GET", path + "?" + random_query(rng), {}, e.code);
    compare("GET", path + "?" + random_query(rng), index % 4 == 0 ? hostile_headers : Headers{},
            e.code);
    if (index % 5 == 0) compare("HEAD", path + "?" + random_query(rng), {}, e.code);
    if (index % 50 == 0) {
      compare("POST", path, {}, "");
      compare("GET", path + "/", {}, "");
      compare("GET", "/" + path, {}, "");
      compare("GET", path + "%20", {}, "");
      compare("GET", "/api/links/" + e.code, {}, "");
      compare("GET", path + "#x", {}, "");
      compare("GET", path + "%3Fa=1", {}, "");
      compare("GET", path + "?#", {}, e.code);
    }
    ++index;
  }
  // Not "/%2e%2e/x": nginx refuses a path above the root with 400 before any
  // configuration applies, where the origin says 404; neither is a redirect.
  for (const std::string other : {"/", "/healthz", "/nope-not-a-code", "/NOPE", "/%61bc", "/_edge",
                                  "/api/links", "/a/b", "/abc;x", "/a%2Fb"}) {
    compare("GET", other, {}, "");
  }

  // nginx writes buffered visit lines within a second (flush=1s).
  std::map<std::string, int> logged;
  for (int attempt = 0; attempt < 250; ++attempt) {
    logged = edge_visits(edge.visit_log());
    if (logged == expected_visits) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(logged, expected_visits)
      << "the edge answered exactly the requests the model says it answers";
  EXPECT_GT(answered_at_edge, requests / 3) << "most link requests are answered at the edge";
  EXPECT_LT(answered_at_edge, requests) << "some requests are left to the origin";
  std::cout << "edge differential: " << requests << " request pairs, " << answered_at_edge
            << " answered at the edge, " << bundle.nginx.entries << " map entries, "
            << excluded.size() << " excluded; nginx -t " << edge.test_elapsed().count() << " ms\n";
  EXPECT_EQ(edge.error_log().find("[warn]"), std::string::npos) << edge.error_log();
}

// Step 1 of nginx/edge.conf.template reads the raw request line: a request
// line nginx accepts but that does not read "<GET|HEAD> /<code>[?...] HTTP/"
// is proxied, and the origin answers it (and counts the visit) itself.
TEST_F(EdgeDifferential, RequestLinesOutsideTheEdgesShapeAreAnsweredByTheOrigin) {
  const std::string fixed = create("https://example.com/f", 307, false);
  const std::string appendable = create("https://example.com/a", 301, true);
  ASSERT_FALSE(fixed.empty());
  ASSERT_FALSE(appendable.empty());
  TempDir dir;
  exporter::BundleOptions options;
  options.version = "it-2";
  options.created_at = "2026-11-28T06:00:00.000Z";
  options.selection = {{"mode", "test"}};
  options.cloudflare.source_host = "sho.example.test";
  options.cloudfront.redirect_max_age = kMaxAge;
  const exporter::Bundle bundle = exporter::render_bundle(exportable_links(db_.url()), options);
  const std::string export_dir = exporter::write_bundle(bundle, dir.path() + "/exports");
  NginxEdge edge(dir.path() + "/nginx", export_dir, origin_.port(), kMaxAge, "it-2");
  HttpClient edge_client = edge.client();

  std::map<std::string, int> expected_visits;
  for (const std::string& code : {fixed, appendable}) {
    const Answer origin_plain = answer_of(client_.get("/" + code));
    ASSERT_EQ(origin_plain.status, code == fixed ? 307 : 301) << origin_plain;
    const Answer origin_query = answer_of(client_.get("/" + code + "?x=1"));
    // Answered at the edge: the fast path (no query) and location / (query).
    EXPECT_EQ(answer_of(edge_client.get("/" + code)), origin_plain) << code;
    EXPECT_EQ(answer_of(edge_client.request("HEAD", "/" + code + "?")), origin_plain) << code;
    EXPECT_EQ(answer_of(edge_client.get("/" + code + "?x=1")), origin_query) << code;
    expected_visits[code] = 3;
    // Proxied: two spaces after the method, an absolute URI (nginx passes
    // the origin its path); the origin gives the same answer.
    EXPECT_EQ(answer_of(edge_client.request("GET", " /" + code)), origin_plain) << code;
    EXPECT_EQ(answer_of(edge_client.request("GET", "http://sho.example.test/" + code)),
              origin_plain)
        << code;
  }
  std::map<std::string, int> logged;
  for (int attempt = 0; attempt < 250; ++attempt) {
    logged = edge_visits(edge.visit_log());
    if (logged == expected_visits) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(logged, expected_visits) << "only requests of the edge's shape are answered there";
  EXPECT_EQ(edge.error_log().find("[warn]"), std::string::npos) << edge.error_log();
}

// `exporter compile --all` reads the active links and writes a complete export.
TEST_F(EdgeDifferential, CompileWritesAnExportOfTheActiveLinks) {
  create("https://example.com/kept", 301, false, "kept");
  create("https://example.com/gone", 302, true, "gone");
  ASSERT_EQ(client_.request("DELETE", "/api/links/gone").status, 200);
  TempDir dir;
  Environment env = inherited_environment();
  env["DATABASE_URL"] = db_.url();
  env["PUBLIC_BASE_URL"] = "https://Sho.Example.test";
  const CommandResult run = run_command(
      {EXPORTER_BIN, "compile", "--all", "--out", dir.path(), "--version", "v1"}, env, 60s);
  ASSERT_TRUE(run.exit && run.exit->success()) << run.describe();
  EXPECT_NE(run.err.find("wrote " + dir.path() + "/v1"), std::string::npos) << run.err;
  for (const char* name : {exporter::kNginxMapFile, exporter::kVersionFile,
                           exporter::kCloudflareFixedFile, exporter::kCloudflareForwardFile,
                           exporter::kCloudFrontKvsFile, exporter::kCloudFrontFunctionFile}) {
    EXPECT_TRUE(std::filesystem::exists(dir.path() + "/v1/" + name)) << name;
  }
  const JsonBody manifest(read_text(dir.path() + "/v1/manifest.json"));
  EXPECT_EQ(manifest.str("version"), "v1");
  EXPECT_EQ(manifest.integer("input_entries"), 1) << "the disabled link is not exported";
  EXPECT_EQ(read_text(dir.path() + "/v1/" + exporter::kCloudflareFixedFile),
            "sho.example.test/kept,https://example.com/kept,301,FALSE,FALSE,FALSE,FALSE\n");
  const CommandResult again = run_command(
      {EXPORTER_BIN, "compile", "--all", "--out", dir.path(), "--version", "v1"}, env, 60s);
  EXPECT_EQ(again.exit ? again.exit->code : std::nullopt, 1) << "an existing version is kept";
}

// Values the origin would never store, rendered directly: every printable
// byte nginx could misread inside a quoted map value, and the longest value
// nginx accepts. No origin: a miss would be a 502.
TEST(EdgeMap, EveryWrittenTargetIsSentByteForByte) {
  const std::string base = "https://example.com/";
  std::vector<exporter::ExportEntry> entries;
  auto add = [&](const std::string& code, const std::string& target, int status, bool forward) {
    exporter::ExportEntry e;
    e.code = code;
    e.target = target;
    e.status = status;
    e.forward_query = forward;
    entries.push_back(e);
  };
  std::string printable;
  for (char c = '!'; c <= '~'; ++c) {
    if (c != '"' && c != '\\' && c != '$') printable.push_back(c);
  }
  add("printable", base + printable, 301, false);
  add("semicolon", base + "a;b", 302, false);
  add("braces", base + "}{", 307, false);
  add("comment", base + "#x;}", 308, false);
  add("quote-single", base + "'", 307, false);
  add("include", base + "include", 307, false);
  add("default", base + "default", 307, false);
  add("hostnames", base + "hostnames", 307, false);
  add("volatile", base + "volatile", 307, false);
  add("escapes", base + "%5Cn%5Cr%5Ct%22", 307, false);
  add("-leading-dash", base + "dash", 301, false);
  add("_leading_underscore", base + "underscore", 302, false);
  add("longest", base + std::string(exporter::kMaxNginxQuotedToken - 5 - base.size(), 'x'), 307,
      false);
  add("too-long", base + std::string(exporter::kMaxNginxQuotedToken - 4 - base.size(), 'x'), 307,
      false);
  add("dollar", base + "$host", 307, false);
  for (int i = 0; i < 2000; ++i)
    add("filler" + std::to_string(i), base + std::to_string(i), 307, true);

  exporter::BundleOptions options;
  options.version = "literal-1";
  options.created_at = "2026-11-27T20:00:00.000Z";
  options.cloudflare.source_host = "sho.example.test";
  const exporter::Bundle bundle = exporter::render_bundle(entries, options);
  std::set<std::string> excluded;
  for (const exporter::Exclusion& x : bundle.exclusions) {
    if (x.output == "nginx") excluded.insert(x.code);
  }
  EXPECT_EQ(excluded, (std::set<std::string>{"dollar", "too-long"}));

  TempDir dir;
  const std::string export_dir = exporter::write_bundle(bundle, dir.path() + "/exports");
  NginxEdge edge(dir.path() + "/nginx", export_dir, free_port(), 90, "literal-1");
  HttpClient client = edge.client();
  for (const exporter::ExportEntry& e : entries) {
    if (excluded.count(e.code) != 0 || e.code.rfind("filler", 0) == 0) continue;
    const Response r = client.get("/" + e.code + "?a=1");
    EXPECT_EQ(r.status, e.status) << e.code;
    EXPECT_EQ(r.header("location"), e.target) << e.code;
    EXPECT_EQ(r.header("cache-control"), "private, max-age=90") << e.code;
  }
  const Response filler = client.get("/FILLER1999?utm=1");
  EXPECT_EQ(filler.header("location"), base + "1999?utm=1");
  EXPECT_EQ(client.get("/dollar").status, 502) << "excluded: proxied to the (absent) origin";
}

// The CloudFront Function, run by node against the KeyValueStore import file
// through a stand-in for the `cloudfront` module: whatever it answers is the
// origin's answer; everything else it passes on.
TEST(CloudFrontFunction, AnswersOnlyWithTheOriginsLocation) {
  const CommandResult version =
      run_command({"/usr/bin/node", "--version"}, inherited_environment(), 10s);
  ASSERT_TRUE(version.exit && version.exit->success())
      << "node is needed to run the CloudFront Function (Debian package nodejs): "
      << version.describe();

  std::vector<exporter::ExportEntry> entries;
  const std::string shapes[] = {"https://e.com/p", "https://e.com/p?a=1", "https://e.com/p#f",
                                "https://e.com/?flag&b=2#x"};
  const int statuses[] = {301, 302, 307, 308};
  for (int i = 0; i < 32; ++i) {
    exporter::ExportEntry e;
    e.code = "cf" + std::to_string(i);
    e.target = shapes[i % 4];
    e.status = statuses[(i / 4) % 4];
    e.forward_query = i % 2 == 0;
    entries.push_back(e);
  }
  exporter::BundleOptions options;
  options.version = "cf-1";
  options.created_at = "2026-11-27T20:00:00.000Z";
  options.cloudflare.source_host = "sho.example.test";
  options.cloudfront.kvs_id = "store-1";
  options.cloudfront.redirect_max_age = 45;
  const exporter::Bundle bundle = exporter::render_bundle(entries, options);
  TempDir dir;
  const std::string export_dir = exporter::write_bundle(bundle, dir.path() + "/exports");
  const std::string module_dir = dir.path() + "/node_modules/cloudfront";
  std::filesystem::create_directories(module_dir);
  write_text(module_dir + "/package.json",
             R"({"name":"cloudfront","type":"module","main":"index.js"})");
  write_text(module_dir + "/index.js", R"JS(import { readFileSync } from 'node:fs';
const items = JSON.parse(readFileSync(process.env.KVS_FILE, 'utf8')).data;
const data = new Map(items.map((item) => [item.key, item.value]));
export default {
  kvs: (id) => ({
    get: async (key) => {
      if (id !== process.env.KVS_ID) throw new Error('no such store ' + id);
      if (!data.has(key)) throw new Error('key not found');
      return data.get(key);
    },
  }),
};
)JS");
  write_text(dir.path() + "/function.mjs",
             read_text(export_dir + "/cloudfront_function.js") + "\nexport { handler };\n");
  write_text(dir.path() + "/run.mjs", R"JS(import { readFileSync } from 'node:fs';
import { handler } from './function.mjs';
const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = [];
for (const c of cases) {
  const request = { method: c.method, uri: c.uri, querystring: c.querystring, headers: {} };
  const r = await handler({ request });
  if (r === request) {
    out.push({ passed: true });
  } else {
    out.push({ status: r.statusCode, text: r.statusDescription,
               location: r.headers.location.value, cache: r.headers['cache-control'].value });
  }
}
console.log(JSON.stringify(out));
)JS");

  struct Case {
    std::string method;
    std::string code;  // as in the path
    std::string query;
    const exporter::ExportEntry* entry;
  };
  std::vector<Case> cases;
  std::mt19937 rng(45);
  for (const exporter::ExportEntry& e : entries) {
    for (const std::string& query :
         {std::string(), std::string("&&"), random_query(rng), random_query(rng)}) {
      cases.push_back({"GET", e.code, query, &e});
    }
    cases.push_back({"HEAD", mixed_case(e.code, rng), "", &e});
    cases.push_back({"POST", e.code, "", nullptr});
  }
  cases.push_back({"GET", "not-exported", "", nullptr});
  cases.push_back({"GET", "healthz", "", nullptr});
  // The querystring object CloudFront hands over: the raw pieces, parsed.
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartArray();
  for (const Case& c : cases) {
    w.StartObject();
    w.Key("method");
    w.String(c.method.c_str());
    w.Key("uri");
    w.String(("/" + c.code).c_str());
    w.Key("querystring");
    w.StartObject();
    std::istringstream pieces(c.query);
    std::string piece;
    while (std::getline(pieces, piece, '&')) {
      if (piece.empty()) continue;
      const std::size_t eq = piece.find('=');
      w.Key(piece.substr(0, eq).c_str());
      w.StartObject();
      w.Key("value");
      w.String(eq == std::string::npos ? "" : piece.substr(eq + 1).c_str());
      w.EndObject();
    }
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  write_text(dir.path() + "/cases.json", std::string(buffer.GetString(), buffer.GetSize()));

  Environment env = inherited_environment();
  env["KVS_FILE"] = export_dir + "/cloudfront_kvs.json";
  env["KVS_ID"] = "store-1";
  const CommandResult run =
      run_command({"/usr/bin/node", dir.path() + "/run.mjs", dir.path() + "/cases.json"}, env, 60s);
  ASSERT_TRUE(run.exit && run.exit->success()) << run.describe();
  rapidjson::Document results;
  results.Parse(run.out.c_str());
  ASSERT_TRUE(results.IsArray()) << run.out;
  ASSERT_EQ(results.Size(), cases.size());
  std::size_t answered = 0;
  for (rapidjson::SizeType i = 0; i < results.Size(); ++i) {
    const Case& c = cases[i];
    const auto& r = results[i];
    const std::string label = c.method + " /" + c.code + "?" + c.query;
    if (r.HasMember("passed")) {
      if (c.entry != nullptr && !c.entry->forward_query) {
        ADD_FAILURE() << label << ": a link that ignores the query is answered";
      }
      if (c.entry != nullptr && c.query.find_first_not_of('&') == std::string::npos) {
        ADD_FAILURE() << label << ": a request without query pieces is answered";
      }
      continue;
    }
    ++answered;
    ASSERT_NE(c.entry, nullptr) << label << " answered";
    EXPECT_EQ(r["status"].GetInt(), c.entry->status) << label;
    EXPECT_EQ(std::string(r["location"].GetString()),
              core::build_location(c.entry->target, c.query, c.entry->forward_query))
        << label;
    EXPECT_EQ(std::string(r["cache"].GetString()), "private, max-age=45") << label;
    EXPECT_FALSE(std::string(r["text"].GetString()).empty()) << label;
  }
  EXPECT_GT(answered, cases.size() / 3);
}

}  // namespace
}  // namespace integration

namespace integration {
namespace {

// `exporter compile` exports hot, stable links only: clicks in the window at
// or above the threshold (or among the top K), unchanged for the stability
// window, not disabled, not expiring within the horizon.
TEST(ExportSelection, CompileExportsHotStableLinksOnly) {
  TestDatabase db;
  const std::string sql =
      "INSERT INTO links (code, target, updated_at, created_at, expires_at, disabled) VALUES"
      " ('hot', 'https://example.com/hot', now() - interval '2 hours', now() - interval '2 hours',"
      "  NULL, false),"
      " ('cold', 'https://example.com/cold', now() - interval '2 hours', now() - interval '2 "
      "hours',"
      "  NULL, false),"
      " ('fresh', 'https://example.com/fresh', now(), now(), NULL, false),"
      " ('expiring', 'https://example.com/exp', now() - interval '2 hours',"
      "  now() - interval '2 hours', now() + interval '1 hour', false),"
      " ('off', 'https://example.com/off', now() - interval '2 hours', now() - interval '2 hours',"
      "  NULL, true),"
      " ('stale-hot', 'https://example.com/stale', now() - interval '2 hours',"
      "  now() - interval '2 hours', NULL, false),"
      " ('top', 'https://example.com/top', now() - interval '2 hours', now() - interval '2 hours',"
      "  NULL, false)";
  query_text(db.url(), sql);  // the touch trigger runs on UPDATE only
  // Clicks: this hour for most; 'stale-hot' only two days ago.
  query_text(db.url(),
             "INSERT INTO visit_counts_hourly (code, hour, source, humans, bots) VALUES"
             " ('hot', date_trunc('hour', now()), 'origin', 150, 10),"
             " ('cold', date_trunc('hour', now()), 'origin', 3, 0),"
             " ('fresh', date_trunc('hour', now()), 'edge', 500, 0),"
             " ('expiring', date_trunc('hour', now()), 'origin', 500, 0),"
             " ('off', date_trunc('hour', now()), 'origin', 500, 0),"
             " ('stale-hot', date_trunc('hour', now() - interval '2 days'), 'origin', 9000, 0),"
             " ('top', date_trunc('hour', now()), 'origin', 60, 0)");
  TempDir dir;
  Environment env = inherited_environment();
  env["DATABASE_URL"] = db.url();
  env["EXPORT_MIN_CLICKS"] = "100";
  env["EXPORT_STABLE_S"] = "600";
  env["EXPORT_HORIZON_S"] = "86400";
  env["EXPORT_HOT_WINDOW_S"] = "3600";
  env["EXPORT_TOP_K"] = "0";
  CommandResult run =
      run_command({EXPORTER_BIN, "compile", "--out", dir.path(), "--version", "v1"}, env, 60s);
  ASSERT_TRUE(run.exit && run.exit->success()) << run.describe();
  const std::string map = read_text(dir.path() + "/v1/" + exporter::kNginxMapFile);
  auto exported_in = [](const std::string& text, const std::string& code) {
    return text.find("\n" + code + " ") != std::string::npos ||
           text.find("\\" + code + " ") != std::string::npos ||
           text.find(" " + code + " \"") != std::string::npos;
  };
  auto exported = [&](const std::string& code) { return exported_in(map, code); };
  EXPECT_TRUE(exported("hot")) << "hot and stable: 160 clicks this hour\n" << map.substr(0, 2000);
  EXPECT_FALSE(exported("cold")) << "3 clicks is below the threshold";
  EXPECT_FALSE(exported("fresh")) << "changed less than EXPORT_STABLE_S ago";
  EXPECT_FALSE(exported("expiring")) << "expires within the horizon";
  EXPECT_FALSE(exported("off")) << "disabled";
  EXPECT_FALSE(exported("stale-hot")) << "its clicks are outside the window";
  EXPECT_FALSE(exported("top")) << "60 clicks, below the threshold, and top-K is off";
  const JsonBody manifest(read_text(dir.path() + "/v1/manifest.json"));
  EXPECT_EQ(manifest.integer("input_entries"), 1);

  env["EXPORT_TOP_K"] = "2";  // the two busiest exportable codes count as hot
  run = run_command({EXPORTER_BIN, "compile", "--out", dir.path(), "--version", "v2"}, env, 60s);
  ASSERT_TRUE(run.exit && run.exit->success()) << run.describe();
  const std::string map2 = read_text(dir.path() + "/v2/" + exporter::kNginxMapFile);
  EXPECT_TRUE(exported_in(map2, "top")) << "top-K (among exportable links) admits one under "
                                           "the threshold";
  EXPECT_TRUE(exported_in(map2, "hot"));
  EXPECT_FALSE(exported_in(map2, "cold")) << "third busiest exportable link, outside the top 2";
}

}  // namespace
}  // namespace integration
