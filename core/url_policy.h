// URL policy: decides whether a string may become a link target and, if so,
// the normalized form that is stored and sent byte for byte in `Location`.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace core {

// Why a candidate target was refused. `code` is a stable machine-readable
// token (e.g. "url_scheme", "url_userinfo"); `message` is one sentence for a
// person and never echoes more than a short prefix of the input.
struct UrlRejection {
  std::string code;
  std::string message;
};

struct UrlPolicyOptions {
  // Hosts that are the service itself (lowercase ASCII, no port). A target on
  // one of these hosts is refused because it would redirect into a loop.
  std::vector<std::string> own_hosts;
  // Upper bound in bytes for both the input and the normalized result.
  std::size_t max_length = 2048;
};

// Returns the normalized target or the reason it was refused. Pure function,
// thread-safe. Normalization: scheme and host lowercased, default port
// dropped, empty path becomes "/", non-ASCII hosts converted to punycode
// (IDNA2008), non-ASCII bytes and bytes outside RFC 3986's allowed set in
// path, query and fragment percent-encoded (uppercase hex), existing valid
// %XX escapes kept as they are. The result contains only printable ASCII and
// never `"`, `\`, `<`, `>`, `^`, `` ` ``, `{`, `|`, `}` or spaces.
//
// Details: the allowed set in path, query and fragment is unreserved,
// sub-delims, ':', '@', '/', '?' and '%' followed by two hex digits; the first
// '#' starts the fragment and any later '#' becomes %23. An empty port (":")
// is dropped; other ports are printed in decimal. IPv6 literals are printed in
// canonical form; a host whose last label is numeric must be a plain dotted
// quad. A single trailing dot of the host is kept. Dot segments are not
// removed. Normalizing a normalized target returns it unchanged.
//
// Rejection codes: url_empty, url_too_long (input or result above
// max_length), url_invalid_utf8, url_control_chars (C0, DEL, C1),
// url_whitespace (any space), url_not_absolute, url_scheme (not http/https),
// url_host (empty, backslash, percent-encoded, bad label, bad IP literal),
// url_userinfo, url_idn (libidn2 refused a non-ASCII or "xn--" label),
// url_port (not 1..65535), url_own_host (one of own_hosts, any port, any
// case, with or without trailing dot).
std::variant<std::string, UrlRejection> normalize_target(std::string_view input,
                                                         const UrlPolicyOptions& options);

// Percent-encodes bytes of a query string (without the leading '?') that may
// not appear in a normalized URL, exactly as normalize_target treats a query.
// Never refuses: spaces, control bytes, '#' and invalid UTF-8 are encoded too.
std::string normalize_query(std::string_view query);

}  // namespace core
