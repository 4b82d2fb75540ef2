#!/bin/sh
# "Compiles" the program: one self-contained executable from the library and main sources, with
# the version stamped in, as `go build -ldflags -X main.version=...` would.
set -eu
version=$1
out=$2
mkdir -p "$(dirname "$out")"
{
  echo '#!/bin/sh'
  echo "VERSION='$version'"
  cat lib.sh main.sh
} > "$out"
chmod 0755 "$out"
echo "built $out version $version"
