import Logging
import MeridianRPC
import NIOCore
import NIOPosix
import Testing

/// Collects every byte the server sends until it closes the connection.
private final class RecordingHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    var received = ByteBuffer()
    let closed: EventLoopPromise<ByteBuffer>

    init(closed: EventLoopPromise<ByteBuffer>) {
        self.closed = closed
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received.writeBuffer(&buffer)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed.succeed(received)
    }
}

/// The HTTP/2 frame types in `bytes`, in order.
private func frameTypes(_ bytes: ByteBuffer) -> [UInt8] {
    var bytes = bytes
    var types: [UInt8] = []
    while bytes.readableBytes >= 9, let header = bytes.readBytes(length: 9) {
        let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
        types.append(header[3])
        guard bytes.readSlice(length: length) != nil else { break }
    }
    return types
}

@Suite struct ConnectionIdleTests {
    @Test func anIdleConnectionGetsAGoAwayAndIsClosed() async throws {
        var configuration = RPCServer.Configuration.defaults
        configuration.maxConnectionIdle = .milliseconds(300)
        let server = RPCServer(configuration: configuration, services: [EchoService(cancelled: CancellationProbe())], logger: Logger(label: "test"))
        let address = try await server.start()
        let group = MultiThreadedEventLoopGroup.singleton
        let closed = group.next().makePromise(of: ByteBuffer.self)
        let started = ContinuousClock.now
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(RecordingHandler(closed: closed)) }
            }
            .connect(host: "127.0.0.1", port: address.port!).get()
        // The client preface and an empty SETTINGS frame; then nothing.
        var preface = channel.allocator.buffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        preface.writeBytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
        // On a loaded machine the server may already have given up on the
        // silent connection; what it sent before closing is checked below.
        try? await channel.writeAndFlush(preface)
        // Should the server never close it, the test ends anyway, failing.
        let giveUp = channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }

        let received = try await closed.futureResult.get()
        let elapsed = ContinuousClock.now - started
        giveUp.cancel()
        let types = frameTypes(received)
        #expect(types.first == 4)  // the server's SETTINGS
        #expect(types.contains(7))  // GOAWAY before closing
        #expect(elapsed >= .milliseconds(300))
        #expect(elapsed < .seconds(5))
        await server.shutdown(gracePeriod: .seconds(1))
    }
}
