#!/usr/bin/env bash
# Regenerates the hostile images into a scratch folder and compares them with
# the committed ones: the script and the images must not drift apart.
set -euo pipefail
images=$1
here=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "python3 is missing: apt-get install python3" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 "$here/make-hostile-images.py" "$tmp"
if ! diff -r "$tmp" "$images"; then
  echo "tests/hostile/images differ from what make-hostile-images.py makes:" \
       "run tests/hostile/make-hostile-images.py tests/hostile/images and commit" >&2
  exit 1
fi
echo "$(ls "$images" | wc -l) files match the generator"
