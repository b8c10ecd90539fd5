// Fills nginx/edge.conf.template into a complete nginx.conf for the edge.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace exporter {

struct EdgeConfigParams {
  std::string prefix;                     // folder for pid, error log, temp files
  std::string worker_processes = "auto";  // "auto" or a number
  std::string listen;                     // host:port
  std::vector<std::string> origins;       // host:port of each origin instance
  std::string export_dir;                 // folder holding edge_map.conf and version.conf
  // Folder of per-code tombstones (exporter/tombstones.h), stable across
  // versions; empty: "tombstones" beside export_dir (EXPORT_DIR/tombstones
  // when export_dir is the live link EXPORT_DIR/live).
  std::string tombstone_dir;
  std::string visit_log_format;  // path of nginx/visit_log.conf
  std::string visit_log;         // path of the edge visit log
  int redirect_max_age = 90;     // the origin's REDIRECT_MAX_AGE
};

// Replaces every @NAME@ placeholder of `template_text` with `params`. Paths
// must be absolute and, like addresses, free of whitespace, quotes, ';', '{',
// '}', '#', '$' and '\', so nothing in them can change what nginx parses.
// Throws std::invalid_argument naming the bad parameter, or an unknown or
// unfilled placeholder. Pure.
std::string render_edge_config(std::string_view template_text, const EdgeConfigParams& params);

}  // namespace exporter
