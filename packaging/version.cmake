# The version every component prints: the project version and the git
# revision the build was configured from (`git describe --always --dirty`),
# or "unknown" outside a git checkout of this project. `make build` runs the
# configure step each time, so the revision follows the checkout; the header
# is rewritten only when it changes, so only the few files that print it
# rebuild.
set(QCOWKIT_GIT_REVISION unknown)
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --show-toplevel
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE qcowkit_git_toplevel RESULT_VARIABLE qcowkit_git_rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  # A source tree unpacked inside some other repository is not a checkout.
  if(qcowkit_git_rc EQUAL 0)
    file(REAL_PATH "${qcowkit_git_toplevel}" qcowkit_git_toplevel)
    file(REAL_PATH "${PROJECT_SOURCE_DIR}" qcowkit_source_dir)
  endif()
  if(qcowkit_git_rc EQUAL 0 AND qcowkit_git_toplevel STREQUAL qcowkit_source_dir)
    execute_process(COMMAND ${GIT_EXECUTABLE} describe --always --dirty
                    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                    OUTPUT_VARIABLE qcowkit_git_describe RESULT_VARIABLE qcowkit_git_rc
                    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(qcowkit_git_rc EQUAL 0 AND qcowkit_git_describe)
      set(QCOWKIT_GIT_REVISION "${qcowkit_git_describe}")
    endif()
  endif()
endif()
message(STATUS "qcowkit ${PROJECT_VERSION}, git revision ${QCOWKIT_GIT_REVISION}")

configure_file(${CMAKE_CURRENT_LIST_DIR}/build_info.hpp.in
               ${PROJECT_BINARY_DIR}/generated/qcowkit/build_info.hpp @ONLY)
# Link this to print the version; the core itself does not depend on it.
add_library(qcowkit_build_info INTERFACE)
target_include_directories(qcowkit_build_info INTERFACE ${PROJECT_BINARY_DIR}/generated)
