import Foundation
import MeridianRPC
import NIOCore
import NIOPosix
import SwiftProtobuf

/// A service built on protobuf's well-known wrapper types, so the runtime is
/// tested without depending on generated code.
struct EchoService: RPCService {
    static let unaryPath = "/test.Echo/Unary"
    static let sleepPath = "/test.Echo/Sleep"
    static let onEventLoopPath = "/test.Echo/OnEventLoop"
    static let failPath = "/test.Echo/Fail"
    static let crashPath = "/test.Echo/Crash"
    static let expandPath = "/test.Echo/Expand"
    static let countPath = "/test.Echo/Count"
    static let collectPath = "/test.Echo/Collect"
    static let chatPath = "/test.Echo/Chat"
    static let metadataPath = "/test.Echo/Metadata"

    let cancelled: CancellationProbe

    var methods: [RPCServiceMethod] {
        [
            .unary(Self.unaryPath) { (request: Google_Protobuf_BytesValue, _) in request },
            // Whether the handler runs on an event loop thread.
            .unary(Self.onEventLoopPath) { (_: Google_Protobuf_Empty, _) -> Google_Protobuf_BoolValue in
                var answer = Google_Protobuf_BoolValue()
                answer.value = MultiThreadedEventLoopGroup.currentEventLoop != nil
                return answer
            },
            .unary(Self.sleepPath) { (request: Google_Protobuf_Int64Value, _) -> Google_Protobuf_Int64Value in
                do {
                    try await Task.sleep(for: .milliseconds(request.value))
                } catch {
                    await cancelled.record()
                    throw error
                }
                return request
            },
            .unary(Self.failPath) { (request: Google_Protobuf_StringValue, _) -> Google_Protobuf_StringValue in
                throw RPCError(.failedPrecondition, request.value, details: Data([1, 2, 3]))
            },
            .unary(Self.crashPath) { (_: Google_Protobuf_StringValue, _) -> Google_Protobuf_StringValue in
                struct SecretInternalError: Error {}
                throw SecretInternalError()
            },
            .serverStreaming(Self.expandPath) { (request: Google_Protobuf_StringValue, writer: RPCResponseWriter<Google_Protobuf_StringValue>, _) in
                for word in request.value.split(separator: " ") {
                    try await writer.write(.with { $0.value = String(word) })
                }
            },
            // Streams `request` numbered messages of about 1 KiB: "index:" and padding.
            .serverStreaming(Self.countPath) { (request: Google_Protobuf_Int64Value, writer: RPCResponseWriter<Google_Protobuf_StringValue>, _) in
                let padding = String(repeating: "x", count: 1000)
                do {
                    for index in 0..<request.value {
                        try await writer.write(.with { $0.value = "\(index):\(padding)" })
                    }
                } catch {
                    await cancelled.record()
                    throw error
                }
            },
            .clientStreaming(Self.collectPath) { (requests: RPCRequestStream<Google_Protobuf_StringValue>, _) -> Google_Protobuf_StringValue in
                var words: [String] = []
                for try await request in requests { words.append(request.value) }
                return .with { $0.value = words.joined(separator: " ") }
            },
            .bidirectionalStreaming(Self.chatPath) { (requests: RPCRequestStream<Google_Protobuf_StringValue>, writer: RPCResponseWriter<Google_Protobuf_StringValue>, _) in
                for try await request in requests {
                    try await writer.write(.with { $0.value = request.value.uppercased() })
                }
            },
            .unary(Self.metadataPath) { (request: Google_Protobuf_StringValue, context) -> Google_Protobuf_StringValue in
                context.addResponseHeader("x-echo-header", .string(context.requestMetadata["x-echo"] ?? "none"))
                if let binary = context.requestMetadata.binary("x-echo-bin") {
                    context.addTrailer("x-echo-bin", .binary(binary))
                }
                return .with { $0.value = context.requestMetadata["x-tenant-id"] ?? "" }
            },
        ]
    }
}

actor CancellationProbe {
    private(set) var count = 0
    func record() { count += 1 }
}
