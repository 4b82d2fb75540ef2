#!/usr/bin/env bash
# Installs what strata, its tests and its benchmark need on a Debian machine (idempotent), then the
# npm dependencies (which builds the native addon and helper, and compiles the TypeScript).
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(busybox-static skopeo umoci oci-image-tool podman runc docker-registry attr pigz xz-utils bzip2 zstd util-linux tmux python3 apache2-utils openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "strata: run as root to install: ${missing[*]}" >&2; exit 1; fi
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund
fi
# (re)build the native parts and the TypeScript when the checkout changed
[ -x build/Release/strata-run ] && [ build/Release/strata-run -nt native/strata-run.c ] && [ build/Release/strata_native.node -nt native/fsx.c ] || npm run native
# the TypeScript and the CLI bundle that bin/strata.js runs
npm run --silent build
[ -f fixtures/busybox-rootfs.tar ] || fixtures/make-busybox-rootfs.sh
