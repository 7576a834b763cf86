#!/usr/bin/env bash
# Installs what qcowkit needs to build and test, from Debian's packages and
# (for the browser tests) the npm registry. Run as root it installs; run as
# anyone else it prints the exact command to run and fails.
#   scripts/install-deps.sh          everything `make test` needs
#   scripts/install-deps.sh demo     only what `make demo` needs
#   scripts/install-deps.sh deb      what `make deb` needs
set -euo pipefail
cd "$(dirname "$0")/.."

# The build configures the tests too (catch2) and the man pages (perl's
# pod2man); the package needs dpkg-dev (dpkg-shlibdeps) and file; the
# install test reads the pages with man-db; the benchmarks read peak memory
# with GNU time.
demo_packages=(cmake g++ ninja-build pkg-config zlib1g-dev libzstd-dev
               nbdkit nbdkit-plugin-dev libnbd-bin qemu-utils perl catch2)
deb_packages=("${demo_packages[@]}" dpkg-dev file man-db)
test_packages=("${deb_packages[@]}" clang-14 libfuzzer-14-dev libclang-rt-14-dev
               python3-libnbd fio emscripten binaryen chromium zstd time)

case "${1:-test}" in
  demo) wanted=("${demo_packages[@]}") ;;
  deb) wanted=("${deb_packages[@]}") ;;
  test) wanted=("${test_packages[@]}") ;;
  *) echo "usage: $0 [demo|deb|test]" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
# Node may come from Debian (nodejs + npm) or another Debian-format package
# that bundles npm; ask for Debian's only when the commands are missing.
if [[ "${1:-test}" == test ]]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "qcowkit: missing Debian packages. Install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "qcowkit: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Browser tests drive Debian's chromium with playwright-core from npm.
if [[ "${1:-test}" == test && -f tests/browser/package-lock.json ]]; then
  if [[ ! -d tests/browser/node_modules ]] ||
     [[ tests/browser/package-lock.json -nt tests/browser/node_modules ]]; then
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
