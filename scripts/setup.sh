#!/usr/bin/env bash
# The README's first command: sets everything up and builds the example image with the defaults
# (store /var/lib/strata as root), exported as an OCI tarball.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cp fixtures/busybox-rootfs.tar examples/hello/busybox-rootfs.tar
npx strata build -t strata-example/hello:latest --output type=oci,dest=examples/hello.oci.tar examples/hello
echo "example image: examples/hello.oci.tar (also in the local store as strata-example/hello:latest)"
