# healthtwin_add_module(<name> SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
# Creates the static library healthtwin::<name>. Headers are included by their
# path from the repository root: #include "actors/models/news2_score.hpp".
function(healthtwin_add_module name)
  cmake_parse_arguments(M "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(healthtwin_${name} STATIC ${M_SOURCES})
  add_library(healthtwin::${name} ALIAS healthtwin_${name})
  target_include_directories(healthtwin_${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(healthtwin_${name}
    PUBLIC healthtwin_options ${M_PUBLIC_DEPS}
    PRIVATE ${M_PRIVATE_DEPS})
endfunction()

# healthtwin_add_test(<name> SOURCES ... DEPS ... [LABELS ...] [TIMEOUT s] [SERIAL])
# One GoogleTest binary; every TEST becomes its own CTest entry.
include(GoogleTest)
function(healthtwin_add_test name)
  cmake_parse_arguments(T "SERIAL" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE healthtwin_options ${T_DEPS}
                        GTest::gtest GTest::gmock GTest::gtest_main)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  # SERIAL: the tests run alone (load tests whose figures other tests would skew).
  # DISABLED_ tests are helpers another test runs (in a network namespace,
  # say), not CTest entries.
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    TEST_FILTER "-*DISABLED_*"
    PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT} RUN_SERIAL ${T_SERIAL})
endfunction()
