#!/usr/bin/env bash
# Runs the ASan + UBSan libFuzzer build of fuzz_open over every hostile image
# (each within 256 MiB of RSS and 10 s).
#   run-asan.sh build-fuzz/fuzz/fuzz_open IMAGES_DIR
set -euo pipefail
bin=$1 images=$2
if [[ ! -x $bin ]]; then
  echo "run-asan: $bin is missing: build the fuzz preset (make fuzz-build; Debian packages" \
       "clang-14 libfuzzer-14-dev libclang-rt-14-dev)" >&2
  exit 1
fi
# Given files rather than a corpus folder, libFuzzer runs each one once.
"$bin" -rss_limit_mb=256 -malloc_limit_mb=256 -timeout=10 "$images"/*.qcow2
echo "$(ls "$images"/*.qcow2 | wc -l) hostile images ran clean under ASan and UBSan"
