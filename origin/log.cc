#include "origin/log.h"

#include <unistd.h>

#include "core/json.h"
#include "core/time_format.h"

namespace origin {
namespace {

thread_local std::string_view t_request_id;

constexpr std::size_t kMaxLoggedPathBytes = 256;

void write_line(const rapidjson::StringBuffer& buffer) {
  std::string line(buffer.GetString(), buffer.GetSize());
  line.push_back('\n');
  // One write(2) per line: lines from different threads never interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

void start_line(core::JsonWriter& w, std::string_view level, std::string_view message,
                std::string_view request_id) {
  w.StartObject();
  core::write_field(w, "time", core::format_rfc3339_ms(core::now_ms()));
  core::write_field(w, "level", level);
  core::write_field(w, "msg", message);
  if (!request_id.empty()) core::write_field(w, "request_id", request_id);
}

}  // namespace

void log_event(std::string_view level, std::string_view message,
               std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  rapidjson::StringBuffer buffer;
  core::JsonWriter w(buffer);
  start_line(w, level, message, t_request_id);
  for (const auto& [key, value] : fields) core::write_field(w, key, value);
  w.EndObject();
  write_line(buffer);
}

std::string first_line(std::string_view text) {
  auto end = text.find('\n');
  return std::string(text.substr(0, end));
}

RequestLogScope::RequestLogScope(std::string_view id) : previous_(t_request_id) {
  t_request_id = id;
}

RequestLogScope::~RequestLogScope() { t_request_id = previous_; }

std::string_view current_request_id() { return t_request_id; }

bool is_valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdBytes) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void generate_request_id(std::uint64_t* state, std::string* out) {
  std::uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  static constexpr char kHex[] = "0123456789abcdef";
  out->resize(16);
  for (int i = 15; i >= 0; --i) {
    (*out)[static_cast<std::size_t>(i)] = kHex[z & 0xf];
    z >>= 4;
  }
}

void log_access(std::string_view request_id, std::string_view method, std::string_view target,
                std::string_view route, int status, double duration_ms, std::string_view ip) {
  std::string_view raw = target.substr(0, target.find('?'));
  if (raw.size() > kMaxLoggedPathBytes) raw = raw.substr(0, kMaxLoggedPathBytes);
  // Bytes a client sent need not be UTF-8: keep the line valid JSON.
  std::string path;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : raw) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x21 || byte > 0x7e) {
      path += '%';
      path += kHex[byte >> 4];
      path += kHex[byte & 0xf];
    } else {
      path += c;
    }
  }
  rapidjson::StringBuffer buffer;
  core::JsonWriter w(buffer);
  start_line(w, "info", "request", request_id);
  core::write_field(w, "method", method);
  core::write_field(w, "path", path);
  core::write_field(w, "route", route);
  w.Key("status");
  w.Int(status);
  w.Key("duration_ms");
  w.Double(duration_ms);
  core::write_field(w, "ip", ip);
  w.EndObject();
  write_line(buffer);
}

}  // namespace origin
