#include "core/redirect.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "core/url_policy.h"

namespace core {
namespace {

std::string_view key_of(std::string_view parameter) {
  return parameter.substr(0, parameter.find('='));
}

std::vector<std::string_view> non_empty_parameters(std::string_view query) {
  std::vector<std::string_view> parameters;
  std::size_t start = 0;
  while (start <= query.size()) {
    const std::size_t end = std::min(query.find('&', start), query.size());
    if (end > start) parameters.push_back(query.substr(start, end - start));
    start = end + 1;
  }
  return parameters;
}

}  // namespace

std::string build_location(std::string_view target, std::string_view request_query,
                           bool forward_query) {
  if (!forward_query || request_query.empty()) return std::string(target);

  const std::size_t hash = target.find('#');
  const std::string_view fragment =
      hash == std::string_view::npos ? std::string_view() : target.substr(hash);
  const std::string_view before_fragment = target.substr(0, hash);
  const std::size_t question = before_fragment.find('?');
  const bool has_query = question != std::string_view::npos;
  const std::string_view target_query =
      has_query ? before_fragment.substr(question + 1) : std::string_view();

  std::vector<std::string_view> target_keys;
  for (const std::string_view parameter : non_empty_parameters(target_query)) {
    target_keys.push_back(key_of(parameter));
  }

  // The request query is normalized before it is split and compared: encoding never
  // adds or removes '&' or '=', and keys then compare in the same form as the
  // target's, which normalize_target already encoded.
  const std::string normalized_request = normalize_query(request_query);
  std::string forwarded;
  for (const std::string_view parameter : non_empty_parameters(normalized_request)) {
    if (std::find(target_keys.begin(), target_keys.end(), key_of(parameter)) != target_keys.end()) {
      continue;
    }
    if (!forwarded.empty()) forwarded.push_back('&');
    forwarded.append(parameter);
  }
  if (forwarded.empty()) return std::string(target);

  std::string location(before_fragment);
  if (!has_query) {
    location.push_back('?');
  } else if (!target_query.empty() && target_query.back() != '&') {
    location.push_back('&');
  }
  location += forwarded;
  location.append(fragment);
  return location;
}

}  // namespace core
