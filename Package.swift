// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "equivd",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "equivd", targets: ["equivd"]),
        .executable(name: "equivctl", targets: ["equivctl"]),
        .library(name: "EquivDSP", targets: ["EquivDSP"]),
        .library(name: "EquivAudio", targets: ["EquivAudio"]),
        .library(name: "EquivModel", targets: ["EquivModel"]),
        .library(name: "EquivCore", targets: ["EquivCore"]),
        .library(name: "EquivProtocol", targets: ["EquivProtocol"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
    ],
    targets: [
        // One thin module per C library: a module map, pkg-config for the flags, apt for the package.
        .systemLibrary(name: "CALSA", pkgConfig: "alsa", providers: [.apt(["libasound2-dev"])]),
        .systemLibrary(name: "CSndFile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "CSoxr", pkgConfig: "soxr", providers: [.apt(["libsoxr-dev"])]),
        .systemLibrary(name: "CFFTW", pkgConfig: "fftw3f", providers: [.apt(["libfftw3-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMalloc"),  // glibc's <malloc.h>
        // The direct convolution kernels (AVX-512 or AVX2 on x86, NEON on aarch64, portable C
        // anywhere; chosen at run time). -O2 even in debug builds: at -O0 every intrinsic goes
        // through memory, and the debug build the tests use must keep the live tests' pace.
        // SwiftPM has no safe setting for a C target's optimisation. The flag is allowed for
        // this root package and for path dependencies such as Fuzz/; a package that wanted the
        // library products as a remote dependency would need it gone.
        .target(name: "CDirectConv", cSettings: [.unsafeFlags(["-O2"])]),

        .target(name: "EquivDSP", dependencies: ["CFFTW", "CSoxr", "CDirectConv"]),
        .target(name: "EquivAudio", dependencies: ["CALSA", "CSndFile", "EquivDSP"]),
        .target(
            name: "EquivModel",
            dependencies: ["CBLAS", "CDirectConv", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Generated/README.md"]
        ),

        .target(
            name: "EquivCore",
            dependencies: ["CCrypto", "EquivDSP", "EquivModel", "EquivProtocol"]
        ),

        // Pictures of what the recognizer did: PNG (zlib), SVG plots, self-contained HTML pages.
        .target(name: "EquivView", dependencies: ["CZlib", "EquivDSP", "EquivCore"]),

        .target(
            name: "EquivService",
            dependencies: [
                "EquivDSP", "EquivAudio", "EquivCore", "EquivProtocol", "EquivView", "CMalloc", "CMosquitto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The event protocol (docs/architecture.md §5) and a client for it: what equivctl needs and nothing more.
        .target(name: "EquivProtocol"),

        .executableTarget(
            name: "equivd",
            dependencies: [
                "EquivDSP", "EquivAudio", "EquivModel", "EquivCore", "EquivService", "EquivProtocol", "EquivView",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "equivctl",
            dependencies: ["EquivProtocol", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        .testTarget(name: "EquivDSPTests", dependencies: ["EquivDSP", "EquivAudio"]),
        .testTarget(name: "EquivAudioTests", dependencies: ["EquivAudio", "CSndFile", "TestSupport"], exclude: ["FuzzSeeds"]),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "EquivModelTests", dependencies: ["EquivModel", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "EquivCoreTests", dependencies: ["EquivCore", "EquivAudio", "EquivProtocol"]),
        .testTarget(
            name: "EquivServiceTests", dependencies: ["EquivService", "EquivProtocol", "EquivCore", "TestSupport"],
            exclude: ["FuzzSeeds"]),
    ]
)
