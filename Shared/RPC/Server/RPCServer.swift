import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A gRPC server: HTTP/2 on libnghttp2, connections on SwiftNIO event loops,
/// handlers in Swift tasks.
///
///     let server = RPCServer(configuration: .defaults, services: [myService], logger: logger)
///     let address = try await server.start()
///     ...
///     await server.shutdown()
public final class RPCServer: Sendable {
    public struct Configuration: Sendable {
        /// Address to listen on; `::` or `0.0.0.0` for every interface.
        public var host: String
        /// TCP port; 0 picks a free one (see `start()`'s result).
        public var port: Int
        /// SETTINGS_MAX_CONCURRENT_STREAMS advertised to each client.
        public var maxConcurrentStreams: UInt32
        /// Request messages above this size fail with RESOURCE_EXHAUSTED.
        public var maxReceiveMessageSize: Int
        /// SETTINGS_MAX_HEADER_LIST_SIZE: the largest request metadata accepted.
        public var maxHeaderListSize: UInt32
        /// Per-stream flow-control window (SETTINGS_INITIAL_WINDOW_SIZE).
        public var initialStreamWindowSize: UInt32
        /// Calls in flight server-wide above which new ones are refused.
        public var maxInFlightCalls: Int
        /// Idle connections (no call for this long) get a GOAWAY.
        public var maxConnectionIdle: TimeAmount?
        /// Connections older than this get a GOAWAY, spreading load again.
        public var maxConnectionAge: TimeAmount?
        /// How long calls may still run after the max-age GOAWAY; nil: until they end.
        public var maxConnectionAgeGrace: TimeAmount?
        /// How long shutdown lets calls in flight finish before cancelling them.
        public var shutdownGracePeriod: TimeAmount
        /// Where handler tasks run.
        public var handlerExecutor: HandlerExecutor

        // Bounds against hostile or broken clients. Each one hit counts in
        // `rpc_server_limit_hits_total{limit=...}`.

        /// Open connections server-wide; more are sent a GOAWAY and closed.
        public var maxConnections: Int
        /// Open connections from one IP address.
        public var maxConnectionsPerPeer: Int
        /// Header fields in one request header block (the size limit is
        /// `maxHeaderListSize`, counted as HTTP/2 does: name, value, 32).
        public var maxHeaderCount: Int
        /// Request bytes one connection may hold that no handler has taken
        /// yet (partial messages, queued messages); at least one message of
        /// `maxReceiveMessageSize` always fits.
        public var maxBufferedBytesPerConnection: Int
        /// The same, summed over the server. Each connection may still hold
        /// `bufferedBytesReservePerConnection` when the sum is over, so small
        /// requests on a fair connection are never refused for it.
        public var maxBufferedBytes: Int
        public var bufferedBytesReservePerConnection: Int
        /// The client preface, then any request header block once begun,
        /// must arrive within this.
        public var handshakeTimeout: TimeAmount
        /// A client that has not read what we sent for this long is dropped
        /// (while it does not read, its connection is not read either).
        public var writeStallTimeout: TimeAmount
        public var keepalive: Keepalive
        /// Frame-rate budgets, whatever limits the linked libnghttp2 has.
        public var floods: FloodLimits

        /// Server keepalive, and what it allows of clients' pings (gRPC's rules).
        public struct Keepalive: Sendable {
            /// A PING goes out after this long with nothing read; nil: never.
            public var time: TimeAmount?
            /// The PING's ACK must arrive within this, or the connection closes.
            public var timeout: TimeAmount
            /// Client pings closer together than this, with no response
            /// sent in between, are strikes.
            public var minPingInterval: TimeAmount
            /// Strikes allowed; one more gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings".
            public var maxPingStrikes: Int

            public static var defaults: Keepalive {
                Keepalive(time: .hours(2), timeout: .seconds(20), minPingInterval: .minutes(5), maxPingStrikes: 2)
            }
        }

        public struct FloodLimits: Sendable {
            /// CONTINUATION frames after one HEADERS frame.
            public var maxContinuationFrames: Int
            /// RST_STREAM frames from a client: a burst, then a rate.
            public var resetBurst: Int
            public var resetsPerSecond: Int
            /// SETTINGS frames from a client: a burst, then a rate.
            public var settingsBurst: Int
            public var settingsPerSecond: Int
            /// Frames that ask nothing of the server (WINDOW_UPDATE, PRIORITY,
            /// empty DATA, unknown types): a burst, then a rate, and two more
            /// for each DATA frame the server sends (the updates it calls for).
            public var controlFrameBurst: Int
            public var controlFramesPerSecond: Int

            public static var defaults: FloodLimits {
                FloodLimits(maxContinuationFrames: 16, resetBurst: 400, resetsPerSecond: 200, settingsBurst: 50, settingsPerSecond: 10,
                            controlFrameBurst: 2000, controlFramesPerSecond: 1000)
            }
        }

        public enum HandlerExecutor: String, Sendable, CaseIterable {
            /// On the event loop of the call's connection (a task executor
            /// over the loop): no thread hop between the socket and the
            /// handler and back. A handler's CPU work holds up the other
            /// connections of its loop, and handlers must never block a
            /// thread. Best for short, frequent calls.
            case eventLoop = "event-loop"
            /// On Swift's global concurrent executor (the default): two
            /// thread hops per call, but a long handler never delays another
            /// connection's I/O.
            case sharedPool = "shared-pool"
        }

        public static var defaults: Configuration {
            Configuration(
                host: "127.0.0.1", port: 0, maxConcurrentStreams: 100,
                maxReceiveMessageSize: 4 << 20, maxHeaderListSize: 16 << 10,
                initialStreamWindowSize: 1 << 20, maxInFlightCalls: 10_000,
                maxConnectionIdle: .minutes(30), maxConnectionAge: nil, maxConnectionAgeGrace: nil,
                shutdownGracePeriod: .seconds(10), handlerExecutor: .sharedPool,
                maxConnections: 4096, maxConnectionsPerPeer: 256, maxHeaderCount: 128,
                maxBufferedBytesPerConnection: 8 << 20, maxBufferedBytes: 128 << 20,
                bufferedBytesReservePerConnection: 16 << 10,
                handshakeTimeout: .seconds(10), writeStallTimeout: .seconds(30),
                keepalive: .defaults, floods: .defaults)
        }

        /// What one connection enforces by itself.
        var connectionLimits: ServerConnectionStateMachine.Limits {
            ServerConnectionStateMachine.Limits(
                handshakeTimeout: handshakeTimeout, keepaliveTime: keepalive.time, keepaliveTimeout: keepalive.timeout,
                minPingInterval: keepalive.minPingInterval, maxPingStrikes: keepalive.maxPingStrikes,
                maxConnectionIdle: maxConnectionIdle, maxConnectionAge: maxConnectionAge,
                maxConnectionAgeGrace: maxConnectionAgeGrace, writeStallTimeout: writeStallTimeout,
                maxContinuationFrames: floods.maxContinuationFrames,
                resets: TokenBucket.Rate(burst: floods.resetBurst, perSecond: floods.resetsPerSecond),
                settings: TokenBucket.Rate(burst: floods.settingsBurst, perSecond: floods.settingsPerSecond),
                controlFrames: TokenBucket.Rate(burst: floods.controlFrameBurst, perSecond: floods.controlFramesPerSecond))
        }

        /// The per-connection buffer bound actually enforced: room for one
        /// message of the largest size and its frames' overhead.
        var effectiveBufferedBytesPerConnection: Int {
            max(maxBufferedBytesPerConnection, maxReceiveMessageSize + (64 << 10))
        }

        var http2Settings: HTTP2Session.Settings {
            var settings = HTTP2Session.Settings()
            settings.maxConcurrentStreams = maxConcurrentStreams
            settings.maxHeaderListSize = maxHeaderListSize
            settings.initialWindowSize = initialStreamWindowSize
            return settings
        }
    }

    /// What every connection of this server shares.
    final class Shared: Sendable {
        let configuration: Configuration
        let router: RPCRouter
        let limiter: InFlightLimiter
        let interceptors: InterceptorChain
        let logger: Logger
        let connections = ConnectionRegistry()
        let connectionLimiter: ConnectionLimiter
        let receiveBudget: ReceiveBudget
        let limitMetrics = LimitMetrics()
        let connectionLimits: ServerConnectionStateMachine.Limits
        let maxBufferedBytesPerConnection: Int

        init(configuration: Configuration, router: RPCRouter, interceptors: [any ServerInterceptor], logger: Logger) {
            self.configuration = configuration
            self.router = router
            self.limiter = InFlightLimiter(limit: configuration.maxInFlightCalls)
            self.connectionLimiter = ConnectionLimiter(maxTotal: configuration.maxConnections, maxPerPeer: configuration.maxConnectionsPerPeer)
            self.receiveBudget = ReceiveBudget(limit: configuration.maxBufferedBytes,
                                               reservePerConnection: configuration.bufferedBytesReservePerConnection)
            self.connectionLimits = configuration.connectionLimits
            self.maxBufferedBytesPerConnection = configuration.effectiveBufferedBytesPerConnection
            self.interceptors = InterceptorChain(interceptors: interceptors)
            self.logger = logger
        }
    }

    private let shared: Shared
    private let group: any EventLoopGroup
    private let channel = Mutex<(any Channel)?>(nil)

    public init(
        configuration: Configuration,
        services: [any RPCService],
        interceptors: [any ServerInterceptor] = [],
        logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.shared = Shared(configuration: configuration, router: RPCRouter(services: services), interceptors: interceptors, logger: logger)
        self.group = group
    }

    /// The fully-qualified names of the services this server hosts.
    public var serviceNames: [String] { shared.router.serviceNames }

    /// Calls running now.
    public var callsInFlight: Int { shared.limiter.inFlight }

    /// Connections open now (admitted ones).
    public var openConnections: Int { shared.connectionLimiter.count }

    /// Request bytes held now that no handler has taken yet.
    public var bufferedRequestBytes: Int { shared.receiveBudget.bytes }

    /// Binds and starts accepting; returns the bound address.
    @discardableResult
    public func start() async throws -> SocketAddress {
        let shared = self.shared
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ServerConnectionHandler(shared: shared))
                }
            }
        let bound = try await bootstrap.bind(host: shared.configuration.host, port: shared.configuration.port).get()
        channel.withLock { $0 = bound }
        let address = bound.localAddress!
        shared.logger.info("gRPC server listening", metadata: [
            "address": "\(address)", "services": "\(serviceNames.joined(separator: ","))",
        ])
        return address
    }

    /// The bound address, once started.
    public var localAddress: SocketAddress? { channel.withLock { $0?.localAddress } }

    /// Stops accepting, sends GOAWAY on every connection, lets calls in flight
    /// finish for up to the grace period, then cancels what is left.
    public func shutdown(gracePeriod: TimeAmount? = nil) async {
        let grace = gracePeriod ?? shared.configuration.shutdownGracePeriod
        if let listening = channel.withLock({ $0 }) {
            try? await listening.close()
        }
        shared.connections.forEach { $0.beginGracefulShutdown() }
        let deadline = NIODeadline.now() + grace
        while !shared.connections.isEmpty && NIODeadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if !shared.connections.isEmpty {
            shared.logger.warning("grace period over; cancelling calls still running")
            shared.connections.forEach { $0.cancelAllCalls() }
            while !shared.connections.isEmpty {
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
    }
}

/// Open connections, so shutdown can reach each one on its own event loop.
final class ConnectionRegistry: Sendable {
    private let connections = Mutex<[ObjectIdentifier: NIOLoopBound<ServerConnectionHandler>]>([:])

    func register(_ handler: ServerConnectionHandler, on eventLoop: any EventLoop) {
        let bound = NIOLoopBound(handler, eventLoop: eventLoop)
        connections.withLock { $0[ObjectIdentifier(handler)] = bound }
    }

    func unregister(_ handler: ServerConnectionHandler, on eventLoop: any EventLoop) {
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(handler)) }
    }

    var isEmpty: Bool { connections.withLock { $0.isEmpty } }

    func forEach(_ body: @escaping @Sendable (ServerConnectionHandler) -> Void) {
        for bound in connections.withLock({ Array($0.values) }) {
            bound.eventLoop.execute { body(bound.value) }
        }
    }
}
