#!/usr/bin/env bash
# The README's first command: sets everything up and builds the example image with the defaults
# (store /var/lib/strata as root), exported as an OCI tarball.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# the examples build over the busybox base (no tarballs are committed)
for example in hello multistage; do cp fixtures/busybox-rootfs.tar "examples/$example/busybox-rootfs.tar"; done
npx strata build -t strata-example/hello:latest --output type=oci,dest=examples/hello.oci.tar examples/hello
echo "example image: examples/hello.oci.tar (also in the local store as strata-example/hello:latest)"
