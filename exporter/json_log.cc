#include "exporter/json_log.h"

#include <unistd.h>

#include "core/json.h"
#include "core/time_format.h"

namespace exporter {

JsonLineBuffer::~JsonLineBuffer() {
  for (auto& [thread, line] : lines_) {
    if (!line.empty()) emit(line);
  }
}

JsonLineBuffer::int_type JsonLineBuffer::overflow(int_type c) {
  if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
  const char ch = traits_type::to_char_type(c);
  xsputn(&ch, 1);
  return c;
}

std::streamsize JsonLineBuffer::xsputn(const char* s, std::streamsize n) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string& line = lines_[std::this_thread::get_id()];
  for (std::streamsize i = 0; i < n; ++i) {
    if (s[i] == '\n') {
      emit(line);
    } else {
      line.push_back(s[i]);
    }
  }
  return n;
}

void JsonLineBuffer::emit(std::string& line) {
  rapidjson::StringBuffer buffer;
  core::JsonWriter w(buffer);
  w.StartObject();
  core::write_field(w, "time", core::format_rfc3339_ms(core::now_ms()));
  core::write_field(w, "level", level_);
  core::write_field(w, "msg", line);
  w.EndObject();
  std::string text(buffer.GetString(), buffer.GetSize());
  text.push_back('\n');
  ssize_t ignored = ::write(STDERR_FILENO, text.data(), text.size());
  (void)ignored;
  line.clear();
}

}  // namespace exporter
