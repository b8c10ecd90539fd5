// libFuzzer target: exporter::render_nginx_map. Property: whatever the
// target, the entry is either refused (an exclusion, and no map line for its
// code) or the rendered file, read the way nginx 1.22 reads it, maps the code
// to a literal value (no variables) that is exactly "<status><kind> <target>",
// so the edge redirects to exactly that target; and a neighbouring entry is
// never disturbed.
//
// Input: byte 0 picks the status, forward_query and whether "https://" is put
// before the rest; byte 1 picks the code (keywords included); the rest is the
// target, raw.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exporter/export_entry.h"
#include "exporter/nginx_map.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "nginx_map property failed: %s\n", what);
    std::abort();
  }
}

// One directive as nginx's ngx_conf_read_token returns it: its words (escapes
// already applied) and how it ended.
struct Directive {
  enum class End { kSemicolon, kBlockStart, kBlockEnd } end;
  std::vector<std::string> words;
  std::vector<bool> had_dollar;  // the word held a '$' (a variable in a value)
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// A re-implementation of ngx_conf_read_token (src/core/ngx_conf_file.c,
// nginx 1.22) over a whole file: '#' comments to end of line; a backslash
// makes the next byte literal for the scanner; double- or single-quoted
// words must be followed by whitespace, ';' or '{'; when a word is stored,
// \" \' \\ lose the backslash, \t \r \n become the control byte and any other
// \x stays as both bytes. A word longer than kMaxNginxQuotedToken is refused
// ("too long parameter"; the exporter's measured limit). nullopt when nginx
// would refuse the file.
std::optional<std::vector<Directive>> read_conf(std::string_view text) {
  std::vector<Directive> out;
  std::size_t pos = 0;
  while (true) {
    Directive d;
    bool sharp_comment = false, quoted = false, need_space = false, last_space = true;
    bool d_quoted = false, s_quoted = false, variable = false, dollar = false;
    std::size_t start = pos;
    bool done = false;
    while (!done) {
      if (pos >= text.size()) {
        if (!d.words.empty() || !last_space) return std::nullopt;  // unexpected end of file
        return out;
      }
      const char ch = text[pos++];
      if (ch == '\n') sharp_comment = false;
      if (sharp_comment) continue;
      if (quoted) {
        quoted = false;
        continue;
      }
      if (need_space) {
        if (is_space(ch)) {
          last_space = true;
          need_space = false;
          continue;
        }
        if (ch == ';') {
          d.end = Directive::End::kSemicolon;
          break;
        }
        if (ch == '{') {
          d.end = Directive::End::kBlockStart;
          break;
        }
        if (ch != ')') return std::nullopt;  // unexpected character
        last_space = true;
        need_space = false;
      }
      if (last_space) {
        start = pos - 1;
        if (is_space(ch)) continue;
        switch (ch) {
          case ';':
          case '{':
            if (d.words.empty()) return std::nullopt;
            d.end = ch == '{' ? Directive::End::kBlockStart : Directive::End::kSemicolon;
            done = true;
            continue;
          case '}':
            if (!d.words.empty()) return std::nullopt;
            d.end = Directive::End::kBlockEnd;
            done = true;
            continue;
          case '#':
            sharp_comment = true;
            continue;
          case '\\':
            quoted = true;
            last_space = false;
            dollar = false;
            continue;
          case '"':
            ++start;
            d_quoted = true;
            last_space = false;
            dollar = false;
            continue;
          case '\'':
            ++start;
            s_quoted = true;
            last_space = false;
            dollar = false;
            continue;
          case '$':
            variable = true;
            last_space = false;
            dollar = true;
            continue;
          default:
            last_space = false;
            dollar = false;
        }
        continue;
      }
      if (ch == '{' && variable) continue;
      variable = false;
      if (ch == '\\') {
        quoted = true;
        continue;
      }
      if (ch == '$') {
        variable = true;
        dollar = true;
        continue;
      }
      bool found = false;
      if (d_quoted) {
        if (ch == '"') {
          d_quoted = false;
          need_space = true;
          found = true;
        }
      } else if (s_quoted) {
        if (ch == '\'') {
          s_quoted = false;
          need_space = true;
          found = true;
        }
      } else if (is_space(ch) || ch == ';' || ch == '{') {
        last_space = true;
        found = true;
      }
      if (!found) continue;
      const std::string_view raw = text.substr(start, pos - 1 - start);
      if (raw.size() > exporter::kMaxNginxQuotedToken) return std::nullopt;
      std::string word;
      for (std::size_t i = 0; i < raw.size();) {
        if (raw[i] == '\\' && i + 1 < raw.size()) {
          const char next = raw[i + 1];
          if (next == '"' || next == '\'' || next == '\\') {
            ++i;
          } else if (next == 't' || next == 'r' || next == 'n') {
            word.push_back(next == 't' ? '\t' : next == 'r' ? '\r' : '\n');
            i += 2;
            continue;
          }
        }
        word.push_back(raw[i++]);
      }
      d.words.push_back(std::move(word));
      d.had_dollar.push_back(dollar);
      dollar = false;
      if (ch == ';') {
        d.end = Directive::End::kSemicolon;
        break;
      }
      if (ch == '{') {
        d.end = Directive::End::kBlockStart;
        break;
      }
    }
    out.push_back(std::move(d));
  }
}

// The value the file maps `code` to inside `map $edge_code $<variable>`
// blocks, as ngx_http_map reads a line: two words, `default` and `include`
// are directives, a key "\x" means "x". A
// value holding '$' is a variable template (ngx_http_compile_complex_value),
// reported as nullopt just like a missing key.
struct Lookup {
  int lines = 0;  // map lines whose key is `code`
  std::optional<std::string> literal;
};

Lookup find_in_maps(const std::vector<Directive>& conf, const std::string& code) {
  Lookup result;
  int depth = 0;
  bool in_entry_map = false;
  for (const Directive& d : conf) {
    if (d.end == Directive::End::kBlockStart) {
      ++depth;
      in_entry_map = depth == 1 && d.words.size() == 3 && d.words[0] == "map" &&
                     d.words[1] == "$edge_code" && d.words[2].rfind("$edge_entry_", 0) == 0;
      continue;
    }
    if (d.end == Directive::End::kBlockEnd) {
      --depth;
      in_entry_map = false;
      continue;
    }
    if (!in_entry_map || d.words.size() != 2) continue;
    // Unescaped, these two are the map's own directives, not keys.
    if (d.words[0] == "default" || d.words[0] == "include") continue;
    std::string key = d.words[0];
    if (!key.empty() && key[0] == '\\') key.erase(0, 1);
    if (key != code) continue;
    ++result.lines;
    if (d.words[1].find('$') == std::string::npos) result.literal = d.words[1];
  }
  return result;
}

constexpr const char* kCodes[] = {"abc",      "default", "include", "hostnames",
                                  "volatile", "-dash",   "_under",  "9lives"};
constexpr int kStatuses[] = {301, 302, 307, 308};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  exporter::ExportEntry entry;
  entry.status = kStatuses[data[0] & 3];
  entry.forward_query = (data[0] & 4) != 0;
  entry.code = kCodes[data[1] % (sizeof kCodes / sizeof kCodes[0])];
  entry.target.assign(reinterpret_cast<const char*>(data + 2), size - 2);
  if ((data[0] & 8) != 0) entry.target = "https://" + entry.target;
  exporter::ExportEntry neighbour;
  neighbour.code = "zz-neighbour";
  neighbour.target = "https://example.com/n";

  const exporter::PreparedEntries prepared = exporter::prepare_entries({entry, neighbour});
  bool prepared_entry = false;
  for (const auto& e : prepared.entries) prepared_entry = prepared_entry || e.code == entry.code;
  const exporter::NginxMap map = exporter::render_nginx_map(prepared, {});
  const auto conf = read_conf(map.content);
  check(conf.has_value(), "nginx reads the rendered map");

  const Lookup neighbour_lookup = find_in_maps(*conf, neighbour.code);
  check(neighbour_lookup.lines == 1 && neighbour_lookup.literal == "307a https://example.com/n",
        "the neighbouring entry is intact");

  bool excluded = false;
  for (const auto& x : map.exclusions) excluded = excluded || x.code == entry.code;
  const Lookup lookup = find_in_maps(*conf, entry.code);
  if (!prepared_entry || excluded) {
    check(lookup.lines == 0, "a refused entry has no map line");
    return 0;
  }
  check(lookup.lines == 1, "an exported entry has exactly one map line");
  check(lookup.literal.has_value(), "the value is literal (no variable)");
  const std::string& value = *lookup.literal;
  check(value.size() > 5 && value.substr(0, 3) == std::to_string(entry.status) && value[4] == ' ',
        "value shape");
  check(value.substr(5) == entry.target, "the value parses back to exactly the target");
  return 0;
}
