#!/usr/bin/env bash
# Builds the libFuzzer harnesses (release, AddressSanitizer, coverage) and runs each one from its
# committed seeds for RUNS executions or SECONDS seconds, whichever comes first; prints one
# summary line per harness and fails on the first crash, leaving the input in Fuzz/crashes/.
#   Fuzz/run.sh                       # 1M executions each, at most 1 h each (make libfuzzer)
#   Fuzz/run.sh 20000 60              # the short run CI does
# Seeds: the audio and service FuzzSeeds, the ONNX fixtures plus ONNX's own node-test models
# (libonnx-testdata) of the supported operators, and bundle.json and requests.txt.
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${1:-1000000}
SECONDS_EACH=${2:-3600}
case ":$PATH:" in *:/opt/swift/usr/bin:*) ;; *) [ -d /opt/swift/usr/bin ] && export PATH="$PATH:/opt/swift/usr/bin" ;; esac

# --disable-dead-strip keeps the coverage sections (the linker's gc drops them); the -Xswiftc flag
# puts AddressSanitizer beside the fuzzer in every Swift module (SwiftPM's --sanitize flags keep
# one), -Xcc in the C ones (the convolution kernels).
# Only the harnesses: `swift build` alone would also link equivd's own executables this way.
HARNESSES=(FuzzAudioFile FuzzONNX FuzzBundleManifest FuzzRequests)
for harness in "${HARNESSES[@]}"; do
    swift build -c release --sanitize=fuzzer --disable-dead-strip -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address --product "$harness" 2>&1 | tail -1
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p crashes "${HARNESSES[@]/#/$work/}"
cp ../Tests/EquivAudioTests/FuzzSeeds/* "$work/FuzzAudioFile/"
cp ../Tests/EquivModelTests/Fixtures/small_canonicalizer/model.onnx "$work/FuzzONNX/canonicalizer.onnx"
cp ../Tests/EquivModelTests/Fixtures/small_classifier/model.onnx "$work/FuzzONNX/classifier.onnx"
for op in conv gemm matmul relu add averagepool maxpool batchnorm reshape transpose concat pad slice gather softmax; do
    for model in /usr/share/libonnx-testdata/data/node/test_${op}*/model.onnx; do
        [ -f "$model" ] && cp "$model" "$work/FuzzONNX/$(basename "$(dirname "$model")").onnx"
    done
done
cp ../Tests/EquivServiceTests/FuzzSeeds/bundle.json "$work/FuzzBundleManifest/"
n=0
while IFS= read -r line; do n=$((n + 1)); printf '%s\n' "$line" > "$work/FuzzRequests/seed$n"; done \
    < ../Tests/EquivServiceTests/FuzzSeeds/requests.txt

export SWIFT_BACKTRACE=enable=no  # libFuzzer reports the crash; Swift's backtracer only delays it
for harness in "${HARNESSES[@]}"; do
    log="$work/$harness.log"
    if ! .build/release/$harness -runs="$RUNS" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
            -rss_limit_mb=4096 -artifact_prefix=crashes/$harness- "$work/$harness" > "$log" 2>&1; then
        tail -40 "$log"
        echo "$harness: FAILED (input saved in Fuzz/crashes/)"
        exit 1
    fi
    done_line=$(grep -E '^Done [0-9]+ runs' "$log")
    coverage=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
    echo "$harness: ${done_line#Done }, 0 crashes ($coverage)"
done
