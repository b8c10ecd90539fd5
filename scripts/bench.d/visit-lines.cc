// Writes visit lines for the ingest case of scripts/bench as finished journal
// files, byte for byte what the origin's journal holds (core::format_visit_line,
// origin/journal.h), with nothing but the standard library.
//
// Usage: visit-lines DIR INSTANCE LINES START_MS WINDOW_MS CODES THREADS MAX_FILE_BYTES
//
// Line i has time START_MS + WINDOW_MS * i / LINES (UTC, milliseconds) and
// goes to io thread i % THREADS, whose files are
// DIR/INSTANCE-t<thread>-<20-digit seq>.jsonl, each closed before a line
// would take it past MAX_FILE_BYTES (JOURNAL_MAX_BYTES), as the writer does.
// 99% of the lines go to codes b1..b<CODES> (links that exist), Zipf-like
// (weight 1/rank^1.1), answered 307; 1% to unknown codes (404, orphans).
// Addresses are anonymized as the origin writes them (IPv4 /24, IPv6 /48),
// user agents from a fixed list of browsers and a few bots, half of the
// visits with a referrer. Deterministic (fixed seed). Prints on stdout:
// lines=N orphans=N bytes=N files=N.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::uint64_t rng_state = 0x5eed5eed12345678ull;

std::uint64_t next_random() {  // splitmix64
  std::uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double uniform() { return static_cast<double>(next_random() >> 11) * 0x1.0p-53; }
std::uint64_t below(std::uint64_t n) { return next_random() % n; }

// JSON string escaping as rapidjson's Writer does it (what format_visit_line
// uses): '"', '\\' and control characters only; '/' and non-ASCII unescaped.
void put_json_string(std::string& out, std::string_view text) {
  static const char kHex[] = "0123456789ABCDEF";
  out.push_back('"');
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

// "YYYY-MM-DDTHH:MM:SS.mmmZ" (core::format_rfc3339_ms).
std::string rfc3339_ms(std::int64_t unix_ms) {
  std::int64_t s = unix_ms / 1000;
  const int ms = static_cast<int>(unix_ms % 1000);
  std::int64_t days = s / 86400;
  const std::int64_t sod = s % 86400;
  // Howard Hinnant's civil_from_days (unix_ms >= 0 here).
  days += 719468;
  const std::int64_t era = days / 146097;
  const std::int64_t doe = days - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const int day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ",
                static_cast<long long>(year), month, day, static_cast<int>(sod / 3600),
                static_cast<int>(sod / 60 % 60), static_cast<int>(sod % 60), ms);
  return buf;
}

const char* const kBrowsers[] = {
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.6045.163 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 Instagram 307.0.0.34.111",
};
const char* const kBots[] = {
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
};
const char* const kReferrers[] = {
    "https://t.co/",
    "https://l.facebook.com/",
    "https://www.google.com/",
    "https://mail.google.com/",
    "https://news.example.com/2026/11/27/campaign-launch",
    "android-app://com.google.android.gm/",
    "https://www.instagram.com/",
};

template <typename T, std::size_t N>
constexpr std::size_t count_of(T (&)[N]) {
  return N;
}

struct ThreadFiles {
  int thread = 0;
  std::uint64_t sequence = 0;
  std::uint64_t size = 0;
  std::FILE* file = nullptr;
};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "visit-lines: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr,
                 "usage: visit-lines DIR INSTANCE LINES START_MS WINDOW_MS CODES THREADS "
                 "MAX_FILE_BYTES\n");
    return 2;
  }
  const std::string dir = argv[1];
  const std::string instance = argv[2];
  const std::int64_t lines = std::atoll(argv[3]);
  const std::int64_t start_ms = std::atoll(argv[4]);
  const std::int64_t window_ms = std::atoll(argv[5]);
  const int codes = std::atoi(argv[6]);
  const int threads = std::atoi(argv[7]);
  const std::uint64_t max_bytes = std::strtoull(argv[8], nullptr, 10);
  if (lines <= 0 || start_ms <= 0 || window_ms <= 0 || codes <= 0 || threads <= 0 ||
      max_bytes < 4096) {
    std::fprintf(stderr, "visit-lines: bad arguments\n");
    return 2;
  }

  std::vector<double> cumulative(static_cast<std::size_t>(codes));
  double total = 0;
  for (int k = 0; k < codes; ++k) {
    total += 1.0 / std::pow(k + 1, 1.1);
    cumulative[static_cast<std::size_t>(k)] = total;
  }

  std::vector<ThreadFiles> files(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) files[static_cast<std::size_t>(t)].thread = t;
  std::uint64_t bytes = 0;
  std::uint64_t file_count = 0;
  std::int64_t orphans = 0;

  auto close_file = [&](ThreadFiles& f) {
    if (f.file == nullptr) return;
    if (std::fclose(f.file) != 0) fail("close");
    f.file = nullptr;
  };
  auto open_file = [&](ThreadFiles& f) {
    ++f.sequence;
    char name[64];
    std::snprintf(name, sizeof name, "-t%d-%020llu.jsonl", f.thread,
                  static_cast<unsigned long long>(f.sequence));
    const std::string path = dir + "/" + instance + name;
    f.file = std::fopen(path.c_str(), "wx");
    if (f.file == nullptr) fail("create " + path);
    f.size = 0;
    ++file_count;
  };

  std::string line;
  char ip[64];
  for (std::int64_t i = 0; i < lines; ++i) {
    const std::int64_t time_ms = start_ms + window_ms * i / lines;
    std::string code;
    int status = 307;
    if (below(100) == 0) {
      code = "zz" + std::to_string(below(50000));
      status = 404;
      ++orphans;
    } else {
      const double x = uniform() * total;
      const auto rank = static_cast<std::size_t>(
          std::upper_bound(cumulative.begin(), cumulative.end(), x) - cumulative.begin());
      code = "b" + std::to_string(std::min<std::size_t>(rank, cumulative.size() - 1) + 1);
    }
    if (below(100) < 85) {
      std::snprintf(ip, sizeof ip, "%u.%u.%u.0", static_cast<unsigned>(1 + below(223)),
                    static_cast<unsigned>(below(256)), static_cast<unsigned>(below(256)));
    } else {
      std::snprintf(ip, sizeof ip, "2001:db8:%x::", static_cast<unsigned>(1 + below(0xfffe)));
    }
    const char* ua = below(100) < 7 ? kBots[below(count_of(kBots))]
                                    : kBrowsers[below(count_of(kBrowsers))];
    const char* ref = below(2) == 0 ? "" : kReferrers[below(count_of(kReferrers))];

    line.clear();
    line += "{\"time\":";
    put_json_string(line, rfc3339_ms(time_ms));
    line += ",\"code\":";
    put_json_string(line, code);
    line += ",\"ip\":";
    put_json_string(line, ip);
    line += ",\"ua\":";
    put_json_string(line, ua);
    line += ",\"ref\":";
    put_json_string(line, ref);
    line += ",\"status\":" + std::to_string(status) + ",\"src\":";
    put_json_string(line, "origin");
    line += "}\n";

    ThreadFiles& f = files[static_cast<std::size_t>(i % threads)];
    if (f.file != nullptr && f.size > 0 && f.size + line.size() > max_bytes) close_file(f);
    if (f.file == nullptr) open_file(f);
    if (std::fwrite(line.data(), 1, line.size(), f.file) != line.size()) fail("write");
    f.size += line.size();
    bytes += line.size();
  }
  for (ThreadFiles& f : files) close_file(f);
  std::printf("lines=%lld orphans=%lld bytes=%llu files=%llu\n", static_cast<long long>(lines),
              static_cast<long long>(orphans), static_cast<unsigned long long>(bytes),
              static_cast<unsigned long long>(file_count));
  return 0;
}
