#!/usr/bin/env bash
# Regenerates Sources/EquivModel/Generated/onnx.pb.swift from Debian's onnx.proto (libonnx-dev)
# with protoc (protobuf-compiler) and protoc-gen-swift built from the swift-protobuf version this
# package resolves. The output is committed: building the plugin takes minutes, so neither the
# build nor CI runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
PROTO=${ONNX_PROTO:-/usr/include/onnx/onnx.proto}
[ -f "$PROTO" ] || { echo "missing $PROTO: apt-get install libonnx-dev" >&2; exit 1; }
command -v protoc >/dev/null || { echo "missing protoc: apt-get install protobuf-compiler" >&2; exit 1; }

swift package resolve
CHECKOUT=.build/checkouts/swift-protobuf
swift build -c release --package-path "$CHECKOUT" --product protoc-gen-swift
PLUGIN=$(swift build -c release --package-path "$CHECKOUT" --show-bin-path)/protoc-gen-swift

protoc --plugin=protoc-gen-swift="$PLUGIN" \
    --swift_opt=Visibility=Internal \
    --swift_out=Sources/EquivModel/Generated \
    -I "$(dirname "$PROTO")" "$(basename "$PROTO")"
echo "wrote Sources/EquivModel/Generated/onnx.pb.swift from $PROTO ($(dpkg-query -W -f='${Package} ${Version}' libonnx-dev 2>/dev/null || echo 'unknown version'))"
