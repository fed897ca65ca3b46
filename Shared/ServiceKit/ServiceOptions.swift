import ArgumentParser
import Foundation
import Logging
import MeridianRPC
import NIOCore

/// The flags every service executable takes. Unset flags fall back to the
/// environment, then to defaults (see `ServiceConfiguration`).
public struct ServiceOptions: ParsableArguments {
    @Option(help: "Address to listen on (env <SERVICE>_HOST; default 0.0.0.0).")
    public var host: String?

    @Option(help: "gRPC port (env <SERVICE>_PORT; default from the port map).")
    public var port: Int?

    @Option(name: .customLong("admin-port"), help: "HTTP admin port for /metrics and /healthz (env <SERVICE>_ADMIN_PORT; default port+1000; 0 disables).")
    public var adminPort: Int?

    @Option(name: .customLong("data-dir"), help: "Directory for embedded storage (env <SERVICE>_DATA_DIR; default ./data/<service>).")
    public var dataDirectory: String?

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL, replacing embedded storage (env <SERVICE>_DATABASE_URL).")
    public var databaseURL: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (env <SERVICE>_LOG_LEVEL; default info).")
    public var logLevel: String?

    @Flag(name: .customLong("demo-data"), help: "Load demo data on start (env <SERVICE>_DEMO_DATA=1).")
    public var demoData = false

    @Option(name: .customLong("handler-executor"),
            help: "Where handlers run: event-loop (no thread hop; the catalog's default) or shared-pool (the others' default) (env <SERVICE>_HANDLER_EXECUTOR).")
    public var handlerExecutor: String?

    @Option(name: .customLong("max-connections"), help: "Open connections server-wide (env <SERVICE>_MAX_CONNECTIONS; default 4096).")
    public var maxConnections: Int?

    @Option(name: .customLong("max-connections-per-peer"),
            help: "Open connections from one IP address (env <SERVICE>_MAX_CONNECTIONS_PER_PEER; default 256).")
    public var maxConnectionsPerPeer: Int?

    @Option(name: .customLong("max-in-flight-calls"),
            help: "Calls in flight server-wide before new ones are refused, bar each connection's fair share (env <SERVICE>_MAX_IN_FLIGHT_CALLS; default 10000).")
    public var maxInFlightCalls: Int?

    @Option(name: .customLong("handshake-timeout"),
            help: "Seconds for a client's preface, and for any request's headers once begun (env <SERVICE>_HANDSHAKE_TIMEOUT; default 10).")
    public var handshakeTimeout: Double?

    @Option(name: .customLong("keepalive-time"),
            help: "Seconds without anything read before the server pings; 0 disables (env <SERVICE>_KEEPALIVE_TIME; default 7200).")
    public var keepaliveTime: Double?

    public init() {}

    /// Resolves flags, then environment, then defaults.
    public func configuration(
        service: String,
        dependencies: [String: String?] = [:],
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ServiceConfiguration {
        var configuration = ServiceConfiguration(name: service)
        let prefix = configuration.environmentPrefix
        func env(_ key: String) -> String? {
            environment["\(prefix)_\(key)"].flatMap { $0.isEmpty ? nil : $0 }
        }
        func int(_ key: String) throws -> Int? {
            guard let text = env(key) else { return nil }
            guard let value = Int(text) else { throw ValidationError("\(prefix)_\(key) must be an integer, got \(text)") }
            return value
        }
        configuration.host = host ?? env("HOST") ?? "0.0.0.0"
        configuration.port = try port ?? int("PORT") ?? PlatformPorts.defaultPort(for: service)
        let admin = try adminPort ?? int("ADMIN_PORT") ?? configuration.port + PlatformPorts.adminOffset
        configuration.adminPort = admin == 0 ? nil : admin
        configuration.dataDirectory = dataDirectory ?? env("DATA_DIR") ?? "data/\(service)"
        configuration.databaseURL = databaseURL ?? env("DATABASE_URL")
        let level = logLevel ?? env("LOG_LEVEL") ?? "info"
        guard let parsed = Logger.Level(rawValue: level) else { throw ValidationError("unknown log level \(level)") }
        configuration.logLevel = parsed
        configuration.seedDemoData = demoData || env("DEMO_DATA") == "1"
        configuration.rpc.host = configuration.host
        configuration.rpc.port = configuration.port
        if let executor = handlerExecutor ?? env("HANDLER_EXECUTOR") {
            guard let parsed = RPCServer.Configuration.HandlerExecutor(rawValue: executor) else {
                throw ValidationError("handler executor must be event-loop or shared-pool, got \(executor)")
            }
            configuration.rpc.handlerExecutor = parsed
        }
        func seconds(_ key: String, _ flag: Double?) throws -> TimeAmount? {
            let text = flag.map { String($0) } ?? env(key)
            guard let text else { return nil }
            guard let value = Double(text), value >= 0, value < 1e9 else {
                throw ValidationError("\(prefix)_\(key) must be a number of seconds, got \(text)")
            }
            return .nanoseconds(Int64(value * 1e9))
        }
        func positive(_ key: String, _ flag: Int?) throws -> Int? {
            guard let value = try flag ?? int(key) else { return nil }
            guard value > 0 else { throw ValidationError("\(prefix)_\(key) must be positive, got \(value)") }
            return value
        }
        if let value = try positive("MAX_CONNECTIONS", maxConnections) { configuration.rpc.maxConnections = value }
        if let value = try positive("MAX_CONNECTIONS_PER_PEER", maxConnectionsPerPeer) { configuration.rpc.maxConnectionsPerPeer = value }
        if let value = try positive("MAX_IN_FLIGHT_CALLS", maxInFlightCalls) { configuration.rpc.maxInFlightCalls = value }
        if let value = try seconds("HANDSHAKE_TIMEOUT", handshakeTimeout) { configuration.rpc.handshakeTimeout = value }
        if let value = try seconds("KEEPALIVE_TIME", keepaliveTime) {
            configuration.rpc.keepalive.time = value == .zero ? nil : value
        }
        for (dependency, flagValue) in dependencies {
            let key = dependency.uppercased().replacingOccurrences(of: "-", with: "_") + "_ADDRESS"
            configuration.dependencies[dependency] = flagValue ?? env(key)
                ?? "127.0.0.1:\(PlatformPorts.defaultPort(for: dependency))"
        }
        return configuration
    }
}
