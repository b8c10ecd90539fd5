// Invariants of a normalized target, relied upon by `Location` and the exporter:
//  1. It is printable ASCII only: no space, control byte or non-ASCII byte.
//  2. It is "http" or "https", then "://", a host, an optional non-default port and a
//     path that starts with '/'; there is never userinfo.
//  3. The host is a dotted-quad IPv4 address, a bracketed IPv6 address in inet_ntop's
//     canonical form, or lowercase LDH labels (IDNs as punycode), with at most one
//     trailing dot.
//  4. Path, query and fragment hold only unreserved, sub-delims, ':', '@', '/', '?' and
//     '%' followed by two hex digits; so normalizing a normalized target is a no-op.
#include "core/url_policy.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace core {
namespace {

constexpr std::size_t kMaxHostLength = 253;
constexpr std::size_t kMaxLabelLength = 63;
constexpr std::uint32_t kMaxPort = 65535;
constexpr char kHexDigits[] = "0123456789ABCDEF";

using HostResult = std::variant<std::string, UrlRejection>;

UrlRejection reject(std::string code, std::string message) {
  return UrlRejection{std::move(code), std::move(message)};
}

bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }

bool is_hex_digit(char c) {
  return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

char to_lower_ascii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower_ascii(std::string_view text) {
  std::string lowered(text);
  for (char& c : lowered) c = to_lower_ascii(c);
  return lowered;
}

bool is_non_ascii(char c) { return static_cast<unsigned char>(c) >= 0x80; }

// The bytes besides letters and digits that may appear unencoded in a path, query or
// fragment: RFC 3986 unreserved, sub-delims, then ':', '@', '/', '?'. '#', '[' and ']'
// are left out, so a '#' after the first one is encoded.
constexpr std::string_view kAllowedSymbols =
    "-._~"
    "!$&'()*+,;="
    ":@/?";

bool is_allowed_in_path_query_fragment(char c) {
  return is_ascii_alpha(c) || is_ascii_digit(c) ||
         kAllowedSymbols.find(c) != std::string_view::npos;
}

void append_percent_encoded(std::string_view part, std::string& out) {
  for (std::size_t i = 0; i < part.size(); ++i) {
    const char c = part[i];
    const bool valid_escape =
        c == '%' && i + 2 < part.size() && is_hex_digit(part[i + 1]) && is_hex_digit(part[i + 2]);
    if (is_allowed_in_path_query_fragment(c) || valid_escape) {
      out.push_back(c);
      continue;
    }
    const auto byte = static_cast<unsigned char>(c);
    out.push_back('%');
    out.push_back(kHexDigits[byte >> 4]);
    out.push_back(kHexDigits[byte & 0x0F]);
  }
}

enum class TextProblem { kNone, kInvalidUtf8, kControlChar };

// Decodes strictly (no overlong forms, no surrogates, nothing above U+10FFFF) so that
// every later step can treat the input as well-formed UTF-8. C0, DEL and C1 controls
// are reported because they can hide or split a URL when it is displayed or logged.
TextProblem find_text_problem(std::string_view text) {
  TextProblem found = TextProblem::kNone;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::uint32_t code_point = 0;
    std::size_t length = 0;
    std::uint32_t min_value = 0;
    if (lead < 0x80) {
      code_point = lead;
      length = 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      code_point = lead & 0x1Fu;
      length = 2;
      min_value = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      code_point = lead & 0x0Fu;
      length = 3;
      min_value = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      code_point = lead & 0x07u;
      length = 4;
      min_value = 0x10000;
    } else {
      return TextProblem::kInvalidUtf8;
    }
    if (i + length > text.size()) return TextProblem::kInvalidUtf8;
    for (std::size_t k = 1; k < length; ++k) {
      const auto continuation = static_cast<unsigned char>(text[i + k]);
      if ((continuation & 0xC0u) != 0x80u) return TextProblem::kInvalidUtf8;
      code_point = (code_point << 6) | (continuation & 0x3Fu);
    }
    if (code_point < min_value || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return TextProblem::kInvalidUtf8;
    }
    if (code_point < 0x20 || (code_point >= 0x7F && code_point <= 0x9F)) {
      found = TextProblem::kControlChar;
    }
    i += length;
  }
  return found;
}

bool is_valid_scheme(std::string_view scheme) {
  if (scheme.empty() || !is_ascii_alpha(scheme.front())) return false;
  for (const char c : scheme) {
    if (!is_ascii_alpha(c) && !is_ascii_digit(c) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> pieces;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(separator, start);
    if (end == std::string_view::npos) {
      pieces.push_back(text.substr(start));
      return pieces;
    }
    pieces.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

bool starts_with_ace_prefix(std::string_view label) {
  return label.size() >= 4 && to_lower_ascii(label.substr(0, 4)) == "xn--";
}

// WHATWG's "ends in a number" test: browsers parse such a host as IPv4 (accepting
// forms like "2130706433" or "0x7f.1"), so it must be a plain dotted quad or refused.
bool ends_in_number(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  const std::size_t dot = host.rfind('.');
  const std::string_view last = dot == std::string_view::npos ? host : host.substr(dot + 1);
  if (last.empty()) return false;
  bool all_digits = true;
  for (const char c : last) all_digits = all_digits && is_ascii_digit(c);
  if (all_digits) return true;
  if (last.size() < 2 || last[0] != '0' || (last[1] != 'x' && last[1] != 'X')) return false;
  for (const char c : last.substr(2)) {
    if (!is_hex_digit(c)) return false;
  }
  return true;
}

bool is_dotted_quad(std::string_view host) {
  const std::vector<std::string_view> parts = split(host, '.');
  if (parts.size() != 4) return false;
  for (const std::string_view part : parts) {
    if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return false;
    int value = 0;
    for (const char c : part) {
      if (!is_ascii_digit(c)) return false;
      value = value * 10 + (c - '0');
    }
    if (value > 255) return false;
  }
  return true;
}

std::optional<UrlRejection> check_dns_name(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.size() > kMaxHostLength) {
    return reject("url_host", "The host is longer than 253 bytes.");
  }
  for (const std::string_view label : split(host, '.')) {
    if (label.empty()) return reject("url_host", "The host contains an empty label.");
    if (label.size() > kMaxLabelLength) {
      return reject("url_host", "A label of the host is longer than 63 bytes.");
    }
    for (const char c : label) {
      if (!(c >= 'a' && c <= 'z') && !is_ascii_digit(c) && c != '-') {
        return reject("url_host", "The host may only contain letters, digits, hyphens and dots.");
      }
    }
    if (label.front() == '-' || label.back() == '-') {
      return reject("url_host", "A label of the host starts or ends with a hyphen.");
    }
  }
  return std::nullopt;
}

// Converts one label with IDNA2008 (UTS #46 non-transitional mapping). Labels are
// converted one at a time so that plain ASCII labels such as "r3---sn-x" keep working:
// libidn2 would refuse their "--" at positions 3-4 although DNS and browsers accept it.
HostResult label_to_ascii(std::string_view label) {
  const std::string input(label);
  char* output = nullptr;
  const int rc = idn2_to_ascii_8z(input.c_str(), &output, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  if (rc != IDN2_OK) {
    idn2_free(output);
    return reject("url_idn",
                  std::string("The host is not a valid internationalized domain name (") +
                      idn2_strerror(rc) + ").");
  }
  std::string converted(output);
  idn2_free(output);
  return converted;
}

HostResult normalize_ipv6_host(std::string_view literal) {
  for (const char c : literal) {
    if (!is_hex_digit(c) && c != ':' && c != '.') {
      return reject("url_host", "The host is not a valid IPv6 address.");
    }
  }
  in6_addr address{};
  const std::string text(literal);
  if (inet_pton(AF_INET6, text.c_str(), &address) != 1) {
    return reject("url_host", "The host is not a valid IPv6 address.");
  }
  char canonical[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(AF_INET6, &address, canonical, sizeof canonical) == nullptr) {
    return reject("url_host", "The host is not a valid IPv6 address.");
  }
  return "[" + std::string(canonical) + "]";
}

HostResult normalize_name_host(std::string_view host) {
  if (host.empty()) return reject("url_host", "The URL has no host.");
  for (const char c : host) {
    if (c == '%') return reject("url_host", "The host must not be percent-encoded.");
    if (!is_non_ascii(c) && !is_ascii_alpha(c) && !is_ascii_digit(c) && c != '-' && c != '.') {
      return reject("url_host", "The host may only contain letters, digits, hyphens and dots.");
    }
  }
  std::string ascii;
  ascii.reserve(host.size());
  bool first = true;
  for (const std::string_view label : split(host, '.')) {
    if (!first) ascii.push_back('.');
    first = false;
    bool has_non_ascii = false;
    for (const char c : label) has_non_ascii = has_non_ascii || is_non_ascii(c);
    if (has_non_ascii || starts_with_ace_prefix(label)) {
      HostResult converted = label_to_ascii(label);
      if (auto* rejection = std::get_if<UrlRejection>(&converted)) return std::move(*rejection);
      ascii += std::get<std::string>(converted);
    } else {
      ascii += to_lower_ascii(label);
    }
  }
  // The checks run on the converted name: IDNA mapping can produce dots, empty labels
  // or ASCII symbols (a fullwidth '@' becomes '@').
  if (auto rejection = check_dns_name(ascii)) return std::move(*rejection);
  if (ends_in_number(ascii) && !is_dotted_quad(ascii)) {
    return reject("url_host", "The host is not a valid IPv4 address.");
  }
  return ascii;
}

// Lowercase, without a trailing dot and without IPv6 brackets, IPv6 in canonical form:
// the shape in which the own-host check compares names.
std::string comparable_host(std::string_view host) {
  std::string lowered = to_lower_ascii(host);
  if (!lowered.empty() && lowered.back() == '.') lowered.pop_back();
  if (lowered.size() >= 2 && lowered.front() == '[' && lowered.back() == ']') {
    lowered = lowered.substr(1, lowered.size() - 2);
  }
  in6_addr address{};
  char canonical[INET6_ADDRSTRLEN] = {};
  if (lowered.find(':') != std::string::npos &&
      inet_pton(AF_INET6, lowered.c_str(), &address) == 1 &&
      inet_ntop(AF_INET6, &address, canonical, sizeof canonical) != nullptr) {
    return canonical;
  }
  return lowered;
}

// Returns the port to print, "" when it is empty or the scheme's default (RFC 3986
// section 6.2.3 drops both).
std::variant<std::string, UrlRejection> normalize_port(std::string_view port,
                                                       std::string_view scheme) {
  if (port.empty()) return std::string();
  std::uint32_t value = 0;
  for (const char c : port) {
    if (!is_ascii_digit(c)) return reject("url_port", "The port must be a number from 1 to 65535.");
    value = value * 10 + static_cast<std::uint32_t>(c - '0');
    if (value > kMaxPort) return reject("url_port", "The port must be a number from 1 to 65535.");
  }
  if (value == 0) return reject("url_port", "The port must be a number from 1 to 65535.");
  if ((scheme == "http" && value == 80) || (scheme == "https" && value == 443)) {
    return std::string();
  }
  return std::to_string(value);
}

}  // namespace

std::variant<std::string, UrlRejection> normalize_target(std::string_view input,
                                                         const UrlPolicyOptions& options) {
  if (input.empty()) return reject("url_empty", "The URL is empty.");
  if (input.size() > options.max_length) {
    return reject("url_too_long",
                  "The URL is longer than " + std::to_string(options.max_length) + " bytes.");
  }
  switch (find_text_problem(input)) {
    case TextProblem::kInvalidUtf8:
      return reject("url_invalid_utf8", "The URL is not valid UTF-8.");
    case TextProblem::kControlChar:
      return reject("url_control_chars", "The URL contains a control character.");
    case TextProblem::kNone:
      break;
  }
  if (input.front() == ' ' || input.back() == ' ') {
    return reject("url_whitespace", "The URL starts or ends with whitespace.");
  }
  if (input.find(' ') != std::string_view::npos) {
    return reject("url_whitespace", "The URL contains a space; encode it as %20.");
  }

  const std::size_t colon = input.find(':');
  const std::string_view scheme_text =
      colon == std::string_view::npos ? std::string_view() : input.substr(0, colon);
  if (!is_valid_scheme(scheme_text)) {
    return reject("url_not_absolute",
                  "The URL must be absolute and start with http:// or https://.");
  }
  const std::string scheme = to_lower_ascii(scheme_text);
  if (scheme != "http" && scheme != "https") {
    return reject("url_scheme", "Only http and https URLs are allowed.");
  }
  std::string_view rest = input.substr(colon + 1);
  if (rest.substr(0, 2) != "//") {
    return reject("url_not_absolute",
                  "The URL must be absolute and start with http:// or https://.");
  }
  rest.remove_prefix(2);

  const std::size_t authority_end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, authority_end);
  const std::string_view after_authority =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  // Browsers read '\' as '/' in http(s) URLs, so "evil.com\@good.com" would be parsed
  // differently by us and by them.
  if (authority.find('\\') != std::string_view::npos) {
    return reject("url_host", "The host must not contain a backslash.");
  }
  if (authority.find('@') != std::string_view::npos) {
    return reject("url_userinfo", "The URL must not contain a user name or password.");
  }

  std::string_view host_text = authority;
  std::string_view port_text;
  bool is_ipv6 = false;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return reject("url_host", "The host is not a valid IPv6 address.");
    }
    host_text = authority.substr(1, close - 1);
    const std::string_view after_host = authority.substr(close + 1);
    if (!after_host.empty() && after_host.front() != ':') {
      return reject("url_host", "The host is not a valid IPv6 address.");
    }
    port_text = after_host.empty() ? after_host : after_host.substr(1);
    is_ipv6 = true;
  } else if (const std::size_t port_colon = authority.find(':');
             port_colon != std::string_view::npos) {
    host_text = authority.substr(0, port_colon);
    port_text = authority.substr(port_colon + 1);
  }

  HostResult host = is_ipv6 ? normalize_ipv6_host(host_text) : normalize_name_host(host_text);
  if (auto* rejection = std::get_if<UrlRejection>(&host)) return std::move(*rejection);
  auto port = normalize_port(port_text, scheme);
  if (auto* rejection = std::get_if<UrlRejection>(&port)) return std::move(*rejection);

  const std::string own_candidate = comparable_host(std::get<std::string>(host));
  for (const std::string& own_host : options.own_hosts) {
    if (own_candidate == comparable_host(own_host)) {
      return reject("url_own_host", "The URL points to this service itself.");
    }
  }

  std::string normalized = scheme + "://" + std::get<std::string>(host);
  if (!std::get<std::string>(port).empty()) normalized += ":" + std::get<std::string>(port);
  if (after_authority.empty() || after_authority.front() != '/') normalized.push_back('/');
  const std::size_t hash = after_authority.find('#');
  append_percent_encoded(after_authority.substr(0, hash), normalized);
  if (hash != std::string_view::npos) {
    normalized.push_back('#');
    append_percent_encoded(after_authority.substr(hash + 1), normalized);
  }
  if (normalized.size() > options.max_length) {
    return reject("url_too_long", "The URL is longer than " + std::to_string(options.max_length) +
                                      " bytes once normalized.");
  }
  return normalized;
}

std::string normalize_query(std::string_view query) {
  std::string normalized;
  normalized.reserve(query.size());
  append_percent_encoded(query, normalized);
  return normalized;
}

}  // namespace core
