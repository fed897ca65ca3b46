// libFuzzer target: bytes from a client straight into a server connection.
//
// The input is what a client sends after the HTTP/2 connection preface
// (which the harness prepends): frames, HPACK header blocks, gRPC messages.
// It goes into a `ServerConnectionHandler` (Shared/RPC/Server) on an
// `EmbeddedChannel`, so nghttp2, the header handling, routing, the deframer,
// handlers, interceptors, flow control, deadlines and the response path
// all run, on one thread, deterministically. A small echo service answers
// every kind of RPC.
//
// A hash of the input picks the server's configuration (limits, which
// interceptors, connection age) and how the bytes are split into reads,
// so one input always runs the same way.
//
// Nothing may trap, and once the connection has closed and the event loop
// has run everything left: no call holds an in-flight permit, the
// connection is unregistered, and no handler is still running.
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import SwiftProtobuf
import Synchronization
@testable import MeridianRPC

// MARK: The service

/// Handlers running now, across every connection.
private let activeHandlers = Atomic<Int>(0)
/// MERIDIAN_FUZZ_TRACE=1: print what each input did (to check seeds reach
/// the handlers they are meant for).
private let tracing = getenv("MERIDIAN_FUZZ_TRACE") != nil

private func tracked<T>(_ body: () async throws -> T) async rethrows -> T {
    if tracing, let path = ServerContext.current?.path { print("  handler \(path)") }
    activeHandlers.add(1, ordering: .relaxed)
    defer { activeHandlers.subtract(1, ordering: .relaxed) }
    return try await body()
}

private struct FuzzEchoService: RPCService {
    var methods: [RPCServiceMethod] {
        [
            .unary("/fuzz.Echo/Unary") { (request: Google_Protobuf_BytesValue, _) in
                await tracked { request }
            },
            // Answers `now:…` on the event loop, fails `fail:…` there, and
            // leaves the rest to a task.
            .unary("/fuzz.Echo/Immediate",
                   decode: { payload throws(RPCError) in try Google_Protobuf_StringValue(rpcPayload: payload) },
                   immediately: { request, _ -> Google_Protobuf_StringValue? in
                       if request.value.hasPrefix("fail:") { throw RPCError(.invalidArgument, String(request.value.dropFirst(5))) }
                       guard request.value.hasPrefix("now:") else { return nil }
                       return Google_Protobuf_StringValue("at once")
                   }) { request, _ in
                await tracked { request }
            },
            .unary("/fuzz.Echo/Fail") { (request: Google_Protobuf_StringValue, context) -> Google_Protobuf_StringValue in
                try await tracked {
                    context.addTrailer("x-fail-bin", .binary(Data(request.value.utf8)))
                    throw RPCError(.failedPrecondition, request.value, details: Data([1, 2, 3]))
                }
            },
            .unary("/fuzz.Echo/Crash") { (_: Google_Protobuf_Empty, _) -> Google_Protobuf_Empty in
                struct Internal: Error {}
                return try await tracked { throw Internal() }
            },
            .unary("/fuzz.Echo/Metadata") { (request: Google_Protobuf_StringValue, context) -> Google_Protobuf_StringValue in
                await tracked {
                    for (key, value) in context.requestMetadata where key.hasPrefix("x-") {
                        context.addResponseHeader("x-echo-" + key.dropFirst(2), value)
                        context.addTrailer("x-trailer-" + key.dropFirst(2), value)
                    }
                    return request
                }
            },
            // Streams `value` messages of 1 KiB (at most 400: more than a
            // default window, so the handler waits for the client to read).
            .serverStreaming("/fuzz.Echo/Count") { (request: Google_Protobuf_Int64Value, writer: RPCResponseWriter<Google_Protobuf_StringValue>, _) in
                try await tracked {
                    if request.value < 0 { try await writer.sendHeaders() }
                    let padding = String(repeating: "x", count: 1000)
                    for index in 0..<min(max(request.value, 0), 400) {
                        try await writer.write(.with { $0.value = "\(index):\(padding)" })
                    }
                }
            },
            .clientStreaming("/fuzz.Echo/Collect") { (requests: RPCRequestStream<Google_Protobuf_StringValue>, _) -> Google_Protobuf_StringValue in
                try await tracked {
                    var words: [String] = []
                    for try await request in requests { words.append(request.value) }
                    return .with { $0.value = words.joined(separator: " ") }
                }
            },
            .bidirectionalStreaming("/fuzz.Echo/Chat") { (requests: RPCRequestStream<Google_Protobuf_StringValue>, writer: RPCResponseWriter<Google_Protobuf_StringValue>, _) in
                try await tracked {
                    for try await request in requests {
                        if request.value == "bye" { return }
                        try await writer.write(.with { $0.value = request.value.uppercased() })
                    }
                }
            },
        ]
    }
}

/// Refuses calls that carry `x-refuse`; an observer, so calls can still be
/// answered on the event loop.
private struct RefusingObserver: ServerCallObserver {
    func callStarting(context: ServerContext) throws {
        if context.requestMetadata["x-refuse"] != nil { throw RPCError(.permissionDenied, "refused") }
    }

    func callEnded(context: ServerContext, error: (any Error)?) {}
}

/// A wrapping interceptor: every call then runs in a task.
private struct WrappingInterceptor: ServerInterceptor {
    func intercept(context: ServerContext, next: @Sendable () async throws -> Void) async throws {
        context.addTrailer("x-wrapped", .string("yes"))
        try await next()
    }
}

// MARK: The servers

/// The configurations inputs run against, built once: a permit or a
/// registration that leaks shows up in the input that leaked it.
private let servers: [RPCServer.Shared] = {
    let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    var servers: [RPCServer.Shared] = []
    for variant in 0..<8 {
        var configuration = RPCServer.Configuration.defaults
        // Handlers run on the connection's (embedded) event loop: one thread.
        configuration.handlerExecutor = .eventLoop
        // Connection timers compare the real clock with deadlines they
        // set by it, and the embedded loop's clock is kept on the real one
        // (see below): every connection limit stays far above the half
        // second the harness moves the loop's clock ahead.
        configuration.maxConnectionIdle = nil
        configuration.maxConnectionAge = nil
        if variant & 1 != 0 {
            configuration.maxReceiveMessageSize = 64
            configuration.maxConcurrentStreams = 2
            configuration.initialStreamWindowSize = 100
            configuration.maxHeaderListSize = 256
            configuration.maxHeaderCount = 8
            configuration.maxBufferedBytesPerConnection = 1024
            configuration.floods.maxContinuationFrames = 2
            configuration.floods.resetBurst = 3
            configuration.floods.settingsBurst = 3
        }
        if variant & 2 != 0 {
            configuration.maxInFlightCalls = 1
            configuration.maxBufferedBytes = 4096
            configuration.bufferedBytesReservePerConnection = 512
        }
        let interceptors: [any ServerInterceptor] = switch variant >> 2 {
        case 0: [RefusingObserver()]
        default: [WrappingInterceptor(), RefusingObserver()]
        }
        servers.append(RPCServer.Shared(
            configuration: configuration, router: RPCRouter(services: [FuzzEchoService()]),
            interceptors: interceptors, logger: logger))
    }
    return servers
}()

private let clientPreface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

private struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: The entry point

/// Reads what the server wrote; with tracing, lists its frames.
private func drainOutbound(_ channel: EmbeddedChannel) {
    while let buffer = try? channel.readOutbound(as: ByteBuffer.self) {
        guard tracing else { continue }
        // Frames may straddle writes; good enough for a trace.
        var view = buffer
        while view.readableBytes >= 9 {
            let start = view.readerIndex
            let length = Int(view.getInteger(at: start, as: UInt32.self)! >> 8)
            let type = view.getInteger(at: start + 3, as: UInt8.self)!
            let flags = view.getInteger(at: start + 4, as: UInt8.self)!
            let stream = view.getInteger(at: start + 5, as: UInt32.self)! & 0x7FFF_FFFF
            guard view.readableBytes >= 9 + length else { break }
            view.moveReaderIndex(forwardBy: 9)
            var payload = view.readSlice(length: length)!
            let names = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]
            var line = "  < \(type < names.count ? names[Int(type)] : "type \(type)") stream \(stream) flags \(flags) length \(length)"
            if type == 7, let last = payload.readInteger(as: UInt32.self), let code = payload.readInteger(as: UInt32.self) {
                line += " last \(last) code \(code) \(payload.readString(length: payload.readableBytes) ?? "")"
            }
            if type == 3, let code = payload.readInteger(as: UInt32.self) { line += " code \(code)" }
            print(line)
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServerConnection(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in input { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
    var random = SplitMix(state: hash)
    let shared = servers[Int(random.next() % UInt64(servers.count))]
    let runBetweenReads = random.next() % 4 != 0
    let runBeforeClose = random.next() % 4 != 0
    // Sometimes the client stops reading for a while.
    let stallAt = random.next() % 3 == 0 ? Int(random.next() % 8) : -1

    let loop = EmbeddedEventLoop()
    // The server sets its deadlines by the real clock: the loop's starts
    // there, and only ever moves half a second past it, so only a call's
    // own short grpc-timeout can fire (a connection timer firing early
    // would find nothing due and arm itself again, forever).
    loop.advanceTime(to: .now())
    let channel = EmbeddedChannel(loop: loop)
    do {
        try channel.pipeline.syncOperations.addHandler(ServerConnectionHandler(shared: shared))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 50051)).wait()
    } catch {
        preconditionFailure("cannot set up the channel: \(error)")
    }

    var stream = clientPreface
    stream.append(contentsOf: input)
    var position = 0
    var reads = 0
    while position < stream.count, channel.isActive {
        if reads == stallAt {
            channel.isWritable = false
            channel.pipeline.fireChannelWritabilityChanged()
        } else if reads == stallAt + 3 {
            channel.isWritable = true
            channel.pipeline.fireChannelWritabilityChanged()
        }
        reads += 1
        // Mostly what a socket read gives (everything so far), sometimes
        // pieces, down to single bytes.
        let roll = random.next()
        let length: Int = switch roll % 8 {
        case 0...3: stream.count - position
        case 4, 5: 1 + Int((roll >> 8) % 64)
        case 6: 1 + Int((roll >> 8) % 9)
        default: 1 + Int((roll >> 8) % 2048)
        }
        let end = min(stream.count, position + length)
        var buffer = channel.allocator.buffer(capacity: end - position)
        buffer.writeBytes(stream[position..<end])
        position = end
        do {
            try channel.writeInbound(buffer)
        } catch {
            break  // the handler reported an error: the channel is closing
        }
        if runBetweenReads { loop.run() }
        drainOutbound(channel)
    }
    if runBeforeClose {
        loop.run()
        // Fires the deadlines of calls with a grpc-timeout under half a second.
        loop.advanceTime(by: .milliseconds(500))
        drainOutbound(channel)
    }

    // The client goes away: the handler's calls end, their tasks must finish.
    _ = try? channel.finish(acceptAlreadyClosed: true)
    loop.run()
    if tracing { print("  server config \(shared.configuration.maxReceiveMessageSize)/\(shared.configuration.maxInFlightCalls), reads split \(runBetweenReads), ran before close \(runBeforeClose)") }
    precondition(activeHandlers.load(ordering: .relaxed) == 0,
                 "\(activeHandlers.load(ordering: .relaxed)) handlers still running after the connection closed")
    precondition(shared.limiter.inFlight == 0, "\(shared.limiter.inFlight) in-flight permits leaked")
    precondition(shared.connections.isEmpty, "a closed connection is still registered")
    precondition(shared.connectionLimiter.count == 0, "a closed connection still counts against the connection limit")
    precondition(shared.receiveBudget.bytes == 0, "\(shared.receiveBudget.bytes) request bytes still held after the connection closed")
    return 0
}
