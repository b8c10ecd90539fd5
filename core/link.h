// The link model shared by the origin and the exporter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/time_format.h"

namespace core {

// A stored short link. `code` is lowercase; `target` is normalized by
// normalize_target and is what Location carries.
struct Link {
  std::string code;
  std::string target;
  int status = 307;
  bool forward_query = true;
  std::optional<TimePoint> expires_at;
  bool disabled = false;
  TimePoint created_at;
  TimePoint updated_at;
  // The API key that created the link; nullopt when created without one
  // (OPEN_SHORTEN=true, or before keys existed).
  std::optional<std::int64_t> owner_key_id;
};

enum class LinkState { kActive, kExpired, kDisabled };

inline LinkState state_at(const Link& link, TimePoint now) {
  if (link.disabled) return LinkState::kDisabled;
  if (link.expires_at && *link.expires_at <= now) return LinkState::kExpired;
  return LinkState::kActive;
}

inline bool is_redirect_status(long long status) {
  return status == 301 || status == 302 || status == 307 || status == 308;
}

}  // namespace core
