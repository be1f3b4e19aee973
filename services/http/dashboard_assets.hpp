#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace healthtwin::services {

/// A file of the ward dashboard, compiled into the node
/// (services/http/dashboard/).
struct dashboard_asset {
  std::string_view path;          ///< "/" for the page, "/dashboard/<file>" for the rest
  std::string_view content_type;
  std::string_view body;
};

/// The dashboard's file served at `path`; null when there is none.
const dashboard_asset* find_dashboard_asset(std::string_view path);

/// Headers of every dashboard file: a content security policy that admits
/// only the node's own scripts, styles and API, no framing, no sniffing.
std::vector<std::pair<std::string, std::string>> dashboard_headers();

}  // namespace healthtwin::services
