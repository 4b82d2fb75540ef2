#!/bin/sh
# Makes the build context of a fidelity-corpus case: the case directory's files (without the corpus's own
# case.json, expected.json and prepare.sh), a hard link (or copy) of fixtures/busybox-rootfs.tar, then the
# case's prepare.sh run inside the new context (it makes what git cannot keep: archives, empty directories,
# hard links, xattrs).
# Usage: scripts/corpus-context.sh fixtures/corpus/NN-name OUT_DIR     (OUT_DIR must not exist)
set -eu
[ $# -eq 2 ] || { sed -n '2,7p' "$0"; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
case_dir=$(cd "$1" && pwd)
out=$2
base=$here/fixtures/busybox-rootfs.tar
[ -f "$base" ] || "$here/fixtures/make-busybox-rootfs.sh"
mkdir "$out"
cp -a "$case_dir/." "$out/"
rm -f "$out/case.json" "$out/expected.json" "$out/prepare.sh"
ln "$base" "$out/busybox-rootfs.tar" 2>/dev/null || cp "$base" "$out/busybox-rootfs.tar"
if [ -f "$case_dir/prepare.sh" ]; then
  (cd "$out" && sh "$case_dir/prepare.sh")
fi
