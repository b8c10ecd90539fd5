// JSON output helpers shared by the binaries (RapidJSON underneath).
#pragma once

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>
#include <string_view>

namespace core {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// Writes `key: value` pairs; `value` must be valid UTF-8.
void write_field(JsonWriter& w, std::string_view key, std::string_view value);
void write_field(JsonWriter& w, std::string_view key, long long value);
void write_field(JsonWriter& w, std::string_view key, bool value);
void write_null_field(JsonWriter& w, std::string_view key);

// {"error":{"code":...,"message":...,"field":...}}; `field` is omitted when empty.
std::string error_json(std::string_view code, std::string_view message,
                       std::string_view field = {});

// A JSON string literal (with quotes) for `text`.
std::string json_quote(std::string_view text);

}  // namespace core
