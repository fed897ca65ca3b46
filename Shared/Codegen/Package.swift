// swift-tools-version:6.0
// Code generators for Meridian, kept out of the main package so its build
// never compiles them. scripts/generate-code.sh builds both plugins into
// .build-codegen:
//   protoc-gen-swift         swift-protobuf's message generator (pinned here)
//   protoc-gen-meridian-rpc  service handler protocols and typed clients
import PackageDescription

let package = Package(
    name: "MeridianCodegen",
    products: [
        .executable(name: "protoc-gen-meridian-rpc", targets: ["protoc-gen-meridian-rpc"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
    ],
    targets: [
        .executableTarget(
            name: "protoc-gen-meridian-rpc",
            dependencies: [.product(name: "SwiftProtobufPluginLibrary", package: "swift-protobuf")]
        ),
    ]
)
