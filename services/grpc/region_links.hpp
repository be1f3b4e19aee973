#pragma once
// Regions (docs/multi-region.md): each region is its own cluster; a patient
// is homed in one, and its data is stored only there. A node with a region
// knows the public API endpoints of the other regions and, for a patient or
// device it does not have, finds the region that does and forwards the call
// there with the caller's token, or redirects the caller to it.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <grpcpp/grpcpp.h>

#include "services/grpc/region_settings.hpp"
#include "services/peer/owner_forwarding.hpp"

namespace healthtwin::services {

/// A call forwarded from another region carries this header, naming that
/// region: it is served here or refused, never sent on to a third region.
inline constexpr const char* region_forwarded_header = "x-healthtwin-region-forwarded-by";
/// Trailing metadata of a redirect: the twin's home region.
inline constexpr const char* home_region_header = "x-healthtwin-home-region";

/// Where a twin that is not registered here is homed.
struct twin_home {
  /// OK: `region` has it. NOT_FOUND: no region has it. Otherwise why it is
  /// not known (a region could not be asked, or refused the caller).
  grpc::Status status;
  std::string region;
};

/// The other regions' channels and the homes found by asking. Thread-safe.
class region_links {
public:
  explicit region_links(region_settings settings);

  const region_settings& settings() const { return settings_; }
  /// True for a region that is neither empty nor this node's.
  bool elsewhere(std::string_view region) const { return !region.empty() && region != settings_.self; }
  /// The endpoint of `region`; empty when none is configured.
  std::string endpoint(std::string_view region) const;

  /// Stubs of `region`'s public API (made on first use, again when the CA
  /// file changes); null with `why` set when it has no endpoint or the
  /// channel cannot be made.
  std::shared_ptr<owner_stubs> stubs(std::string_view region, std::string& why);

  /// Asks every other region at once whether it has `name` (LocateTwin,
  /// each call made ready by `prepare`: the caller's token and deadline).
  /// A region's own answer wins over the others' NOT_FOUND; found homes are
  /// remembered (remember_for).
  twin_home locate(const std::string& name, const std::function<void(grpc::ClientContext&)>& prepare);

  /// The home remembered for `name`, empty if none (or it expired).
  std::string remembered(std::string_view name);
  void forget(std::string_view name);

private:
  struct link {
    std::string files;
    std::shared_ptr<owner_stubs> stubs;
  };
  struct memory {
    std::string region;
    std::chrono::steady_clock::time_point until;
  };
  const region_settings settings_;
  std::mutex mtx_;
  std::map<std::string, link, std::less<>> links_;
  std::unordered_map<std::string, memory> remembered_;
};

}  // namespace healthtwin::services
