#include "core/visit_record.h"

#include <arpa/inet.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <array>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/code.h"

namespace core {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::size_t kMaxCodeBytes = 256;
constexpr std::size_t kMaxSourceBytes = 16;
// 9999-12-31T23:59:59.999Z, the last instant parse_rfc3339 accepts.
constexpr std::int64_t kMaxUnixMs = 253402300799999;

// Length of the valid UTF-8 sequence starting at text[i], or 0 when there is
// none; then `invalid_length` is the length of the maximal invalid subpart.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i,
                                 std::size_t& invalid_length) {
  const auto lead = static_cast<unsigned char>(text[i]);
  invalid_length = 1;
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead == 0xE0) {
    length = 3;
    low = 0xA0;  // overlong below U+0800
  } else if (lead == 0xED) {
    length = 3;
    high = 0x9F;  // surrogates U+D800..U+DFFF
  } else if (lead >= 0xE1 && lead <= 0xEF) {
    length = 3;
  } else if (lead == 0xF0) {
    length = 4;
    low = 0x90;  // overlong below U+10000
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    length = 4;
  } else if (lead == 0xF4) {
    length = 4;
    high = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  for (std::size_t k = 1; k < length; ++k) {
    if (i + k >= text.size()) {
      invalid_length = k;
      return 0;
    }
    const auto byte = static_cast<unsigned char>(text[i + k]);
    const unsigned char lo = k == 1 ? low : 0x80;
    const unsigned char hi = k == 1 ? high : 0xBF;
    if (byte < lo || byte > hi) {
      invalid_length = k;
      return 0;
    }
  }
  return length;
}

// Offset of the first invalid UTF-8 byte, or npos.
std::size_t first_invalid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    // ASCII runs eight bytes at a time.
    while (i + 8 <= text.size()) {
      std::uint64_t word = 0;
      std::memcpy(&word, text.data() + i, 8);
      if ((word & 0x8080808080808080ull) != 0) break;
      i += 8;
    }
    if (i >= text.size()) break;
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    std::size_t invalid_length = 0;
    std::size_t length = utf8_sequence_length(text, i, invalid_length);
    if (length == 0) return i;
    i += length;
  }
  return std::string_view::npos;
}

// Valid UTF-8 without NUL, capped at `max_bytes`.
std::string clean_text(std::string_view text, std::size_t max_bytes) {
  std::string valid = to_valid_utf8(text);
  if (valid.find('\0') == std::string::npos) {
    valid.resize(cap_utf8(valid, max_bytes).size());
    return valid;
  }
  std::string out;
  out.reserve(valid.size());
  for (char c : valid) {
    if (c == '\0') {
      out.append(kReplacement);
    } else {
      out.push_back(c);
    }
  }
  out.resize(cap_utf8(out, max_bytes).size());
  return out;
}

// True when every byte is printable ASCII or DEL, other than '"' and '\\':
// such text is valid UTF-8 without NUL, needs no escape, and caps anywhere.
bool plain_ascii(std::string_view text) {
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return false;
  }
  return true;
}

// clean_text without its copies when `text` is already clean (the usual
// case): valid UTF-8 without NUL only needs capping. `scratch` holds the
// result otherwise.
std::string_view clean_view(std::string_view text, std::size_t max_bytes, std::string& scratch) {
  if (plain_ascii(text) || (first_invalid_utf8(text) == std::string_view::npos &&
                            text.find('\0') == std::string_view::npos)) {
    return cap_utf8(text, max_bytes);
  }
  scratch = clean_text(text, max_bytes);
  return scratch;
}

// The line is written through a raw pointer into a string sized for the
// worst case, then trimmed: appending piece by piece cost more than the
// escaping itself.
char* put(char* out, std::string_view text) {
  std::memcpy(out, text.data(), text.size());
  return out + text.size();
}

// Bytes put_json_string may write for `text`: quotes, and at most six
// ("\u00XX") per byte.
std::size_t json_string_bound(std::string_view text) { return 2 + 6 * text.size(); }

// Puts `text` as a JSON string escaped exactly as RapidJSON's Writer did
// when it wrote these lines (journals written before and after must not
// differ): \" \\ \b \f \n \r \t, other bytes below 0x20 as \u00XX with
// uppercase hex, every other byte (DEL, '/', UTF-8) raw.
char* put_json_string(char* out, std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  *out++ = '"';
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != '"' && c != '\\') {
      *out++ = ch;
      continue;
    }
    *out++ = '\\';
    switch (c) {
      case '"':
      case '\\':
        *out++ = ch;
        break;
      case '\b':
        *out++ = 'b';
        break;
      case '\f':
        *out++ = 'f';
        break;
      case '\n':
        *out++ = 'n';
        break;
      case '\r':
        *out++ = 'r';
        break;
      case '\t':
        *out++ = 't';
        break;
      default:
        out = put(out, "u00");
        *out++ = kHex[c >> 4];
        *out++ = kHex[c & 0xF];
    }
  }
  *out++ = '"';
  return out;
}

// format_rfc3339_ms formats into a 64-byte buffer.
constexpr std::size_t kMaxTimeBytes = 64;

// Puts format_rfc3339_ms(time), reformatting only the milliseconds while the
// second stays the same: one snprintf per line cost more than the rest of
// the line. The cache is per thread, so this stays thread-safe.
char* put_time(char* out, TimePoint time) {
  thread_local std::int64_t cached_second = INT64_MIN;
  thread_local std::string cached_prefix;  // "2026-11-27T20:46:40."
  const std::int64_t ms = to_unix_ms(time);
  const std::int64_t second = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  if (second != cached_second) {
    const std::string full = format_rfc3339_ms(time);  // always ends in ".mmmZ"
    cached_prefix.assign(full, 0, full.size() - 4);
    cached_second = second;
  }
  const auto millis = static_cast<int>(ms - second * 1000);
  out = put(out, cached_prefix);
  *out++ = static_cast<char>('0' + millis / 100);
  *out++ = static_cast<char>('0' + millis / 10 % 10);
  *out++ = static_cast<char>('0' + millis % 10);
  *out++ = 'Z';
  return out;
}

bool all_digits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// nginx's $msec: "1795812400.123". Seconds up to 12 digits, fraction 1-9.
std::optional<TimePoint> parse_unix_seconds(std::string_view text) {
  std::size_t dot = text.find('.');
  std::string_view seconds = text.substr(0, dot);
  std::string_view fraction =
      dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  if (!all_digits(seconds) || seconds.size() > 12) return std::nullopt;
  if (dot != std::string_view::npos && (!all_digits(fraction) || fraction.size() > 9)) {
    return std::nullopt;
  }
  std::int64_t ms = 0;
  for (char c : seconds) ms = ms * 10 + (c - '0');
  ms *= 1000;
  std::int64_t millis = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    millis = millis * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
  }
  ms += millis;
  if (ms > kMaxUnixMs) return std::nullopt;
  return from_unix_ms(ms);
}

std::optional<TimePoint> parse_time_field(std::string_view text) {
  if (text.find('-') != std::string_view::npos) return parse_rfc3339(text);
  return parse_unix_seconds(text);
}

std::string field_reason(std::string_view field, std::string_view rule) {
  std::string reason = "field \"";
  reason.append(field);
  reason.append("\" ");
  reason.append(rule);
  return reason;
}

// A decoded JSON string: valid UTF-8 (RapidJSON 1.1 lets an escaped lone low
// surrogate such as \udc00 through), NUL replaced, capped.
std::optional<std::string> decoded_text(const rapidjson::Value& value, std::size_t max_bytes) {
  std::string_view text(value.GetString(), value.GetStringLength());
  if (first_invalid_utf8(text) != std::string_view::npos) return std::nullopt;
  return clean_text(text, max_bytes);
}

enum Field : std::size_t { kTime, kCode, kIp, kUa, kRef, kStatus, kSrc, kFieldCount };
constexpr std::array<std::string_view, kFieldCount> kFieldNames = {"time", "code",   "ip", "ua",
                                                                   "ref",  "status", "src"};

// Fetchers whose user agent does not contain "bot" (see is_bot_user_agent).
constexpr std::array<std::string_view, 33> kBotMarkers = {
    "crawl",
    "spider",
    "slurp",
    "facebookexternalhit",
    "facebookcatalog",
    "meta-externalagent",
    "whatsapp",
    "skypeuripreview",
    "preview",
    "embedly",
    "iframely",
    "vkshare",
    "mediapartners-google",
    "feedfetcher",
    "google-inspectiontool",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "pingdom",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "libwww-perl",
    "java/",
    "apache-httpclient",
    "node-fetch",
    "axios/",
    "scrapy",
    "postmanruntime",
};

// The shape both writers produce, keys in their order:
//   {"time":"...","code":"...","ip":"...","ua":"...","ref":"...","status":NNN,"src":"..."}
// with strings holding no escape and no control character. For such a
// line (already checked to be valid UTF-8 and not too long) this gives what
// the full parse gives; it returns nullopt for anything else, and for any
// line the full parse would refuse, so that the full parse decides (and
// words the reason).
std::optional<VisitRecord> parse_common_shape(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  std::size_t pos = 0;
  const auto literal = [&](std::string_view expected) {
    if (line.size() - pos < expected.size() ||
        std::memcmp(line.data() + pos, expected.data(), expected.size()) != 0) {
      return false;
    }
    pos += expected.size();
    return true;
  };
  // After an opening quote: the string up to its closing quote.
  const auto string = [&](std::string_view& out) {
    const std::size_t start = pos;
    for (; pos < line.size(); ++pos) {
      const auto c = static_cast<unsigned char>(line[pos]);
      if (c == '"') {
        out = line.substr(start, pos - start);
        ++pos;
        return true;
      }
      if (c == '\\' || c < 0x20) return false;
    }
    return false;
  };
  std::string_view time, code, ip, ua, ref, src;
  if (!literal("{\"time\":\"") || !string(time) || !literal(",\"code\":\"") || !string(code) ||
      !literal(",\"ip\":\"") || !string(ip) || !literal(",\"ua\":\"") || !string(ua) ||
      !literal(",\"ref\":\"") || !string(ref) || !literal(",\"status\":")) {
    return std::nullopt;
  }
  // 100-599, as JSON writes an integer (no sign, no leading zero).
  if (line.size() - pos < 3) return std::nullopt;
  int status = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    const char c = line[pos + i];
    if (c < '0' || c > '9') return std::nullopt;
    status = status * 10 + (c - '0');
  }
  pos += 3;
  if (status < 100 || status > 599) return std::nullopt;
  if (!literal(",\"src\":\"") || !string(src) || !literal("}") || pos != line.size()) {
    return std::nullopt;
  }
  if (src != kSourceOrigin && src != kSourceEdge) return std::nullopt;
  auto parsed_time = parse_time_field(time);
  if (!parsed_time) return std::nullopt;
  VisitRecord record;
  record.code = lowercase_ascii(code);
  if (!is_valid_code(record.code)) return std::nullopt;
  record.time = *parsed_time;
  record.status = status;
  record.source = std::string(src);
  // Valid UTF-8 (the whole line is), no NUL (a control character): cleaning
  // is capping.
  record.ip = std::string(cap_utf8(ip, kMaxIpBytes));
  record.user_agent = std::string(cap_utf8(ua, kMaxUserAgentBytes));
  record.referrer = std::string(cap_utf8(ref, kMaxReferrerBytes));
  return record;
}

// kBotMarkers grouped by their first byte.
const std::array<std::vector<std::string_view>, 256>& markers_by_first_byte() {
  static const auto table = [] {
    std::array<std::vector<std::string_view>, 256> t;
    for (std::string_view marker : kBotMarkers) {
      t[static_cast<unsigned char>(marker.front())].push_back(marker);
    }
    return t;
  }();
  return table;
}

}  // namespace

std::string to_valid_utf8(std::string_view text) {
  if (first_invalid_utf8(text) == std::string_view::npos) return std::string(text);
  std::string out;
  out.reserve(text.size() + 16);
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t invalid_length = 0;
    std::size_t length = utf8_sequence_length(text, i, invalid_length);
    if (length > 0) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out.append(kReplacement);
      i += invalid_length;
    }
  }
  return out;
}

std::string_view cap_utf8(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

std::string format_visit_line(const VisitRecord& record) {
  std::string scratch[5];
  const std::string_view code = clean_view(record.code, kMaxCodeBytes, scratch[0]);
  const std::string_view ip = clean_view(record.ip, kMaxIpBytes, scratch[1]);
  const std::string_view ua = clean_view(record.user_agent, kMaxUserAgentBytes, scratch[2]);
  const std::string_view ref = clean_view(record.referrer, kMaxReferrerBytes, scratch[3]);
  const std::string_view src = clean_view(record.source, kMaxSourceBytes, scratch[4]);
  constexpr std::size_t kFixedBytes = 128;  // keys, punctuation, status, '\n'
  std::string line(kFixedBytes + kMaxTimeBytes + json_string_bound(code) + json_string_bound(ip) +
                       json_string_bound(ua) + json_string_bound(ref) + json_string_bound(src),
                   '\0');
  char* out = line.data();
  out = put(out, "{\"time\":\"");
  out = put_time(out, record.time);
  out = put(out, "\",\"code\":");
  out = put_json_string(out, code);
  out = put(out, ",\"ip\":");
  out = put_json_string(out, ip);
  out = put(out, ",\"ua\":");
  out = put_json_string(out, ua);
  out = put(out, ",\"ref\":");
  out = put_json_string(out, ref);
  out = put(out, ",\"status\":");
  out = std::to_chars(out, out + 16, record.status).ptr;
  out = put(out, ",\"src\":");
  out = put_json_string(out, src);
  out = put(out, "}\n");
  line.resize(static_cast<std::size_t>(out - line.data()));
  return line;
}

std::variant<VisitRecord, std::string> parse_visit_line(std::string_view line) {
  if (line.size() > kMaxVisitLineBytes) {
    return "line longer than " + std::to_string(kMaxVisitLineBytes) + " bytes";
  }
  if (std::size_t bad = first_invalid_utf8(line); bad != std::string_view::npos) {
    return "invalid UTF-8 at byte " + std::to_string(bad);
  }
  if (auto record = parse_common_shape(line)) return std::move(*record);
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(line.data(),
                                                                                    line.size());
  if (doc.HasParseError()) {
    return std::string("not JSON: ") + rapidjson::GetParseError_En(doc.GetParseError()) +
           " at byte " + std::to_string(doc.GetErrorOffset());
  }
  if (!doc.IsObject()) return "not a JSON object";

  std::array<const rapidjson::Value*, kFieldCount> fields{};
  for (const auto& member : doc.GetObject()) {
    std::string_view key(member.name.GetString(), member.name.GetStringLength());
    for (std::size_t f = 0; f < kFieldCount; ++f) {
      if (key != kFieldNames[f]) continue;
      if (fields[f] != nullptr) return field_reason(key, "appears twice");
      fields[f] = &member.value;
    }
  }
  for (Field f : {kTime, kCode, kStatus, kSrc}) {
    if (fields[f] == nullptr) return field_reason(kFieldNames[f], "is missing");
  }
  for (Field f : {kTime, kCode, kIp, kUa, kRef, kSrc}) {
    if (fields[f] != nullptr && !fields[f]->IsString()) {
      return field_reason(kFieldNames[f], "must be a string");
    }
  }

  VisitRecord record;
  auto time = parse_time_field(
      std::string_view(fields[kTime]->GetString(), fields[kTime]->GetStringLength()));
  if (!time) {
    return field_reason("time",
                        "must be RFC 3339 with a zone or Unix seconds such as 1795812400.123");
  }
  record.time = *time;

  record.code = lowercase_ascii(
      std::string_view(fields[kCode]->GetString(), fields[kCode]->GetStringLength()));
  if (!is_valid_code(record.code)) return field_reason("code", "must match [a-z0-9_-]{1,64}");

  if (!fields[kStatus]->IsInt()) return field_reason("status", "must be an integer");
  record.status = fields[kStatus]->GetInt();
  if (record.status < 100 || record.status > 599) {
    return field_reason("status", "must be between 100 and 599");
  }

  std::string_view source(fields[kSrc]->GetString(), fields[kSrc]->GetStringLength());
  if (source != kSourceOrigin && source != kSourceEdge) {
    return field_reason("src", "must be \"origin\" or \"edge\"");
  }
  record.source = std::string(source);

  struct TextField {
    Field field;
    std::size_t max_bytes;
    std::string* out;
  };
  for (const TextField& text : {TextField{kIp, kMaxIpBytes, &record.ip},
                                TextField{kUa, kMaxUserAgentBytes, &record.user_agent},
                                TextField{kRef, kMaxReferrerBytes, &record.referrer}}) {
    if (fields[text.field] == nullptr) continue;
    auto value = decoded_text(*fields[text.field], text.max_bytes);
    if (!value) return field_reason(kFieldNames[text.field], "escapes to invalid UTF-8");
    *text.out = std::move(*value);
  }
  return record;
}

std::optional<IpMode> parse_ip_mode(std::string_view text) {
  if (text == "anonymized") return IpMode::kAnonymized;
  if (text == "full") return IpMode::kFull;
  if (text == "none") return IpMode::kNone;
  return std::nullopt;
}

std::string anonymize_ip(std::string_view ip, IpMode mode) {
  switch (mode) {
    case IpMode::kFull:
      return std::string(ip);
    case IpMode::kNone:
      return {};
    case IpMode::kAnonymized:
      break;
  }
  if (ip.size() >= INET6_ADDRSTRLEN) return {};
  const std::string terminated(ip);
  char out[INET6_ADDRSTRLEN] = {};
  in_addr v4{};
  if (inet_pton(AF_INET, terminated.c_str(), &v4) == 1) {
    // inet_ntop's dotted quad, without the printf it uses for it (this runs
    // for every ingested line).
    const auto* bytes = reinterpret_cast<const unsigned char*>(&v4.s_addr);
    std::string text;
    for (int i = 0; i < 3; ++i) {
      const unsigned b = bytes[i];
      if (b >= 100) text.push_back(static_cast<char>('0' + b / 100));
      if (b >= 10) text.push_back(static_cast<char>('0' + b / 10 % 10));
      text.push_back(static_cast<char>('0' + b % 10));
      text.push_back('.');
    }
    text.push_back('0');
    return text;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, terminated.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
      v6.s6_addr[15] = 0;
    } else {
      for (std::size_t i = 6; i < 16; ++i) v6.s6_addr[i] = 0;
    }
    if (inet_ntop(AF_INET6, &v6, out, sizeof out) == nullptr) return {};
    return out;
  }
  return {};
}

bool is_bot_user_agent(std::string_view user_agent) {
  if (user_agent.find_first_not_of(" \t") == std::string_view::npos) return true;
  const std::string lower = lowercase_ascii(user_agent);
  // "bot" is deliberately broad (Googlebot, bingbot, Twitterbot, Slackbot,
  // TelegramBot, Discordbot, LinkedInBot, Applebot, AdsBot, ...), except
  // inside "cubot", a phone brand whose model names appear in real browsers'
  // agents. One pass over the agent rather than one search per marker: at
  // each position only the markers starting with that byte are compared.
  const std::array<std::vector<std::string_view>, 256>& by_first = markers_by_first_byte();
  const std::size_t size = lower.size();
  for (std::size_t i = 0; i < size; ++i) {
    const auto c = static_cast<unsigned char>(lower[i]);
    if (c == 'b' && size - i >= 3 && lower[i + 1] == 'o' && lower[i + 2] == 't' &&
        !(i >= 2 && lower[i - 2] == 'c' && lower[i - 1] == 'u')) {
      return true;
    }
    for (std::string_view marker : by_first[c]) {
      if (size - i >= marker.size() && lower[i + 1] == marker[1] &&
          std::memcmp(lower.data() + i, marker.data(), marker.size()) == 0) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace core
