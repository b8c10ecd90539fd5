#include "origin/log.h"

#include <unistd.h>

#include "core/json.h"
#include "core/time_format.h"

namespace origin {

void log_event(std::string_view level, std::string_view message,
               std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  rapidjson::StringBuffer buffer;
  core::JsonWriter w(buffer);
  w.StartObject();
  core::write_field(w, "time", core::format_rfc3339_ms(core::now_ms()));
  core::write_field(w, "level", level);
  core::write_field(w, "msg", message);
  for (const auto& [key, value] : fields) core::write_field(w, key, value);
  w.EndObject();
  std::string line(buffer.GetString(), buffer.GetSize());
  line.push_back('\n');
  // One write(2) per line: lines from different threads never interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

std::string first_line(std::string_view text) {
  auto end = text.find('\n');
  return std::string(text.substr(0, end));
}

}  // namespace origin
