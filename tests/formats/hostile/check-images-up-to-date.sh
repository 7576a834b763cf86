#!/usr/bin/env bash
# The committed hostile vpc, vdi and vmdk images are exactly what the committed script makes.
set -euo pipefail
images=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 "$here/make-hostile-images.py" "$tmp"
if ! diff -r "$tmp" "$images"; then
  echo "tests/formats/hostile/images differ from what make-hostile-images.py makes:" \
       "run tests/formats/hostile/make-hostile-images.py tests/formats/hostile/images and commit" >&2
  exit 1
fi
echo "$(ls "$images" | wc -l) files match the generator"
