#!/usr/bin/env bash
# Builds the image of the example service and the stats tool: static
# binaries built on this machine, copied into an image FROM scratch, so that
# nothing is pulled. Usage: docker/build-image.sh TAG
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:?usage: docker/build-image.sh TAG}
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/example" ./example
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/stats" ./stats
cp docker/Dockerfile "$ctx/"
# The legacy builder warns on stderr at every build: show it only on failure.
if ! docker build -q -t "$tag" "$ctx" >/dev/null 2>"$ctx/build.err"; then
	cat "$ctx/build.err" >&2
	exit 1
fi
