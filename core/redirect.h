// Builds the Location of a redirect from a stored target and the query string
// of the incoming request. Shared by the origin and the exporter so that the
// edge reproduces the origin's answer byte for byte.
#pragma once

#include <string>
#include <string_view>

namespace core {

// Merges `request_query` (raw, without '?', possibly empty) into `target` (a
// normalized URL from normalize_target). Rules:
//  1. If `request_query` is empty, or `forward_query` is false, returns `target`.
//  2. Request parameters are split on '&'; empty pieces are dropped. A
//     parameter whose key (bytes before the first '=', or the whole piece) is
//     also a key of the target's own query is dropped: the link's own
//     parameters win.
//     Keys are compared byte for byte after normalize_query (no decoding, case
//     sensitive), so "a b" in the request matches "a%20b" in the target.
//  3. The remaining parameters, normalized with normalize_query, are appended
//     in request order after the target's query ('&'-joined, or after a new
//     '?'), before any '#fragment' of the target. No '&' is added when the
//     target's query is empty ("?") or already ends in '&'. When no parameter
//     remains, returns `target` unchanged.
std::string build_location(std::string_view target, std::string_view request_query,
                           bool forward_query);

}  // namespace core
