import NIOCore
import NIOPosix
import Synchronization

/// A TCP proxy that can hold every byte for a while in both directions:
/// how tests make a real service slow without touching it. Order is kept
/// when the delay changes (each byte leaves no earlier than the one before).
final class DelayProxy: Sendable {
    let port: Int
    private let delay = DelaySetting()
    private let channel: any Channel

    init(upstreamPort: Int) async throws {
        let delay = self.delay
        let group = MultiThreadedEventLoopGroup.singleton
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: "127.0.0.1", port: upstreamPort)
                    .flatMap { outbound in
                        let toUpstream = Relay(peer: outbound, delay: delay)
                        let toClient = Relay(peer: inbound, delay: delay)
                        return inbound.pipeline.addHandler(toUpstream).flatMap {
                            outbound.pipeline.addHandler(toClient)
                        }
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress!.port!
    }

    func setDelay(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        delay.nanoseconds.store(seconds * 1_000_000_000 + attoseconds / 1_000_000_000, ordering: .relaxed)
    }

    func close() async {
        try? await channel.close()
    }

    /// Forwards what one side reads to its peer after the current delay.
    private final class Relay: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let peer: any Channel
        let delay: DelaySetting
        var notBefore = NIODeadline.uptimeNanoseconds(0)

        init(peer: any Channel, delay: DelaySetting) {
            self.peer = peer
            self.delay = delay
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data)
            let peer = self.peer
            notBefore = max(notBefore, .now() + .nanoseconds(delay.nanoseconds.load(ordering: .relaxed)))
            let wait = notBefore - .now()
            if wait <= .zero {
                peer.writeAndFlush(bytes, promise: nil)
            } else {
                context.eventLoop.scheduleTask(in: wait) { peer.writeAndFlush(bytes, promise: nil) }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            let peer = self.peer
            let wait = notBefore - .now()
            context.eventLoop.scheduleTask(in: max(wait, .zero)) { peer.close(promise: nil) }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

private final class DelaySetting: Sendable {
    let nanoseconds = Atomic<Int64>(0)
}
