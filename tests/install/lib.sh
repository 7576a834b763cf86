# Shared by the install tests: fail with a message, need a command.
set -euo pipefail
: "${BUILD_DIR:?}" "${SOURCE_DIR:?}" "${TEST_TMP:?}"

fail() { echo "FAIL: $*" >&2; exit 1; }

# need COMMAND DEBIAN-PACKAGE
need() {
  command -v "$1" >/dev/null || fail "$1 is missing: apt-get install $2 (scripts/install-deps.sh does)"
}

# expect_file ROOT PATH...: each PATH (relative to ROOT) exists.
expect_file() {
  local root=$1; shift
  for f in "$@"; do
    [[ -e "$root/$f" ]] || fail "$f is not in $root"
  done
}

# The nbdkit directories, relative to nbdkit's prefix (as installed).
nbdkit_prefix=$(pkg-config --variable=prefix nbdkit)
plugindir=$(pkg-config --variable=plugindir nbdkit)
filterdir=$(pkg-config --variable=filterdir nbdkit)
plugindir=${plugindir#"$nbdkit_prefix"/}
filterdir=${filterdir#"$nbdkit_prefix"/}
