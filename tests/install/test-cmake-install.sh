#!/usr/bin/env bash
# cmake --install honours --prefix and DESTDIR: everything lands under
# DESTDIR/PREFIX, nbdkit's directories included, and nothing elsewhere.
source "$(dirname "$0")/lib.sh"
need pkg-config pkg-config

dest=$TEST_TMP/cmake-install
rm -rf "$dest"
mkdir -p "$dest"
DESTDIR=$dest cmake --install "$BUILD_DIR" --prefix /opt/qcowkit >"$dest.log"

root=$dest/opt/qcowkit
expect_file "$root" bin/qcowkit \
  "$plugindir/nbdkit-qcow2-plugin.so" \
  "$filterdir/nbdkit-blockcache-filter.so" "$filterdir/nbdkit-qcow2-filter.so" \
  share/qcowkit/web/index.html share/qcowkit/web/app.js share/qcowkit/web/worker.js \
  share/man/man1/nbdkit-qcow2-plugin.1.gz share/man/man1/nbdkit-blockcache-filter.1.gz \
  share/man/man1/nbdkit-qcow2-filter.1.gz \
  share/man/man1/qcowkit.1.gz share/doc/qcowkit/README.md
if [[ -f $SOURCE_DIR/build-wasm/wasm/qcowkit.wasm ]]; then
  expect_file "$root" share/qcowkit/web/qcowkit.js share/qcowkit/web/qcowkit.wasm
fi
stray=$(cd "$dest" && find . -type f ! -path './opt/qcowkit/*')
[[ -z $stray ]] || fail "installed outside the prefix: $stray"

version=$("$root/bin/qcowkit" --version)
[[ $version =~ ^qcowkit\ [0-9]+\.[0-9]+\.[0-9]+\ \(git\ [^\)]+\)$ ]] || fail "unexpected qcowkit --version: $version"
dump=$(nbdkit "$root/$plugindir/nbdkit-qcow2-plugin.so" --dump-plugin)
grep -q '^qcowkit_git_revision=' <<<"$dump" ||
  fail "the installed plugin's --dump-plugin has no qcowkit_git_revision"
echo "ok: cmake --install --prefix /opt/qcowkit with DESTDIR put $(cd "$dest" && find . -type f | wc -l) files under the prefix"
