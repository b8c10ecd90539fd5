#include "core/json.h"

namespace core {
namespace {

rapidjson::SizeType size_of(std::string_view s) {
  return static_cast<rapidjson::SizeType>(s.size());
}

}  // namespace

void write_field(JsonWriter& w, std::string_view key, std::string_view value) {
  w.Key(key.data(), size_of(key));
  w.String(value.data(), size_of(value));
}

void write_field(JsonWriter& w, std::string_view key, long long value) {
  w.Key(key.data(), size_of(key));
  w.Int64(value);
}

void write_field(JsonWriter& w, std::string_view key, bool value) {
  w.Key(key.data(), size_of(key));
  w.Bool(value);
}

void write_null_field(JsonWriter& w, std::string_view key) {
  w.Key(key.data(), size_of(key));
  w.Null();
}

std::string error_json(std::string_view code, std::string_view message, std::string_view field) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("error");
  w.StartObject();
  write_field(w, "code", code);
  write_field(w, "message", message);
  if (!field.empty()) write_field(w, "field", field);
  w.EndObject();
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string json_quote(std::string_view text) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.String(text.data(), size_of(text));
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace core
