# Every dependency comes from a Debian 12 package (see scripts/install-deps).

find_package(Threads REQUIRED)

# ---- CAF 0.17.6 (libcaf-dev ships no CMake config) -------------------------
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY NAMES caf_core REQUIRED)
find_library(CAF_IO_LIBRARY NAMES caf_io REQUIRED)
file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" _caf_ver_line
     REGEX "^#define CAF_VERSION [0-9]+")
string(REGEX REPLACE ".* ([0-9]+)$" "\\1" CAF_VERSION_NUM "${_caf_ver_line}")
if(NOT CAF_VERSION_NUM EQUAL 1706)
  message(FATAL_ERROR "expected CAF 0.17.6 (1706), found ${CAF_VERSION_NUM}")
endif()
# Same target names as CAF >= 0.18's own CAFConfig.cmake.
add_library(CAF::core UNKNOWN IMPORTED)
set_target_properties(CAF::core PROPERTIES
  IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES Threads::Threads)

find_package(OpenSSL REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(RocksDB CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(GTest REQUIRED)
find_package(benchmark REQUIRED)

find_path(XXHASH_INCLUDE_DIR xxhash.h REQUIRED)
find_library(XXHASH_LIBRARY NAMES xxhash REQUIRED)
add_library(xxhash::xxhash UNKNOWN IMPORTED)
set_target_properties(xxhash::xxhash PROPERTIES
  IMPORTED_LOCATION "${XXHASH_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${XXHASH_INCLUDE_DIR}")

# libjwt (bearer token signatures: RS256, ES256, HS256), OpenSSL flavour.
find_path(JWT_INCLUDE_DIR jwt.h REQUIRED)
find_library(JWT_LIBRARY NAMES jwt REQUIRED)
add_library(jwt::jwt UNKNOWN IMPORTED)
set_target_properties(jwt::jwt PROPERTIES
  IMPORTED_LOCATION "${JWT_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${JWT_INCLUDE_DIR}")

# libcurl (OpenSSL flavour): FHIR subscription notifications to subscribers' HTTPS endpoints.
find_package(CURL 7.85 REQUIRED)

# Boost.Beast/Asio (header-only; libboost-dev): the HTTP(S) listener.
find_package(Boost 1.74 REQUIRED)

# tcmalloc (gperftools): the node allocates per message and per batch on
# several threads; see docs/adr/0005-tcmalloc.md. Not with sanitizers.
find_library(TCMALLOC_LIBRARY NAMES tcmalloc_minimal REQUIRED)

# C-Raft (libraft-dev, with its libuv backend; libuv1-dev): the replicated
# shards' log (docs/adr/0036, 0037).
find_package(PkgConfig REQUIRED)
pkg_check_modules(RAFT REQUIRED IMPORTED_TARGET raft libuv)
