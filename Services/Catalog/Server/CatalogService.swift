import Crypto
import Foundation
import Logging
import MeridianRPC
import ServiceKit

/// Builds the catalog service from its configuration: what the executable
/// runs and what tests start in-process.
///
/// Storage is SQLite under `dataDirectory` (created and migrated on start).
/// Page tokens are signed with a secret kept beside the data (or
/// `CATALOG_PAGE_TOKEN_SECRET`), so tokens survive restarts.
public func buildService(
    configuration: ServiceConfiguration,
    logger: Logger = Logger(label: "catalog"),
    metricsExporter: (@Sendable () -> [UInt8])? = nil
) async throws -> ServiceHost {
    if configuration.databaseURL != nil {
        // PostgreSQL support is tracked in the catalog issue; refuse rather
        // than silently using another store.
        throw RPCError(.unimplemented, "--database-url (PostgreSQL) is not supported by this build of catalog yet; use --data-dir")
    }
    let directory = configuration.dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("meridian-catalog").path
    let store = try SQLiteProductStore(path: (directory as NSString).appendingPathComponent("catalog.sqlite"))
    let secret = try pageTokenSecret(directory: directory)
    let handler = CatalogHandler(store: store, pageTokenSecret: secret, logger: logger)
    if configuration.seedDemoData {
        let seeded = try await DemoCatalog.seed(into: store, tenant: TenantID(DemoCatalog.tenant))
        logger.info("demo catalog ready", metadata: ["products": "\(seeded)", "tenant": "\(DemoCatalog.tenant)"])
    }
    let pruning = Task {
        while !Task.isCancelled {
            try? await store.pruneExpired()
            try? await Task.sleep(for: .seconds(3600))
        }
    }
    return ServiceHost(
        configuration: configuration, services: [handler], logger: logger, metricsExporter: metricsExporter,
        onShutdown: {
            pruning.cancel()
            try? await store.close()
        })
}

/// A per-deployment secret for page tokens: from the environment, else a
/// random one created once in the data directory.
func pageTokenSecret(directory: String) throws -> Data {
    if let configured = ProcessInfo.processInfo.environment["CATALOG_PAGE_TOKEN_SECRET"], !configured.isEmpty {
        return Data(SHA256.hash(data: Data(configured.utf8)))
    }
    let path = (directory as NSString).appendingPathComponent("page-token.key")
    if let existing = FileManager.default.contents(atPath: path), existing.count == 32 { return existing }
    let secret = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    guard FileManager.default.createFile(atPath: path, contents: secret, attributes: [.posixPermissions: 0o600]) else {
        throw RPCError(.internal, "cannot write \(path)")
    }
    return secret
}
