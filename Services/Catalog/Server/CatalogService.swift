import Foundation
import Logging
import MeridianRPC
import ServiceKit

/// Builds the catalog service from its configuration: what the executable
/// runs and what tests start in-process.
///
/// Storage is PostgreSQL when `databaseURL` is set, else SQLite under
/// `dataDirectory`; either is migrated on start. Page tokens are signed with
/// a secret kept in the data directory (or `CATALOG_PAGE_TOKEN_SECRET`,
/// which replicas sharing a database must set alike), so tokens survive
/// restarts.
public func buildService(
    configuration: ServiceConfiguration,
    logger: Logger = Logger(label: "catalog"),
    metricsExporter: (@Sendable () -> [UInt8])? = nil
) async throws -> ServiceHost {
    let directory = configuration.dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("meridian-catalog").path
    let store: any ProductStore
    if let url = configuration.databaseURL {
        store = MeteredProductStore(try await PostgresProductStore(url: url, logger: logger), backend: "postgres")
    } else {
        // This process is the file's only writer, so reads can be cached; the
        // meter sits under the cache so it counts what reaches the database.
        let sqlite = try SQLiteProductStore(path: (directory as NSString).appendingPathComponent("catalog.sqlite"))
        store = CachedProductStore(MeteredProductStore(sqlite, backend: "sqlite"))
    }
    let secret = try pageTokenSecret(directory: directory, environmentVariable: "CATALOG_PAGE_TOKEN_SECRET")
    let handler = CatalogHandler(store: store, pageTokenSecret: secret, logger: logger)
    if configuration.seedDemoData {
        let seeded = try await DemoCatalog.seed(into: store, tenant: TenantID(DemoCatalog.tenant))
        logger.info("demo catalog ready", metadata: ["products": "\(seeded)", "tenant": "\(DemoCatalog.tenant)"])
    }
    let pruning = startHousekeeping { try await store.pruneExpired(now: Date()) }
    return ServiceHost(
        configuration: configuration, services: [handler.hostedService], logger: logger, metricsExporter: metricsExporter,
        readinessCheck: { await store.isAvailable() },
        onShutdown: {
            pruning.cancel()
            try? await store.close()
        })
}
