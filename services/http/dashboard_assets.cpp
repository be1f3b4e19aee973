#include "services/http/dashboard_assets.hpp"

#include <algorithm>

namespace healthtwin::services {

// Generated at build time from services/http/dashboard/ (cmake/embed_assets.cmake).
extern const dashboard_asset dashboard_files[];
extern const size_t dashboard_file_count;

const dashboard_asset* find_dashboard_asset(std::string_view path) {
  if (path == "/index.html")
    path = "/";
  auto* end = dashboard_files + dashboard_file_count;
  auto* it = std::find_if(dashboard_files, end, [&](const dashboard_asset& a) { return a.path == path; });
  return it == end ? nullptr : it;
}

std::vector<std::pair<std::string, std::string>> dashboard_headers() {
  return {{"Content-Security-Policy",
           "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"},
          {"X-Content-Type-Options", "nosniff"},
          {"Referrer-Policy", "no-referrer"},
          {"X-Frame-Options", "DENY"}};
}

}  // namespace healthtwin::services
