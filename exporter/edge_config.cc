#include "exporter/edge_config.h"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace exporter {
namespace {

bool is_config_safe(std::string_view text) {
  if (text.empty()) return false;
  return std::none_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte <= 0x20 || byte >= 0x7F ||
           std::string_view("\"';{}#$\\").find(c) != std::string_view::npos;
  });
}

std::string checked_path(const std::string& name, const std::string& value) {
  if (!is_config_safe(value) || value[0] != '/') {
    throw std::invalid_argument("edge config: " + name + " must be an absolute path without " +
                                "spaces, quotes, ';', '{', '}', '#', '$' or '\\': " + value);
  }
  return value;
}

std::string checked_address(const std::string& name, const std::string& value) {
  if (!is_config_safe(value) || value.find(':') == std::string::npos) {
    throw std::invalid_argument("edge config: " + name + " must be host:port: " + value);
  }
  return value;
}

}  // namespace

std::string render_edge_config(std::string_view template_text, const EdgeConfigParams& params) {
  if (params.worker_processes != "auto" &&
      (params.worker_processes.empty() ||
       params.worker_processes.find_first_not_of("0123456789") != std::string::npos)) {
    throw std::invalid_argument("edge config: worker_processes must be auto or a number");
  }
  if (params.origins.empty()) throw std::invalid_argument("edge config: no origin server");
  if (params.redirect_max_age < 0) throw std::invalid_argument("edge config: max-age < 0");
  std::string servers;
  // One line: the template's header comment names the placeholder too, and a
  // second line there would leave the comment and break the configuration.
  for (const std::string& origin : params.origins) {
    if (!servers.empty()) servers += " ";
    servers += "server " + checked_address("origin", origin) + ";";
  }
  std::string tombstone_dir = params.tombstone_dir;
  if (tombstone_dir.empty()) {
    std::string parent = params.export_dir;
    while (parent.size() > 1 && parent.back() == '/') parent.pop_back();
    parent = parent.substr(0, parent.rfind('/'));
    tombstone_dir = (parent.empty() ? std::string() : parent) + "/tombstones";
  }
  const std::map<std::string, std::string, std::less<>> values = {
      {"PREFIX", checked_path("prefix", params.prefix)},
      {"WORKER_PROCESSES", params.worker_processes},
      {"EDGE_LISTEN", checked_address("listen", params.listen)},
      {"ORIGIN_SERVERS", servers},
      {"EXPORT_DIR", checked_path("export_dir", params.export_dir)},
      {"TOMBSTONE_DIR", checked_path("tombstone_dir", tombstone_dir)},
      {"VISIT_LOG_FORMAT", checked_path("visit_log_format", params.visit_log_format)},
      {"VISIT_LOG", checked_path("visit_log", params.visit_log)},
      {"REDIRECT_MAX_AGE", std::to_string(params.redirect_max_age)},
  };
  std::string out;
  out.reserve(template_text.size() + 512);
  std::size_t at = 0;
  while (at < template_text.size()) {
    const std::size_t open = template_text.find('@', at);
    if (open == std::string_view::npos) break;
    const std::size_t close = template_text.find('@', open + 1);
    const std::string_view name = close == std::string_view::npos
                                      ? std::string_view()
                                      : template_text.substr(open + 1, close - open - 1);
    const bool placeholder =
        !name.empty() &&
        name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == std::string_view::npos;
    if (!placeholder) {
      out.append(template_text.substr(at, open + 1 - at));
      at = open + 1;
      continue;
    }
    const auto value = values.find(name);
    if (value == values.end()) {
      throw std::invalid_argument("edge config: unknown placeholder @" + std::string(name) + "@");
    }
    out.append(template_text.substr(at, open - at));
    out += value->second;
    at = close + 1;
  }
  out.append(template_text.substr(std::min(at, template_text.size())));
  return out;
}

}  // namespace exporter
