import Foundation
import MeridianRPC

/// The client side of gRPC's interop test cases that apply without TLS or
/// cloud credentials, run by `interop-client` against any gRPC server.
public enum InteropCases {
    public static let all = [
        "empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong", "empty_stream",
        "custom_metadata", "status_code_and_message", "special_status_message", "unimplemented_method",
        "unimplemented_service", "cancel_after_begin", "cancel_after_first_response", "timeout_on_sleeping_server",
    ]

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public static func run(_ name: String, channel: RPCChannel) async throws {
        let client = Grpc_Testing_TestServiceClient(channel: channel)
        switch name {
        case "empty_unary":
            let response = try await client.emptyCall(Grpc_Testing_Empty())
            try expect(response == Grpc_Testing_Empty(), "empty response")
        case "large_unary":
            let response = try await client.unaryCall(.with {
                $0.responseSize = 314_159
                $0.payload = .with { $0.body = Data(count: 271_828) }
            })
            try expect(response.payload.body == Data(count: 314_159), "314159 zero bytes back")
        case "client_streaming":
            let sizes = [27_182, 8, 1828, 45_904]
            let response = try await client.streamingInputCall { requests in
                for size in sizes { try await requests.write(.with { $0.payload = .with { $0.body = Data(count: size) } }) }
            }
            try expect(response.aggregatedPayloadSize == 74_922, "aggregated size 74922, got \(response.aggregatedPayloadSize)")
        case "server_streaming":
            let sizes: [Int32] = [31_415, 9, 2653, 58_979]
            var received: [Int] = []
            for try await response in client.streamingOutputCall(.with {
                $0.responseParameters = sizes.map { size in .with { $0.size = size } }
            }) {
                received.append(response.payload.body.count)
            }
            try expect(received == sizes.map(Int.init), "sizes \(sizes), got \(received)")
        case "ping_pong":
            let requestSizes = [27_182, 8, 1828, 45_904]
            let responseSizes: [Int32] = [31_415, 9, 2653, 58_979]
            try await client.fullDuplexCall { requests, responses in
                var iterator = responses.makeAsyncIterator()
                for (requestSize, responseSize) in zip(requestSizes, responseSizes) {
                    try await requests.write(.with {
                        $0.responseParameters = [.with { $0.size = responseSize }]
                        $0.payload = .with { $0.body = Data(count: requestSize) }
                    })
                    let response = try await iterator.next()
                    try expect(response?.payload.body.count == Int(responseSize), "a \(responseSize)-byte response")
                }
                requests.finish()
                try expect(try await iterator.next() == nil, "the stream to end after the last response")
            }
        case "empty_stream":
            try await client.fullDuplexCall { requests, responses in
                requests.finish()
                var iterator = responses.makeAsyncIterator()
                try expect(try await iterator.next() == nil, "no response on an empty stream")
            }
        case "custom_metadata":
            try await customMetadata(channel: channel, client: client)
        case "status_code_and_message":
            let message = "test status message"
            try await expectStatus(.unknown, message: message) {
                _ = try await client.unaryCall(.with { $0.responseStatus = .with { $0.code = 2; $0.message = message } })
            }
            try await expectStatus(.unknown, message: message) {
                try await client.fullDuplexCall { requests, responses in
                    try await requests.write(.with { $0.responseStatus = .with { $0.code = 2; $0.message = message } })
                    requests.finish()
                    for try await _ in responses {}
                }
            }
        case "special_status_message":
            let message = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
            try await expectStatus(.unknown, message: message) {
                _ = try await client.unaryCall(.with { $0.responseStatus = .with { $0.code = 2; $0.message = message } })
            }
        case "unimplemented_method":
            try await expectStatus(.unimplemented) { _ = try await client.unimplementedCall(Grpc_Testing_Empty()) }
        case "unimplemented_service":
            let other = Grpc_Testing_UnimplementedServiceClient(channel: channel)
            try await expectStatus(.unimplemented) { _ = try await other.unimplementedCall(Grpc_Testing_Empty()) }
        case "cancel_after_begin":
            let task = Task {
                try await client.streamingInputCall { _ in
                    try await Task.sleep(for: .seconds(30))
                }
            }
            try await Task.sleep(for: .milliseconds(100))
            task.cancel()
            do {
                _ = try await task.value
                throw Failure("the call succeeded after being cancelled")
            } catch let error as RPCError {
                try expect(error.code == .cancelled, "CANCELLED, got \(error.code)")
            } catch is CancellationError {
                // The producer was cancelled before the call finished: also a cancellation.
            }
        case "cancel_after_first_response":
            try await expectStatus(.cancelled) {
                try await client.fullDuplexCall { requests, responses in
                    var iterator = responses.makeAsyncIterator()
                    try await requests.write(.with {
                        $0.responseParameters = [.with { $0.size = 31_415 }]
                        $0.payload = .with { $0.body = Data(count: 27_182) }
                    })
                    _ = try await iterator.next()
                    throw RPCError(.cancelled, "cancelled by the test after the first response")
                }
            }
        case "timeout_on_sleeping_server":
            try await expectStatus(.deadlineExceeded) {
                try await client.fullDuplexCall(options: CallOptions(timeout: .milliseconds(1))) { requests, responses in
                    try await requests.write(.with { $0.payload = .with { $0.body = Data(count: 27_182) } })
                    for try await _ in responses {}
                }
            }
        default:
            throw Failure("unknown test case \(name)")
        }
    }

    private static func customMetadata(channel: RPCChannel, client: Grpc_Testing_TestServiceClient) async throws {
        let initialValue = "test_initial_metadata_value"
        let trailingValue = Data([0xab, 0xab, 0xab])
        var options = CallOptions()
        options.metadata.add("x-grpc-test-echo-initial", initialValue)
        options.metadata.add("x-grpc-test-echo-trailing-bin", binary: trailingValue)
        let response: UnaryResponse<Grpc_Testing_SimpleResponse> = try await channel.unary(
            path: Grpc_Testing_TestService.Method.unaryCall,
            request: Grpc_Testing_SimpleRequest.with {
                $0.responseSize = 314_159
                $0.payload = .with { $0.body = Data(count: 271_828) }
            },
            options: options)
        try expect(response.headers["x-grpc-test-echo-initial"] == initialValue, "echoed initial metadata")
        try expect(response.trailers.binary("x-grpc-test-echo-trailing-bin") == trailingValue, "echoed trailing metadata")

        let stream = client.streamingOutputCall(.with { $0.responseParameters = [.with { $0.size = 314_159 }] }, options: options)
        for try await _ in stream {}
        try expect(try await stream.headers()["x-grpc-test-echo-initial"] == initialValue, "echoed initial metadata (streaming)")
        try expect(stream.trailers.binary("x-grpc-test-echo-trailing-bin") == trailingValue, "echoed trailing metadata (streaming)")
    }

    private static func expect(_ condition: Bool, _ what: String) throws {
        if !condition { throw Failure("expected \(what)") }
    }

    private static func expectStatus(_ code: RPCStatus.Code, message: String? = nil, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as RPCError {
            try expect(error.code == code, "\(code), got \(error.code): \(error.message)")
            if let message { try expect(error.message == message, "message \(message.debugDescription), got \(error.message.debugDescription)") }
            return
        }
        throw Failure("expected \(code), the call succeeded")
    }
}
