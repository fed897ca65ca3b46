// swift-tools-version:5.4
// libFuzzer targets for the runtime's input-parsing paths (see README.md).
// Built only by scripts/fuzz.sh, in its own scratch path (.build-fuzz) with
// -sanitize=fuzzer,address; never part of the root package's build.
//
// Tools version 5.4 on purpose: from 5.5 on SwiftPM links an executable
// with `--defsym main=<Module>_main` (so tests can import executables),
// which fights libFuzzer's own main. Fuzz targets have no main of theirs.
import PackageDescription

let package = Package(
    name: "MeridianFuzz",
    dependencies: [
        // The root package, by name so the clone's folder name does not matter.
        .package(name: "Meridian", path: "../.."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // The gRPC message deframer, fed in chunks, against a reference parser.
        .executableTarget(
            name: "FuzzDeframer",
            dependencies: [
                .product(name: "MeridianRPC", package: "Meridian"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Sources/FuzzDeframer"
        ),
        // grpc-timeout parsing and formatting, grpc-message percent coding.
        .executableTarget(
            name: "FuzzWireFormat",
            dependencies: [.product(name: "MeridianRPC", package: "Meridian")],
            path: "Sources/FuzzWireFormat"
        ),
        // Bytes straight into a server HTTP/2 connection (EmbeddedChannel).
        .executableTarget(
            name: "FuzzServerConnection",
            dependencies: [
                .product(name: "MeridianRPC", package: "Meridian"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/FuzzServerConnection"
        ),
        // ProtobufWire.Reader (its source file, symlinked: ServiceKit itself
        // would bring swift-crypto, Prometheus and ArgumentParser) and
        // SwiftProtobuf decoding of the services' request messages.
        .executableTarget(
            name: "FuzzProtobuf",
            dependencies: [
                .product(name: "Contracts", package: "Meridian"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Sources/FuzzProtobuf"
        ),
    ]
)
