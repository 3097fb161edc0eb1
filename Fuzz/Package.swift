// swift-tools-version:6.0
// libFuzzer harnesses for equivd's parsers of untrusted input, a package of their own (as
// swift-protobuf's FuzzTesting is) so that only they are built with -sanitize=fuzzer.
// Build and run: Fuzz/run.sh (or `make libfuzzer`).
import PackageDescription

let package = Package(
    name: "equivd-fuzz",
    dependencies: [.package(name: "equivd", path: "..")],
    targets: [
        .executableTarget(name: "FuzzAudioFile", dependencies: [.product(name: "EquivAudio", package: "equivd")]),
        .executableTarget(name: "FuzzONNX", dependencies: [.product(name: "EquivModel", package: "equivd")]),
        .executableTarget(name: "FuzzBundleManifest", dependencies: [.product(name: "EquivCore", package: "equivd")]),
        .executableTarget(name: "FuzzRequests", dependencies: [.product(name: "EquivProtocol", package: "equivd")]),
    ]
)
