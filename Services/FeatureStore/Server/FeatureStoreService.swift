import Foundation
import Logging
import MeridianRPC
import ServiceKit

/// Builds the feature store from its configuration: what the executable runs
/// and what tests start in-process. With `catalogTenants`, item features of
/// those tenants follow the catalog at `dependencies["catalog"]`.
///
/// Storage is PostgreSQL when `databaseURL` is set, else SQLite under
/// `dataDirectory`, migrated on start, with the registry (and, on SQLite,
/// recently read rows) held in memory in front of it.
public func buildService(
    configuration: ServiceConfiguration,
    catalogTenants: [String] = [],
    sharedRegistryRefresh: Duration = .seconds(5),
    logger: Logger = Logger(label: "feature-store"),
    metricsExporter: (@Sendable () -> [UInt8])? = nil
) async throws -> ServiceHost {
    let directory = configuration.dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("meridian-feature-store").path
    let storage: any FeatureStorage = if let url = configuration.databaseURL {
        try await PostgresFeatureStorage(url: url, logger: logger)
    } else {
        try SQLiteFeatureStorage(path: (directory as NSString).appendingPathComponent("features.sqlite"))
    }
    let cache = OnlineCache(storage: storage, soleWriter: configuration.databaseURL == nil, sharedRegistryRefresh: sharedRegistryRefresh)
    let handler = FeatureStoreHandler(
        storage: storage, cache: cache,
        pageTokenSecret: try pageTokenSecret(directory: directory, environmentVariable: "FEATURE_STORE_PAGE_TOKEN_SECRET"),
        logger: logger)
    if configuration.seedDemoData { try await DemoFeatures.seed(into: handler) }
    // Item features from the catalog's change feed, for the tenants named.
    var feedParts: (task: Task<Void, Never>, channel: RPCChannel)?
    if !catalogTenants.isEmpty {
        let address = configuration.dependencies["catalog"] ?? "127.0.0.1:\(PlatformPorts.catalog)"
        let channel = try RPCChannel(target: address)
        let consumer = CatalogFeedConsumer(channel: channel, tenants: catalogTenants.map(TenantID.init), handler: handler, storage: storage, logger: logger)
        feedParts = (Task { await consumer.run() }, channel)
        logger.info("following the catalog feed", metadata: ["catalog": "\(address)", "tenants": "\(catalogTenants.joined(separator: ","))"])
    }
    let feed = feedParts
    let pruning = startHousekeeping { try await storage.pruneExpired(now: Date()) }
    return ServiceHost(
        configuration: configuration, services: [handler.hostedService], logger: logger, metricsExporter: metricsExporter,
        readinessCheck: { await storage.isAvailable() },
        onShutdown: {
            pruning.cancel()
            feed?.task.cancel()
            await feed?.channel.close()
            try? await storage.close()
        })
}
