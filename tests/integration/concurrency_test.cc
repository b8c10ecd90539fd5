// Two origin instances on one database under a burst of concurrent creates,
// with custom aliases racing for the same names.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/http_client.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;

constexpr int kRequests = 10'000;
constexpr int kThreads = 16;
// Requests come in blocks of 50: the first 10 of a block race for one alias
// name (split over both instances), the other 40 ask for generated codes. That
// makes 2,000 alias requests over 200 names, each name contested 10 times at once.
constexpr int kBlock = 50;
constexpr int kAliasRequestsPerBlock = 10;
constexpr int kStatuses[] = {301, 302, 307, 308};
constexpr std::size_t kMaxExamples = 5;

struct Request {
  std::string alias;  // "" for a generated code
  std::string target;
  int status;
};

Request request_for(int i) {
  Request r;
  if (i % kBlock < kAliasRequestsPerBlock) r.alias = "race-" + std::to_string(i / kBlock);
  r.target = "https://example.com/item/" + std::to_string(i);
  r.status = kStatuses[i % 4];
  return r;
}

std::string body_for(const Request& r) {
  std::string body = R"({"url":")" + r.target + R"(","status":)" + std::to_string(r.status);
  if (!r.alias.empty()) body += R"(,"alias":")" + r.alias + R"(")";
  return body + "}";
}

struct Outcome {
  Response response;
  std::string transport_error;
};

// Runs work(i, client) for i in [0, count) on kThreads threads that start
// together; each thread has one keep-alive client per origin and request i
// goes to origin i % 2.
void run_on_both(const OriginProcess& a, const OriginProcess& b, int count,
                 const std::function<void(int, HttpClient&)>& work) {
  std::atomic<int> next{0};
  std::promise<void> go;
  std::shared_future<void> started = go.get_future().share();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      HttpClient to_a = a.client(10s);
      HttpClient to_b = b.client(10s);
      started.wait();
      for (int i = next++; i < count; i = next++) work(i, i % 2 == 0 ? to_a : to_b);
    });
  }
  go.set_value();
  for (auto& thread : threads) thread.join();
}

// Collects up to kMaxExamples descriptions of a kind of failure, and counts all.
struct Failures {
  std::size_t count = 0;
  std::string examples;
  void add(const std::string& what) {
    if (++count <= kMaxExamples) examples += "\n  " + what;
  }
};

TEST(ConcurrentCreates, TwoOriginsCreateTenThousandLinksWithoutDuplicatesOr5xx) {
  TestDatabase db;
  OriginProcess a{db.url()};
  OriginProcess b{db.url()};

  std::vector<Outcome> outcomes(kRequests);
  run_on_both(a, b, kRequests, [&](int i, HttpClient& client) {
    try {
      outcomes[i].response = client.post_json("/api/links", body_for(request_for(i)));
    } catch (const TransportError& e) {
      outcomes[i].transport_error = e.what();
    }
  });

  Failures transport, server_errors, unexpected, bad_conflicts, bad_codes, duplicates;
  std::map<std::string, int> winners_per_alias;
  std::map<std::string, int> created;  // code -> request index
  for (int i = 0; i < kRequests; ++i) {
    const Request request = request_for(i);
    const Outcome& o = outcomes[i];
    const std::string label = "#" + std::to_string(i) + " " + body_for(request) + " -> ";
    if (!o.transport_error.empty()) {
      transport.add(label + o.transport_error);
      continue;
    }
    const Response& r = o.response;
    if (r.status >= 500) server_errors.add(label + r.summary());
    if (!request.alias.empty()) winners_per_alias.emplace(request.alias, 0);
    if (r.status == 409 && !request.alias.empty()) {
      if (!IsApiError(r, 409, "alias_taken", "alias")) bad_conflicts.add(label + r.summary());
      continue;
    }
    if (r.status != 201) {
      if (r.status < 500) unexpected.add(label + r.summary());
      continue;
    }
    const std::string code = JsonBody(r.body).str("code").value_or("");
    if (!request.alias.empty()) {
      ++winners_per_alias[request.alias];
      if (code != request.alias) bad_codes.add(label + "code " + code);
    } else if (code.size() != 7) {
      bad_codes.add(label + "code " + code);
    }
    if (!created.emplace(code, i).second) {
      duplicates.add(label + "code " + code + " also created by #" + std::to_string(created[code]));
    }
  }
  EXPECT_EQ(transport.count, 0u) << "requests without an HTTP answer:" << transport.examples;
  EXPECT_EQ(server_errors.count, 0u) << "5xx answers:" << server_errors.examples;
  EXPECT_EQ(unexpected.count, 0u) << "answers other than 201, or 409 for an alias:"
                                  << unexpected.examples;
  EXPECT_EQ(bad_conflicts.count, 0u)
      << "409s that are not alias_taken on alias:" << bad_conflicts.examples;
  EXPECT_EQ(bad_codes.count, 0u) << "201s with a code other than the alias or 7 characters:"
                                 << bad_codes.examples;
  EXPECT_EQ(duplicates.count, 0u) << "codes created twice:" << duplicates.examples;

  ASSERT_EQ(winners_per_alias.size(), 200u) << "alias names contested";
  Failures alias_winners;
  for (const auto& [alias, winners] : winners_per_alias) {
    if (winners != 1) alias_winners.add(alias + " won by " + std::to_string(winners) + " requests");
  }
  EXPECT_EQ(alias_winners.count, 0u)
      << "aliases not created exactly once:" << alias_winners.examples;

  // Every created code resolves through both instances to its own link.
  std::vector<std::pair<std::string, int>> codes(created.begin(), created.end());
  std::vector<std::string> resolve_errors(codes.size() * 2);
  run_on_both(a, b, static_cast<int>(resolve_errors.size()), [&](int i, HttpClient& client) {
    const auto& [code, index] = codes[i / 2];
    const Request expected = request_for(index);
    try {
      const Response r = client.get("/" + code);
      if (r.status != expected.status || r.header("location") != expected.target) {
        resolve_errors[i] = "GET /" + code + " on origin " + (i % 2 == 0 ? "a" : "b") +
                            " -> HTTP " + std::to_string(r.status) + " Location " +
                            r.header("location") + "; expected HTTP " +
                            std::to_string(expected.status) + " " + expected.target;
      }
    } catch (const TransportError& e) {
      resolve_errors[i] = e.what();
    }
  });
  Failures unresolved;
  for (const std::string& error : resolve_errors) {
    if (!error.empty()) unresolved.add(error);
  }
  EXPECT_EQ(unresolved.count, 0u) << "created codes that do not resolve on both origins:"
                                  << unresolved.examples;

  EXPECT_EQ(query_text(db.url(), "SELECT count(*) FROM links"),
            std::to_string(created.size()) + "\n")
      << "rows in links vs. 201 answers";
}

}  // namespace
}  // namespace integration
