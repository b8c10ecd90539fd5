#include "exporter/metrics_file.h"

#include <chrono>
#include <fstream>
#include <sstream>

namespace exporter {
namespace {

struct Family {
  const char* name;
  const char* type;
  const char* help;
};

// Every family the exporter writes, in file order.
constexpr Family kFamilies[] = {
    {"exporter_last_success_timestamp_seconds", "gauge",
     "When the command last succeeded (publish: published or unchanged)."},
    {"exporter_last_run_timestamp_seconds", "gauge", "When the command last ran."},
    {"exporter_runs_total", "counter", "Runs by command and outcome."},
    {"exporter_failures_total", "counter",
     "Failed runs by stage: compile, select, validate, swap, reload, probe, rollback."},
    {"exporter_stage_duration_seconds", "gauge",
     "Duration of the last compile, validate (nginx -t), activate (swap, reload, probe) and "
     "whole publish."},
    {"exporter_compiled_entries", "gauge",
     "Entries per target in the last compiled version (input: links selected)."},
    {"exporter_compiled_exclusions", "gauge", "Links excluded from the last compiled version."},
    {"exporter_live_entries", "gauge", "Entries per target in the version live on the edge."},
    {"exporter_tombstones_pending", "gauge",
     "Tombstones waiting for a version compiled after their change to go live."},
};

std::string key_of(std::string_view name, core::PromLabels labels) {
  return std::string(name) + core::render_prom_labels(labels);
}

std::string_view family_of(std::string_view key) { return key.substr(0, key.find('{')); }

}  // namespace

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void MetricsFile::set(std::string_view name, core::PromLabels labels, double value) {
  if (!enabled()) return;
  const std::string key = key_of(name, labels);
  added_.erase(key);
  set_[key] = value;
}

void MetricsFile::add(std::string_view name, core::PromLabels labels, double delta) {
  if (!enabled()) return;
  added_[key_of(name, labels)] += delta;
}

void MetricsFile::write() {
  if (!enabled()) return;
  std::map<std::string, double> samples;
  {
    std::ifstream in(path_, std::ios::binary);
    if (in) {
      std::stringstream text;
      text << in.rdbuf();
      samples = core::read_prom_samples(text.str());
    }
  }
  for (const auto& [key, value] : set_) samples[key] = value;
  for (const auto& [key, delta] : added_) samples[key] += delta;
  core::PromText out;
  for (const Family& family : kFamilies) {
    bool started = false;
    for (const auto& [key, value] : samples) {
      if (family_of(key) != family.name) continue;
      if (!started) out.family(family.name, family.type, family.help);
      started = true;
      const std::string_view name = family_of(key);
      out.sample_raw(name, std::string_view(key).substr(name.size()),
                     core::format_prom_value(value));
    }
  }
  core::write_file_atomically(path_, out.text());
  set_.clear();
  added_.clear();
}

}  // namespace exporter
