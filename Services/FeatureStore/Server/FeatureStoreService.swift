import Foundation
import Logging
import MeridianRPC
import ServiceKit

/// Builds the feature store from its configuration: what the executable runs
/// and what tests start in-process.
///
/// Storage is PostgreSQL when `databaseURL` is set, else SQLite under
/// `dataDirectory`, migrated on start, with the registry (and, on SQLite,
/// recently read rows) held in memory in front of it.
public func buildService(
    configuration: ServiceConfiguration,
    logger: Logger = Logger(label: "feature-store"),
    metricsExporter: (@Sendable () -> [UInt8])? = nil
) async throws -> ServiceHost {
    let directory = configuration.dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("meridian-feature-store").path
    let storage: any FeatureStorage = if let url = configuration.databaseURL {
        try await PostgresFeatureStorage(url: url, logger: logger)
    } else {
        try SQLiteFeatureStorage(path: (directory as NSString).appendingPathComponent("features.sqlite"))
    }
    let handler = FeatureStoreHandler(
        storage: storage, cache: OnlineCache(storage: storage, soleWriter: configuration.databaseURL == nil),
        pageTokenSecret: try pageTokenSecret(directory: directory, environmentVariable: "FEATURE_STORE_PAGE_TOKEN_SECRET"),
        logger: logger)
    let pruning = Task {
        while !Task.isCancelled {
            try? await storage.pruneExpired(now: Date())
            try? await Task.sleep(for: .seconds(3600))
        }
    }
    return ServiceHost(
        configuration: configuration, services: [handler], logger: logger, metricsExporter: metricsExporter,
        readinessCheck: { await storage.isAvailable() },
        onShutdown: {
            pruning.cancel()
            try? await storage.close()
        })
}
