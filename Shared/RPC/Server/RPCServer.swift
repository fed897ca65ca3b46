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
        /// How long shutdown lets calls in flight finish before cancelling them.
        public var shutdownGracePeriod: TimeAmount
        /// Where handler tasks run.
        public var handlerExecutor: HandlerExecutor

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
                maxConnectionIdle: .minutes(30), maxConnectionAge: nil,
                shutdownGracePeriod: .seconds(10), handlerExecutor: .sharedPool)
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

        init(configuration: Configuration, router: RPCRouter, interceptors: [any ServerInterceptor], logger: Logger) {
            self.configuration = configuration
            self.router = router
            self.limiter = InFlightLimiter(limit: configuration.maxInFlightCalls)
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
