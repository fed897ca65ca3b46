import Foundation
import Logging
import MeridianRPC
import NIOCore
import SwiftProtobuf
import Testing

/// A server with `EchoService` on a free loopback port and a channel to it.
struct EchoFixture {
    let server: RPCServer
    let channel: RPCChannel
    let probe: CancellationProbe

    static func start(configure: (inout RPCServer.Configuration) -> Void = { _ in }) async throws -> EchoFixture {
        var configuration = RPCServer.Configuration.defaults
        configure(&configuration)
        let probe = CancellationProbe()
        let server = RPCServer(configuration: configuration, services: [EchoService(cancelled: probe)], logger: Logger(label: "test"))
        let address = try await server.start()
        let channel = try RPCChannel(host: "127.0.0.1", port: address.port!)
        return EchoFixture(server: server, channel: channel, probe: probe)
    }

    func stop() async {
        await channel.close()
        await server.shutdown(gracePeriod: .seconds(1))
    }
}

@Suite struct RPCRuntimeTests {
    @Test func unaryRoundTrip() async throws {
        let fixture = try await EchoFixture.start()
        let payload = Data((0..<1000).map { UInt8($0 % 251) })
        let response: UnaryResponse<Google_Protobuf_BytesValue> = try await fixture.channel.unary(
            path: EchoService.unaryPath, request: Google_Protobuf_BytesValue(payload))
        #expect(response.message.value == payload)
        await fixture.stop()
    }

    @Test(arguments: RPCServer.Configuration.HandlerExecutor.allCases)
    func manyConcurrentUnaryCallsShareOneConnection(executor: RPCServer.Configuration.HandlerExecutor) async throws {
        let fixture = try await EchoFixture.start { $0.handlerExecutor = executor }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<300 {
                group.addTask {
                    let request = Google_Protobuf_BytesValue(Data("call \(i)".utf8))
                    let response: UnaryResponse<Google_Protobuf_BytesValue> = try await fixture.channel.unary(path: EchoService.unaryPath, request: request)
                    #expect(response.message == request)
                }
            }
            try await group.waitForAll()
        }
        await fixture.stop()
    }

    @Test func fourMebibyteMessagesPass() async throws {
        let fixture = try await EchoFixture.start()
        let payload = Data(repeating: 7, count: 4 * 1024 * 1024 - 16)
        let response: UnaryResponse<Google_Protobuf_BytesValue> = try await fixture.channel.unary(
            path: EchoService.unaryPath, request: Google_Protobuf_BytesValue(payload))
        #expect(response.message.value.count == payload.count)
        await fixture.stop()
    }

    @Test func oversizedRequestIsResourceExhausted() async throws {
        let fixture = try await EchoFixture.start { $0.maxReceiveMessageSize = 1024 }
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<Google_Protobuf_BytesValue> = try await fixture.channel.unary(
                path: EchoService.unaryPath, request: Google_Protobuf_BytesValue(Data(count: 4096)))
        }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message.contains("1024") == true)
        await fixture.stop()
    }

    @Test func statusCodeMessageAndDetailsReachTheClient() async throws {
        let fixture = try await EchoFixture.start()
        let message = "précondition échouée ✓ \t\n% done"
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<Google_Protobuf_StringValue> = try await fixture.channel.unary(
                path: EchoService.failPath, request: Google_Protobuf_StringValue(message))
        }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message == message)
        #expect(error?.status.details == Data([1, 2, 3]))
        await fixture.stop()
    }

    @Test func nonRPCErrorsBecomeUnknownWithoutInternals() async throws {
        let fixture = try await EchoFixture.start()
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<Google_Protobuf_StringValue> = try await fixture.channel.unary(
                path: EchoService.crashPath, request: Google_Protobuf_StringValue("x"))
        }
        #expect(error?.code == .unknown)
        #expect(error?.message.contains("Secret") == false)
        await fixture.stop()
    }

    @Test func unknownMethodAndServiceAreUnimplemented() async throws {
        let fixture = try await EchoFixture.start()
        for path in ["/test.Echo/Nope", "/no.Such/Service"] {
            let error = await #expect(throws: RPCError.self) {
                let _: UnaryResponse<Google_Protobuf_StringValue> = try await fixture.channel.unary(
                    path: path, request: Google_Protobuf_StringValue("x"))
            }
            #expect(error?.code == .unimplemented)
            #expect(error?.message.contains(path) == true)
        }
        await fixture.stop()
    }

    @Test func undecodableRequestIsInternal() async throws {
        let fixture = try await EchoFixture.start()
        // Field 1 as a varint where BytesValue expects bytes: not a valid message.
        var garbage = ByteBuffer()
        garbage.writeBytes([0xFF, 0xFF, 0xFF])
        let error = await #expect(throws: RPCError.self) {
            _ = try await fixture.channel.unary(path: EchoService.unaryPath, payload: garbage)
        }
        #expect(error?.code == .internal)
        await fixture.stop()
    }

    @Test(arguments: RPCServer.Configuration.HandlerExecutor.allCases)
    func handlersRunWhereConfigured(executor: RPCServer.Configuration.HandlerExecutor) async throws {
        let fixture = try await EchoFixture.start { $0.handlerExecutor = executor }
        let response: UnaryResponse<Google_Protobuf_BoolValue> = try await fixture.channel.unary(
            path: EchoService.onEventLoopPath, request: Google_Protobuf_Empty())
        #expect(response.message.value == (executor == .eventLoop))
        await fixture.stop()
    }

    @Test(arguments: RPCServer.Configuration.HandlerExecutor.allCases)
    func deadlineCancelsTheHandlerAndTheClientSeesDeadlineExceeded(executor: RPCServer.Configuration.HandlerExecutor) async throws {
        let fixture = try await EchoFixture.start { $0.handlerExecutor = executor }
        let start = ContinuousClock.now
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<Google_Protobuf_Int64Value> = try await fixture.channel.unary(
                path: EchoService.sleepPath, request: Google_Protobuf_Int64Value(10_000),
                // Long enough that a busy test machine starts the handler
                // first (1 s was not, once, with the whole suite running).
                options: CallOptions(timeout: .seconds(3)))
        }
        #expect(error?.code == .deadlineExceeded)
        #expect(ContinuousClock.now - start < .seconds(8))
        try await waitUntil { await fixture.probe.count == 1 }
        await fixture.stop()
    }

    @Test(arguments: RPCServer.Configuration.HandlerExecutor.allCases)
    func clientCancellationCancelsTheHandler(executor: RPCServer.Configuration.HandlerExecutor) async throws {
        let fixture = try await EchoFixture.start { $0.handlerExecutor = executor }
        let task = Task {
            let _: UnaryResponse<Google_Protobuf_Int64Value> = try await fixture.channel.unary(
                path: EchoService.sleepPath, request: Google_Protobuf_Int64Value(10_000))
        }
        try await waitUntil { fixture.server.callsInFlight == 1 }
        task.cancel()
        let result = await task.result
        #expect(throws: RPCError.self) { try result.get() }
        try await waitUntil { await fixture.probe.count == 1 }
        try await waitUntil { fixture.server.callsInFlight == 0 }
        await fixture.stop()
    }

    @Test func serverStreaming() async throws {
        let fixture = try await EchoFixture.start()
        let stream: RPCResponseStream<Google_Protobuf_StringValue> = fixture.channel.serverStreaming(
            path: EchoService.expandPath, request: Google_Protobuf_StringValue("a bb ccc"))
        var words: [String] = []
        for try await word in stream { words.append(word.value) }
        #expect(words == ["a", "bb", "ccc"])
        await fixture.stop()
    }

    /// Far more than the flow-control windows hold, read slowly at first:
    /// the writer waits for the peer, and every message arrives once, in
    /// order, before the status.
    @Test func serverStreamingUnderBackpressureKeepsEveryMessageInOrder() async throws {
        let fixture = try await EchoFixture.start()
        let count = 3_000  // ~3 MiB: three times the stream window
        let stream: RPCResponseStream<Google_Protobuf_StringValue> = fixture.channel.serverStreaming(
            path: EchoService.countPath, request: Google_Protobuf_Int64Value(Int64(count)))
        var expected = 0
        for try await message in stream {
            #expect(message.value.hasPrefix("\(expected):"), "message \(expected) out of order")
            if expected < 20 { try await Task.sleep(for: .milliseconds(5)) }
            expected += 1
        }
        #expect(expected == count)
        #expect(await fixture.probe.count == 0)
        await fixture.stop()
    }

    /// A reader that leaves mid-stream stops the writing handler, whether it
    /// is writing or waiting for room.
    @Test func abandonedStreamStopsItsWriter() async throws {
        let fixture = try await EchoFixture.start()
        let reader = Task {
            let stream: RPCResponseStream<Google_Protobuf_StringValue> = fixture.channel.serverStreaming(
                path: EchoService.countPath, request: Google_Protobuf_Int64Value(10_000_000))
            var seen = 0
            for try await _ in stream {
                seen += 1
                if seen == 10 { break }
            }
            return seen
        }
        #expect(try await reader.value == 10)
        try await waitUntil { await fixture.probe.count == 1 }
        try await waitUntil { fixture.server.callsInFlight == 0 }
        await fixture.stop()
    }

    @Test func clientStreaming() async throws {
        let fixture = try await EchoFixture.start()
        let response: UnaryResponse<Google_Protobuf_StringValue> = try await fixture.channel.clientStreaming(path: EchoService.collectPath) { writer in
            for word in ["x", "y", "z"] { try await writer.write(Google_Protobuf_StringValue(word)) }
        }
        #expect(response.message.value == "x y z")
        await fixture.stop()
    }

    @Test func bidirectionalPingPong() async throws {
        let fixture = try await EchoFixture.start()
        let replies = try await fixture.channel.bidirectionalStreaming(path: EchoService.chatPath) {
            (writer: RPCRequestWriter<Google_Protobuf_StringValue>, responses: RPCResponseStream<Google_Protobuf_StringValue>) in
            var iterator = responses.makeAsyncIterator()
            var replies: [String] = []
            for word in ["one", "two", "three"] {
                try await writer.write(Google_Protobuf_StringValue(word))
                replies.append(try await iterator.next()?.value ?? "<end>")
            }
            writer.finish()
            #expect(try await iterator.next() == nil)
            return replies
        }
        #expect(replies == ["ONE", "TWO", "THREE"])
        await fixture.stop()
    }

    @Test func metadataTextAndBinaryBothWays() async throws {
        let fixture = try await EchoFixture.start()
        var options = CallOptions()
        options.metadata.add("x-echo", "hello")
        options.metadata.add("x-tenant-id", "tenant-a")
        options.metadata.add("x-echo-bin", binary: Data([0, 1, 2, 254, 255]))
        let response: UnaryResponse<Google_Protobuf_StringValue> = try await fixture.channel.unary(
            path: EchoService.metadataPath, request: Google_Protobuf_StringValue(""), options: options)
        #expect(response.message.value == "tenant-a")
        #expect(response.headers["x-echo-header"] == "hello")
        #expect(response.trailers.binary("x-echo-bin") == Data([0, 1, 2, 254, 255]))
        await fixture.stop()
    }

    @Test func inFlightLimitRejectsFastWithRetryInfo() async throws {
        let fixture = try await EchoFixture.start { $0.maxInFlightCalls = 2 }
        let sleepers = (0..<2).map { _ in
            Task {
                let _: UnaryResponse<Google_Protobuf_Int64Value> = try await fixture.channel.unary(
                    path: EchoService.sleepPath, request: Google_Protobuf_Int64Value(2_000))
            }
        }
        try await waitUntil { fixture.server.callsInFlight == 2 }
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<Google_Protobuf_BytesValue> = try await fixture.channel.unary(
                path: EchoService.unaryPath, request: Google_Protobuf_BytesValue(Data()))
        }
        #expect(error?.code == .unavailable)
        #expect(error?.status.details?.isEmpty == false)
        for sleeper in sleepers { sleeper.cancel() }
        await fixture.stop()
    }

    @Test func unreachableServerIsUnavailable() async throws {
        let channel = try RPCChannel(host: "127.0.0.1", port: 1)
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<Google_Protobuf_BytesValue> = try await channel.unary(
                path: EchoService.unaryPath, request: Google_Protobuf_BytesValue(Data()))
        }
        #expect(error?.code == .unavailable)
        await channel.close()
    }

    @Test func timeoutHeaderFormatting() {
        #expect(WireFormat.parseTimeout("100m") == 100_000_000)
        #expect(WireFormat.parseTimeout("1H") == 3_600_000_000_000)
        #expect(WireFormat.parseTimeout("123456789S") == nil)
        #expect(WireFormat.parseTimeout("10x") == nil)
        #expect(WireFormat.formatTimeout(nanoseconds: 1_500_000_000) == "1500000u")
        #expect(WireFormat.percentDecode(WireFormat.percentEncode("a%b\nü")) == "a%b\nü")
    }
}

/// Polls `condition` until it holds, failing after `timeout` (a hang guard:
/// generous, since the suite runs many servers at once on two cores).
func waitUntil(timeout: Duration = .seconds(30), _ condition: @Sendable () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("condition not met within \(timeout)")
}

extension Google_Protobuf_BytesValue { init(_ value: Data) { self.init(); self.value = value } }
extension Google_Protobuf_StringValue { init(_ value: String) { self.init(); self.value = value } }
extension Google_Protobuf_Int64Value { init(_ value: Int64) { self.init(); self.value = value } }
