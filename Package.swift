// swift-tools-version:6.0
// Meridian: the store's ML platform as small gRPC services on one runtime.
//
// Layout (see README.md):
//   Shared/    runtime, generated contracts and the kit every service uses
//   Services/  one folder per service: Server (logic), Executable (thin main)
//   Tests/     tests over real loopback RPC
// Code generators live in their own package (Shared/Codegen) so this build
// never compiles them.
import PackageDescription

/// Release builds skip the runtime exclusivity checks of class and global
/// properties: on the RPC path they cost 5-6% of a GetProduct (an access
/// set kept in thread-local storage, for every property read). Debug
/// builds, which the tests run, keep them.
let swiftSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "Meridian",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "catalog", targets: ["CatalogMain"]),
        .executable(name: "feature-store", targets: ["FeatureStoreMain"]),
        .executable(name: "inference", targets: ["InferenceMain"]),
        .executable(name: "experimentation", targets: ["ExperimentationMain"]),
        .executable(name: "personalization", targets: ["PersonalizationMain"]),
        .executable(name: "platform", targets: ["PlatformCLI"]),
        .executable(name: "interop-server", targets: ["InteropServer"]),
        .executable(name: "assignment-benchmark", targets: ["AssignmentBenchmark"]),
        .executable(name: "catalog-peer", targets: ["CatalogPeer"]),
        .executable(name: "interop-client", targets: ["InteropClient"]),
        .library(name: "MeridianRPC", targets: ["MeridianRPC"]),
        .library(name: "Contracts", targets: ["Contracts"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // MARK: Shared
        .systemLibrary(
            name: "CNGHTTP2",
            path: "Shared/CNGHTTP2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]
        ),
        .target(
            name: "MeridianRPC",
            dependencies: [
                "CNGHTTP2",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            path: "Shared/RPC",
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "StandardProtos",
            dependencies: [
                "MeridianRPC",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Shared/StandardProtos",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "StandardServices",
            dependencies: [
                "MeridianRPC", "StandardProtos",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Shared/StandardServices",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Contracts",
            dependencies: [
                "MeridianRPC", "StandardProtos",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Shared/Contracts",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ServiceKit",
            dependencies: [
                "MeridianRPC", "StandardServices", "StandardProtos",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Shared/ServiceKit",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "StorageKit",
            dependencies: [
                "ServiceKit",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Shared/StorageKit",
            swiftSettings: swiftSettings
        ),
        // XGBoost's C API, for the inference service's tree models.
        .systemLibrary(
            name: "CXGBoost",
            path: "Services/Inference/CXGBoost",
            pkgConfig: "xgboost",
            providers: [.apt(["libxgboost-dev"])]
        ),
        .target(
            name: "FeatureStoreClient",
            dependencies: ["MeridianRPC", "Contracts", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                           .product(name: "Crypto", package: "swift-crypto")],
            path: "Services/FeatureStore/Client",
            swiftSettings: swiftSettings
        ),
        // OpenBLAS's CBLAS, for the ONNX executor's matrix products.
        .systemLibrary(
            name: "CBLAS",
            path: "Shared/CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // Runs ONNX graphs for the inference service (no ONNX Runtime C library).
        .target(
            name: "ONNXExecutor",
            dependencies: ["CBLAS", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Services/Inference/ONNX",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CatalogClient",
            dependencies: ["MeridianRPC", "Contracts", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Services/Catalog/Client",
            swiftSettings: swiftSettings
        ),
    ] + services.flatMap(\.targets) + [
        // The `platform` command-line client: the main RPCs with readable output.
        .executableTarget(
            name: "PlatformCLI",
            dependencies: ["MeridianRPC", "Contracts", "StandardProtos",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Tools/PlatformCLI",
            swiftSettings: swiftSettings
        ),
        // MARK: Interop with gRPC's own implementations (Tests/Interop)
        .target(
            name: "InteropTesting",
            dependencies: [
                "MeridianRPC", "StandardServices", "StandardProtos",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tests/Interop/InteropTesting",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "InteropServer",
            dependencies: ["InteropTesting", "ServiceKit", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tests/Interop/InteropServer",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "InteropClient",
            dependencies: ["InteropTesting", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tests/Interop/InteropClient",
            swiftSettings: swiftSettings
        ),
        // MARK: Benchmarks (scripts/benchmark-*.sh build them in release)
        .executableTarget(
            name: "AssignmentBenchmark",
            dependencies: ["ExperimentationServer", "Contracts", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                           .product(name: "NIOCore", package: "swift-nio")],
            path: "Benchmarks/AssignmentBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "CatalogPeer",
            dependencies: ["MeridianRPC", "Contracts", "ServiceKit", "StandardServices",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Benchmarks/CatalogPeer",
            swiftSettings: swiftSettings
        ),
        // MARK: Tests
        .testTarget(
            name: "RPCTests",
            dependencies: ["MeridianRPC", "StandardProtos", "StandardServices", "ServiceKit", "Contracts",
                           .product(name: "NIOPosix", package: "swift-nio")],
            path: "Tests/RPCTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlatformTests",
            dependencies: ["ServiceKit", "Contracts", "StandardServices", "CatalogClient", "FeatureStoreClient", "ONNXExecutor",
                           .product(name: "PostgresNIO", package: "postgres-nio"),
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
                + services.map { .target(name: $0.serverTarget) },
            path: "Tests/PlatformTests",
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
    ]
)

/// A service: a library with its logic (`Services/<Folder>/Server`) and a thin
/// executable (`Services/<Folder>/Executable`) that only parses configuration,
/// bootstraps logging and runs what the library builds.
struct ServiceModule {
    let folder: String
    var serverTarget: String { folder + "Server" }
    var mainTarget: String { folder + "Main" }
    var mainDependencies: [Target.Dependency] = []
    var extraDependencies: [Target.Dependency] = []

    var targets: [Target] {
        [
            .target(
                name: serverTarget,
                dependencies: ["MeridianRPC", "Contracts", "ServiceKit", "StandardProtos",
                               .product(name: "Logging", package: "swift-log")] + extraDependencies,
                path: "Services/\(folder)/Server",
                swiftSettings: swiftSettings
            ),
            .executableTarget(
                name: mainTarget,
                dependencies: [.target(name: serverTarget), "ServiceKit", "MeridianRPC",
                               .product(name: "ArgumentParser", package: "swift-argument-parser")] + mainDependencies,
                path: "Services/\(folder)/Executable",
                swiftSettings: swiftSettings
            ),
        ]
    }
}

var services: [ServiceModule] {
    [
        ServiceModule(folder: "Catalog", mainDependencies: ["CatalogClient"], extraDependencies: [
            "StandardServices", "StorageKit",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        ServiceModule(folder: "FeatureStore", mainDependencies: ["FeatureStoreClient"], extraDependencies: [
            "StandardServices", "StorageKit",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        ServiceModule(folder: "Inference", extraDependencies: [
            "StandardServices", "CXGBoost", "ONNXExecutor",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        ServiceModule(folder: "Experimentation", mainDependencies: [
            "Contracts", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], extraDependencies: [
            "StandardServices", "StorageKit",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        ServiceModule(folder: "Personalization", extraDependencies: [
            "StandardServices", "StorageKit",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
    ]
}
