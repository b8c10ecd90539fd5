#include "core/prom_text.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace core {
namespace {

// The format escapes \ and newline in help texts, and " as well in label
// values.
void append_escaped(std::string& out, std::string_view text, bool quotes) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

}  // namespace

void PromText::family(std::string_view name, std::string_view type, std::string_view help) {
  text_ += "# HELP ";
  text_.append(name);
  text_ += ' ';
  append_escaped(text_, help, false);
  text_ += "\n# TYPE ";
  text_.append(name);
  text_ += ' ';
  text_.append(type);
  text_ += '\n';
}

void PromText::sample_raw(std::string_view name, std::string_view rendered_labels,
                          std::string_view value) {
  text_.append(name);
  text_.append(rendered_labels);
  text_ += ' ';
  text_.append(value);
  text_ += '\n';
}

void PromText::sample(std::string_view name, PromLabels labels, double value) {
  sample_raw(name, render_prom_labels(labels), format_prom_value(value));
}

void PromText::sample(std::string_view name, PromLabels labels, std::uint64_t value) {
  sample_raw(name, render_prom_labels(labels), std::to_string(value));
}

void PromText::single(std::string_view name, std::string_view type, std::string_view help,
                      std::uint64_t value) {
  family(name, type, help);
  sample(name, {}, value);
}

void PromText::single(std::string_view name, std::string_view type, std::string_view help,
                      double value) {
  family(name, type, help);
  sample(name, {}, value);
}

std::string render_prom_labels(PromLabels labels) {
  if (labels.size() == 0) return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) out += ',';
    first = false;
    out.append(key);
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  }
  out += '}';
  return out;
}

std::string format_prom_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<long long>(value));
  }
  // The shortest form that reads back as the same double (0.00025, not
  // 0.00025000000000000001).
  char buffer[32];
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(buffer, sizeof buffer, "%.*g", digits, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

std::map<std::string, double> read_prom_samples(std::string_view text) {
  std::map<std::string, double> samples;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    // The value follows the last space; label values we write never hold a
    // space after their closing brace.
    const std::size_t space = line.rfind(' ');
    if (space == std::string_view::npos || space == 0) continue;
    const std::string value(line.substr(space + 1));
    char* parsed_end = nullptr;
    errno = 0;
    const double number = std::strtod(value.c_str(), &parsed_end);
    if (parsed_end == value.c_str() || *parsed_end != '\0') continue;
    samples[std::string(line.substr(0, space))] = number;
  }
  return samples;
}

void write_file_atomically(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const auto fail = [&](const std::string& what) {
    const std::string reason = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw std::runtime_error(what + " " + tmp + ": " + reason);
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("open");
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      fail("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("fsync");
  }
  if (::close(fd) != 0) fail("close");
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename to " + path + " from");
}

}  // namespace core
