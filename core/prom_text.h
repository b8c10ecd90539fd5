// The Prometheus text exposition format 0.0.4: writing it (for /metrics and
// for node_exporter textfile-collector files), reading back files we wrote,
// and replacing such a file atomically.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace core {

using PromLabels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// Appends metric families to a string. Not thread-safe; one per rendering.
class PromText {
 public:
  // Starts a family: "# HELP name help" and "# TYPE name type" (type is
  // counter, gauge or histogram). Call once per name, before its samples.
  void family(std::string_view name, std::string_view type, std::string_view help);

  // One sample line: name{labels} value. Label values are escaped (\\, \",
  // \n); integral values print without exponent or decimals.
  void sample(std::string_view name, PromLabels labels, double value);
  void sample(std::string_view name, PromLabels labels, std::uint64_t value);
  // Labels already rendered as `{a="b"}` (or empty).
  void sample_raw(std::string_view name, std::string_view rendered_labels, std::string_view value);

  // family() then one unlabelled sample.
  void single(std::string_view name, std::string_view type, std::string_view help,
              std::uint64_t value);
  void single(std::string_view name, std::string_view type, std::string_view help, double value);

  const std::string& text() const { return text_; }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
};

// `{a="x",b="y"}` with escaping, or "" for no labels.
std::string render_prom_labels(PromLabels labels);

// A value as the format wants it: integers exactly, others in the fewest
// significant digits (15 to 17) that read back as the same double, "+Inf",
// "NaN".
std::string format_prom_value(double value);

// The samples of a text we wrote, keyed by "name{labels}" exactly as they
// appear, with their values; comment lines are skipped, and so are lines that
// do not parse (a file written by something else is not fatal).
std::map<std::string, double> read_prom_samples(std::string_view text);

// Writes `text` to `path` through `path.tmp.<pid>` in the same folder: write,
// fsync, rename, so a collector never reads half a file. Throws
// std::runtime_error naming the path on failure.
void write_file_atomically(const std::string& path, std::string_view text);

}  // namespace core
