# Where `cmake --install` puts things, decided before any target exists.
#
# nbdkit finds a plugin or filter by its short name (`nbdkit qcow2`,
# `--filter=blockcache`) only in its own plugindir and filterdir, so unless
# you pick a prefix the install prefix is nbdkit's own (/usr on Debian).
# The two directories are kept relative to that prefix, so
# `-DCMAKE_INSTALL_PREFIX=/opt/q`, `cmake --install build --prefix /opt/q`
# and DESTDIR move them along with everything else.
find_package(PkgConfig REQUIRED)
pkg_check_modules(QCOWKIT_NBDKIT_PC QUIET nbdkit)
set(qcowkit_nbdkit_prefix /usr)
set(qcowkit_plugindir lib/nbdkit/plugins)
set(qcowkit_filterdir lib/nbdkit/filters)
if(QCOWKIT_NBDKIT_PC_FOUND)
  pkg_get_variable(qcowkit_nbdkit_prefix nbdkit prefix)
  foreach(kind plugindir filterdir)
    pkg_get_variable(dir nbdkit ${kind})
    string(LENGTH "${qcowkit_nbdkit_prefix}/" prefix_length)
    string(SUBSTRING "${dir}" 0 ${prefix_length} head)
    if(head STREQUAL "${qcowkit_nbdkit_prefix}/")
      string(SUBSTRING "${dir}" ${prefix_length} -1 dir)
    endif()
    set(qcowkit_${kind} "${dir}")
  endforeach()
endif()

if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX "${qcowkit_nbdkit_prefix}" CACHE PATH
      "Install prefix (default: nbdkit's, so nbdkit finds the plugin and filters by name)" FORCE)
endif()
include(GNUInstallDirs)

set(QCOWKIT_NBDKIT_PLUGINDIR "${qcowkit_plugindir}" CACHE STRING
    "Where the nbdkit plugin goes, relative to the install prefix (nbdkit's plugindir)")
set(QCOWKIT_NBDKIT_FILTERDIR "${qcowkit_filterdir}" CACHE STRING
    "Where the nbdkit filters go, relative to the install prefix (nbdkit's filterdir)")
set(QCOWKIT_WEBDIR "${CMAKE_INSTALL_DATADIR}/qcowkit/web" CACHE STRING
    "Where the web page and the WebAssembly module go")
# The WebAssembly module is built in its own tree (`make wasm`); the install
# takes it from there when it exists.
set(QCOWKIT_WASM_BUILD_DIR "${PROJECT_SOURCE_DIR}/build-wasm" CACHE PATH
    "The Emscripten build tree whose qcowkit.js and qcowkit.wasm are installed with the page")
