// Structured logs: one JSON object per line on stderr.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace origin {

// Writes {"time":...,"level":...,"msg":...,<fields>} as one line, atomically
// with respect to other log lines. Thread-safe.
void log_event(std::string_view level, std::string_view message,
               std::initializer_list<std::pair<std::string_view, std::string_view>> fields = {});

// The first line of `text` (libpq messages span several).
std::string first_line(std::string_view text);

}  // namespace origin
