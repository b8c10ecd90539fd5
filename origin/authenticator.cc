#include "origin/authenticator.h"

namespace origin {
namespace {

bool well_formed(const std::string& key) {
  if (key.size() != kKeyLength || key.compare(0, kKeyScheme.size(), kKeyScheme) != 0) return false;
  for (std::size_t i = kKeyScheme.size(); i < key.size(); ++i) {
    const char c = key[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Authenticator::Authenticator(KeyStore& store, std::chrono::milliseconds ttl,
                             std::size_t max_entries)
    : store_(store), ttl_(ttl), max_entries_(max_entries) {}

Authenticator::Result Authenticator::authenticate(const std::optional<std::string>& key) {
  Result result;
  if (!key) return result;
  result.outcome = Outcome::kInvalid;
  // Junk never reaches the database.
  if (!well_formed(*key)) return result;
  const KeyHash hash = hash_api_key(*key);
  const std::string id(reinterpret_cast<const char*>(hash.data()), hash.size());
  const auto now = std::chrono::steady_clock::now();
  std::uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it != entries_.end() && it->second.expires > now) {
      if (it->second.identity) {
        result.outcome = Outcome::kValid;
        result.identity = *it->second.identity;
      }
      return result;
    }
    generation = generation_;
    ++store_lookups_;
  }
  std::optional<KeyIdentity> identity = store_.find_active(hash);
  if (identity) {
    result.outcome = Outcome::kValid;
    result.identity = *identity;
  }
  if (ttl_.count() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    if (generation == generation_) {
      if (entries_.size() >= max_entries_) entries_.clear();
      entries_[id] = Entry{identity, now + ttl_};
    }
  }
  return result;
}

void Authenticator::forget_all() {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.clear();
  ++generation_;
}

std::uint64_t Authenticator::store_lookups() const {
  std::lock_guard<std::mutex> lock(mu_);
  return store_lookups_;
}

}  // namespace origin
