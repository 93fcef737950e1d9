#!/bin/sh
# Build the Porcupine timing driver against a local copy of Porcupine's source (no network):
#   bench/porcupine/build.sh PORCUPINE_SOURCE_DIR OUTPUT_BINARY
set -eu
src=$(cd "$1" && pwd)
out=$(realpath -m "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$(dirname "$0")/main.go" "$(dirname "$0")/go.mod" "$work/"
cd "$work"
go mod edit -replace "github.com/anishathalye/porcupine=$src"
GOFLAGS=-mod=mod GOPROXY=off GOCACHE="$work/cache" go build -o "$out" .
