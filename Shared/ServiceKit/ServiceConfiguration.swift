import Foundation
import Logging
import MeridianRPC

/// Everything a service process needs to know to run. Each value comes from a
/// command-line flag, else the environment (`<SERVICE>_<SETTING>`, e.g.
/// `CATALOG_PORT`), else the default. Tests build it directly.
public struct ServiceConfiguration: Sendable {
    /// The service's short name, e.g. `catalog`; also its environment prefix.
    public var name: String
    public var host: String
    /// gRPC port; 0 picks a free one.
    public var port: Int
    /// HTTP admin port (metrics, health); nil disables it, 0 picks a free one.
    public var adminPort: Int?
    /// Where embedded storage (SQLite) lives; nil means a temporary directory.
    public var dataDirectory: String?
    /// PostgreSQL URL; when set it replaces embedded storage.
    public var databaseURL: String?
    /// Addresses of the services this one calls, by service name.
    public var dependencies: [String: String]
    public var logLevel: Logger.Level
    /// Load demo data on start (the local platform does).
    public var seedDemoData: Bool
    /// The RPC server's limits and timeouts.
    public var rpc: RPCServer.Configuration

    public init(name: String, host: String = "127.0.0.1", port: Int = 0, adminPort: Int? = nil,
                dataDirectory: String? = nil, databaseURL: String? = nil,
                dependencies: [String: String] = [:], logLevel: Logger.Level = .info,
                seedDemoData: Bool = false, rpc: RPCServer.Configuration? = nil) {
        self.name = name
        self.host = host
        self.port = port
        self.adminPort = adminPort
        self.dataDirectory = dataDirectory
        self.databaseURL = databaseURL
        self.dependencies = dependencies
        self.logLevel = logLevel
        self.seedDemoData = seedDemoData
        self.rpc = rpc ?? Self.rpcDefaults(for: name)
    }

    /// The RPC server defaults of a service. The catalog, the feature store
    /// and experimentation run their handlers on the event loops: their
    /// calls are short and frequent, and on one pinned core that measured
    /// better (2026-11-28): the catalog at 25k GetProduct/s (evenly paced)
    /// kept p50 near 0.5 ms where the shared pool queued up to tens of
    /// milliseconds; the feature store served 15–18k lookups/s at 4x16
    /// against 9–11k, with p99 at 5k/s of 0.8–1.5 ms against 2.4–3.9 ms;
    /// GetAssignments went from 11k to 17k calls/s at 4x16. Inference and
    /// personalization keep the shared pool: their handlers can run long
    /// (a model on a large batch, fan-out to other services), and a handler
    /// on the loop delays every other call on it.
    public static func rpcDefaults(for service: String) -> RPCServer.Configuration {
        var rpc = RPCServer.Configuration.defaults
        if ["catalog", "feature-store", "experimentation"].contains(service) { rpc.handlerExecutor = .eventLoop }
        return rpc
    }

    /// For tests: loopback, free ports, a fresh temporary data directory.
    public static func forTesting(name: String) -> ServiceConfiguration {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("meridian-test-\(name)-\(UUID().uuidString)").path
        return ServiceConfiguration(name: name, host: "127.0.0.1", port: 0, adminPort: nil, dataDirectory: directory)
    }

    /// The environment variable prefix, e.g. `FEATURE_STORE` for `feature-store`.
    public var environmentPrefix: String {
        name.uppercased().replacingOccurrences(of: "-", with: "_")
    }
}

/// The platform's port map (README): gRPC on 71xx, admin HTTP on 81xx.
public enum PlatformPorts {
    public static let catalog = 7101
    public static let featureStore = 7102
    public static let inference = 7103
    public static let experimentation = 7104
    public static let personalization = 7105
    public static let adminOffset = 1000

    public static func defaultPort(for service: String) -> Int {
        switch service {
        case "catalog": catalog
        case "feature-store": featureStore
        case "inference": inference
        case "experimentation": experimentation
        case "personalization": personalization
        default: 7100
        }
    }
}
