import Foundation
import Logging
import MeridianRPC
import NIOCore
import StandardServices
import Synchronization

/// Runs one service: its gRPC server with the standard health and reflection
/// services and the logging and metrics interceptors, plus the admin HTTP
/// endpoint. Each service's `buildService(configuration:)` returns one; its
/// executable calls `run()`, tests call `start()` and `shutdown()`, so tests
/// run exactly what ships.
public final class ServiceHost: Sendable {
    public let configuration: ServiceConfiguration
    public let logger: Logger
    public let health = HealthService()
    private let server: RPCServer
    private let serviceNames: [String]
    private let metricsExporter: (@Sendable () -> [UInt8])?
    private let admin = Mutex<AdminServer?>(nil)
    private let serving = Atomic<Bool>(false)
    /// Whether the dependencies the readiness check looks at answer.
    private let dependenciesReady = Atomic<Bool>(true)
    private let readinessCheck: (@Sendable () async -> Bool)?
    private let readinessTask = Mutex<Task<Void, Never>?>(nil)
    private let onShutdown: @Sendable () async -> Void

    /// - Parameters:
    ///   - services: the service's own RPC services.
    ///   - readinessCheck: polled every few seconds once started; while it
    ///     answers false (storage unreachable...) health says NOT_SERVING and
    ///     /readyz 503, so load balancers route around this instance.
    ///   - onShutdown: runs after the server stopped (close storage, clients).
    public init(
        configuration: ServiceConfiguration,
        services: [any RPCService],
        logger: Logger,
        interceptors: [any ServerInterceptor] = [],
        metricsExporter: (@Sendable () -> [UInt8])? = nil,
        readinessCheck: (@Sendable () async -> Bool)? = nil,
        onShutdown: @escaping @Sendable () async -> Void = {}
    ) {
        self.configuration = configuration
        self.logger = logger
        self.metricsExporter = metricsExporter
        self.readinessCheck = readinessCheck
        self.onShutdown = onShutdown
        let reflection = ReflectionService(services: services + [health])
        var rpc = configuration.rpc
        rpc.host = configuration.host
        rpc.port = configuration.port
        self.server = RPCServer(
            configuration: rpc,
            services: services + [health, reflection, reflection.v1alpha],
            interceptors: [LoggingInterceptor(logger: logger), MetricsInterceptor(service: configuration.name)] + interceptors,
            logger: logger)
        self.serviceNames = services.flatMap { service in
            Set(service.methods.map { String($0.path.dropFirst().prefix { $0 != "/" }) })
        }
    }

    /// Binds the gRPC and admin ports and marks every service SERVING.
    /// Returns the gRPC port (useful when configured as 0).
    @discardableResult
    public func start() async throws -> Int {
        for name in serviceNames { health.setStatus(.notServing, for: name) }
        health.setStatus(.notServing)
        let address = try await server.start()
        if let adminPort = configuration.adminPort {
            let adminServer = try await AdminServer.start(
                host: configuration.host, port: adminPort,
                ready: { [self] in self.serving.load(ordering: .relaxed) && self.dependenciesReady.load(ordering: .relaxed) },
                metrics: metricsExporter, logger: logger)
            admin.withLock { $0 = adminServer }
        }
        // Serving only once the readiness check agrees (a cache to fill, a
        // mirror to list); it is polled quickly until then.
        let ready = await readinessCheck?() ?? true
        dependenciesReady.store(ready, ordering: .relaxed)
        health.setAll(ready ? .serving : .notServing)
        serving.store(true, ordering: .relaxed)
        if let readinessCheck {
            readinessTask.withLock { $0 = Task { [weak self] in await self?.watchReadiness(readinessCheck) } }
        }
        logger.info("\(configuration.name) serving", metadata: ["port": "\(address.port ?? 0)"])
        return address.port ?? configuration.port
    }

    private func watchReadiness(_ check: @Sendable () async -> Bool) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: dependenciesReady.load(ordering: .relaxed) ? .seconds(5) : .milliseconds(250))
            guard serving.load(ordering: .relaxed), !Task.isCancelled else { return }
            let ready = await check()
            if dependenciesReady.exchange(ready, ordering: .relaxed) != ready {
                logger.log(level: ready ? .notice : .error, ready ? "dependencies answer again: serving" : "dependencies unavailable: not serving")
                health.setAll(ready ? .serving : .notServing)
            }
        }
    }

    /// The bound gRPC port, once started.
    public var port: Int? { server.localAddress?.port }

    /// The bound admin port, once started.
    public var adminPort: Int? { admin.withLock { $0?.port } }

    /// Marks NOT_SERVING (load balancers stop sending), drains calls in flight
    /// within the grace period, then releases the service's resources.
    public func shutdown() async {
        guard serving.exchange(false, ordering: .relaxed) else { return }
        readinessTask.withLock { $0 }?.cancel()
        logger.info("\(configuration.name) shutting down")
        health.setAll(.notServing)
        health.endWatches()
        await server.shutdown()
        await admin.withLock { $0 }?.stop()
        await onShutdown()
    }

    /// Starts, then runs until SIGTERM or SIGINT, then shuts down gracefully.
    public func run() async throws {
        try await start()
        await Signals.waitForTermination()
        await shutdown()
    }
}

/// Turns SIGTERM and SIGINT into an awaitable event, for executables.
public enum Signals {
    /// Returns when the process receives SIGTERM or SIGINT. Call once.
    public static func waitForTermination() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let once = Once(continuation)
            for signalNumber in [SIGTERM, SIGINT] {
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
                source.setEventHandler { once.fire() }
                source.resume()
                sources.append(source)
            }
        }
    }

    /// Keeps the signal sources alive; touched only by the one caller of
    /// `waitForTermination` (the executable's main task).
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    private final class Once: Sendable {
        let continuation: Mutex<CheckedContinuation<Void, Never>?>
        init(_ continuation: CheckedContinuation<Void, Never>) { self.continuation = Mutex(continuation) }
        func fire() { continuation.withLock { $0.take() }?.resume() }
    }
}
