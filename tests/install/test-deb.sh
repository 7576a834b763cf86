#!/usr/bin/env bash
# The Debian package: built with CPack from the build tree (what `make deb`
# runs), its control fields, then unpacked into a scratch root with
# dpkg-deb -x, where the plugin serves an image, the filter caches it, the
# tool runs and the man pages render.
source "$(dirname "$0")/lib.sh"
need cpack cmake
need dpkg-deb dpkg
need dpkg-shlibdeps dpkg-dev
need file file
need man man-db
need nbdkit nbdkit
need nbdinfo libnbd-bin
need nbdcopy libnbd-bin
need pkg-config pkg-config

work=$TEST_TMP/deb
rm -rf "$work"
mkdir -p "$work/pkg" "$work/root"
cpack --config "$BUILD_DIR/CPackConfig.cmake" -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; fail "cpack -G DEB failed"; }
debs=("$work"/pkg/qcowkit_*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || fail "expected one qcowkit_*.deb in $work/pkg"
deb=${debs[0]}
echo "package: $(basename "$deb")"

# Control fields: nbdkit at the release built against, the libraries from
# dpkg-shlibdeps.
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
nbdkit_version=$(pkg-config --modversion nbdkit)
[[ $depends == *"nbdkit (>= $nbdkit_version)"* ]] || fail "Depends lacks nbdkit (>= $nbdkit_version)"
[[ $depends == *"nbdkit (<< "* ]] || fail "Depends does not bound nbdkit to the release built against"
names=" $(sed -E 's/ \([^)]*\)//g; s/,//g' <<<"$depends") "
for lib in libzstd1 zlib1g libc6 libstdc++6; do
  [[ $names == *" $lib "* ]] || fail "Depends lacks $lib"
done
[[ $(dpkg-deb -f "$deb" Package) == qcowkit ]] || fail "package name is not qcowkit"

dpkg-deb -x "$deb" "$work/root"
root=$work/root
usr=$root/$nbdkit_prefix
expect_file "$usr" bin/qcowkit \
  "$plugindir/nbdkit-qcow2-plugin.so" \
  "$filterdir/nbdkit-blockcache-filter.so" "$filterdir/nbdkit-qcow2-filter.so" \
  share/qcowkit/web/index.html \
  share/man/man1/nbdkit-qcow2-plugin.1.gz share/man/man1/nbdkit-blockcache-filter.1.gz \
  share/man/man1/nbdkit-qcow2-filter.1.gz \
  share/man/man1/qcowkit.1.gz share/doc/qcowkit/README.md
if [[ -f $SOURCE_DIR/build-wasm/wasm/qcowkit.wasm ]]; then
  expect_file "$usr" share/qcowkit/web/qcowkit.js share/qcowkit/web/qcowkit.wasm
fi

# The tool.
qcowkit=$usr/bin/qcowkit
version=$("$qcowkit" --version)
echo "$version"
[[ $version =~ ^qcowkit\ [0-9]+\.[0-9]+\.[0-9]+\ \(git\ [^\)]+\)$ ]] || fail "unexpected qcowkit --version"

# The plugin: --dump-plugin names the version and revision.
plugin=$usr/$plugindir/nbdkit-qcow2-plugin.so
filter=$usr/$filterdir/nbdkit-blockcache-filter.so
dump=$(nbdkit "$plugin" --dump-plugin)
grep -q '^name=qcow2$' <<<"$dump" || fail "--dump-plugin: no name=qcow2"
grep -q '^qcowkit_version=' <<<"$dump" || fail "--dump-plugin: no qcowkit_version"
grep -q '^qcowkit_git_revision=' <<<"$dump" || fail "--dump-plugin: no qcowkit_git_revision"

# Serve an image the unpacked tool made; write through the unpacked filter.
img=$work/disk.qcow2
data=$work/data.raw
"$qcowkit" create -f qcow2 "$img" 64M >/dev/null
size=$(nbdkit -U - -r "$plugin" "$img" --run 'nbdinfo --size "$uri"')
[[ $size == 67108864 ]] || fail "nbdinfo --size over the plugin said '$size'"
head -c 4M /dev/urandom >"$data"
truncate -s 64M "$data"
nbdkit -U - --filter="$filter" "$plugin" "$img" blockcache-size=16M \
  --run "nbdcopy '$data' \"\$uri\""
"$qcowkit" compare "$data" "$img" >/dev/null || fail "the image does not hold what nbdcopy wrote through the filter"
"$qcowkit" check "$img" >/dev/null || fail "qcowkit check: the image is not clean after serving"
# The unpacked qcow2 filter serves the same image over the file plugin.
qfilter=$usr/$filterdir/nbdkit-qcow2-filter.so
got=$(nbdkit -U - -r --filter="$qfilter" file "$img" --run 'nbdinfo --size "$uri"')
[[ $got == 67108864 ]] || fail "nbdinfo --size over the qcow2 filter said '$got'"
log=$(nbdkit -U - -v --filter="$filter" null 1M --run true 2>&1)
grep -q 'qcowkit_git_revision=' <<<"$log" || fail "nbdkit -v does not log the filter's version"

# The man pages: each renders, and man finds it by name under the root.
for page in nbdkit-qcow2-plugin nbdkit-blockcache-filter nbdkit-qcow2-filter qcowkit; do
  text=$(LC_ALL=C MANWIDTH=80 man --warnings -l "$usr/share/man/man1/$page.1.gz" 2>"$work/man.err")
  [[ ! -s $work/man.err ]] && grep -q "^NAME" <<<"$text" && grep -q "$page" <<<"$text" ||
    { cat "$work/man.err"; fail "man -l $page.1.gz does not render cleanly"; }
  [[ $(MANPATH=$usr/share/man man -w "$page") == "$usr/share/man/man1/$page.1.gz" ]] ||
    fail "man -w $page does not find the unpacked page"
done
grep -q "qcowkit compact" <<<"$(LC_ALL=C man -l "$usr/share/man/man1/qcowkit.1.gz" 2>/dev/null)" ||
  fail "qcowkit(1) has no section for compact"
echo "ok: $(basename "$deb") unpacks and its plugin, filter, tool and man pages work"
