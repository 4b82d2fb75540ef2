#!/bin/sh
# Regenerates the fidelity corpus's expectations (fixtures/corpus/*/expected.json) with Docker's classic
# builder (docker.io 20.10, DOCKER_BUILDKIT=0), through the peers' private dockerd.
# Usage: scripts/corpus-refs.sh [fixtures/corpus/NN-name ...]     (default: every case)
# A case whose case.json says "source": "reference" is skipped: Docker's classic builder cannot build it and
# its expectation was written from the Dockerfile reference (see fixtures/corpus/README.md).
# Per case: scripts/corpus-context.sh makes the context; the case.json "before" images are built and tagged;
# the case is built with --no-cache --network none [--target] [--build-arg]; `docker save` (a docker-archive
# keeps Healthcheck, OnBuild and Shell, which an OCI conversion drops) is listed by scripts/corpus-layers.py.
# docker-build.sh in the peers folder takes no --target/--build-arg/-f, so docker is called directly.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
peers=${PEERS_DIR:-$here/../shared/peers}
export DOCKER_HOST=${DOCKER_HOST:-unix:///tmp/peers-docker/docker.sock}
export DOCKER_BUILDKIT=0
started=
if ! "$peers/dockerd.sh" status | grep -q '^running'; then
  "$peers/dockerd.sh" start >&2
  started=1
fi
work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
  [ -z "$started" ] || "$peers/dockerd.sh" stop >&2
}
trap cleanup EXIT
failed=
[ $# -gt 0 ] || set -- "$here"/fixtures/corpus/[0-9]*/
for case_dir in "$@"; do
  case_dir=$(cd "$case_dir" && pwd)
  name=$(basename "$case_dir")
  spec=$case_dir/case.json
  [ -f "$spec" ] || spec=/dev/null
  if [ "$(jq -r '.source // "docker"' "$spec" 2>/dev/null || echo docker)" = reference ]; then
    echo "skip $name: source is the reference, not Docker" >&2
    continue
  fi
  ctx=$work/$name
  "$here/scripts/corpus-context.sh" "$case_dir" "$ctx"
  tags=
  for row in $(jq -r '(.before // [])[] | "\(.dockerfile)=\(.tag)"' "$spec" 2>/dev/null); do
    docker build -q --no-cache --network none -f "$ctx/${row%%=*}" -t "${row#*=}" "$ctx" >/dev/null
    tags="$tags ${row#*=}"
  done
  set --
  target=$(jq -r '.target // empty' "$spec" 2>/dev/null || true)
  [ -z "$target" ] || set -- --target "$target"
  for arg in $(jq -r '(.buildArgs // {}) | to_entries[] | "\(.key)=\(.value)"' "$spec" 2>/dev/null); do
    set -- "$@" --build-arg "$arg"
  done
  tag=corpus/$name:classic
  if ! docker build -q --no-cache --network none "$@" -f "$ctx/Dockerfile" -t "$tag" "$ctx" >"$work/build.log" 2>&1; then
    tail -5 "$work/build.log" >&2
    echo "FAILED $name" >&2
    failed="$failed $name"
    docker rmi -f $tags >/dev/null 2>&1 || true
    continue
  fi
  docker save "$tag" -o "$work/$name.save.tar"
  python3 "$here/scripts/corpus-layers.py" expect "$work/$name.save.tar" "$case_dir" docker
  docker rmi -f "$tag" $tags >/dev/null
  rm -rf "$ctx" "$work/$name.save.tar"
  echo "expected $name: $(jq '.layers | length' "$case_dir/expected.json") layers" >&2
done
[ -z "$failed" ] || { echo "failed:$failed" >&2; exit 1; }
