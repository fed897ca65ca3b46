import Contracts
import Foundation
import Logging
import MeridianRPC
import ServiceKit
import SwiftProtobuf

/// Builds the experimentation service from its configuration: what the
/// executable runs and what tests start in-process.
///
/// Storage is PostgreSQL when `databaseURL` is set, else SQLite under
/// `dataDirectory`; either is migrated on start. Exposures and
/// events go through a bounded ingestion pipeline; shutdown drains it before
/// the store closes, so nothing acknowledged or queued is lost.
/// `assignmentRefresh` is how often a replica checks for experiment
/// changes written by others sharing its database.
public func buildService(
    configuration: ServiceConfiguration,
    ingestion: IngestionPipeline.Configuration = .defaults,
    assignmentRefresh: Duration = .seconds(5),
    logger: Logger = Logger(label: "experimentation"),
    metricsExporter: (@Sendable () -> [UInt8])? = nil
) async throws -> ServiceHost {
    let directory = configuration.dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("meridian-experimentation").path
    let store: any ExperimentStore = if let url = configuration.databaseURL {
        try await PostgresExperimentStore(url: url, logger: logger)
    } else {
        try SQLiteExperimentStore(path: (directory as NSString).appendingPathComponent("experimentation.sqlite"))
    }
    let pipeline = IngestionPipeline(store: store, configuration: ingestion, logger: logger)
    let index = AssignmentIndex(store: store, refreshInterval: assignmentRefresh)
    let handler = ExperimentationHandler(
        store: store, pipeline: pipeline, index: index,
        pageTokenSecret: try pageTokenSecret(directory: directory, environmentVariable: "EXPERIMENTATION_PAGE_TOKEN_SECRET"),
        logger: logger)
    if configuration.seedDemoData {
        try await seedDemo(store: store)
        logger.info("demo experiments ready", metadata: ["tenant": "\(DemoExperiments.tenant)"])
    }
    let pruning = startHousekeeping { try await store.pruneExpired(now: Date()) }
    return ServiceHost(
        configuration: configuration, services: [handler.hostedService], logger: logger, metricsExporter: metricsExporter,
        readinessCheck: { await store.isAvailable() },
        onShutdown: {
            pruning.cancel()
            await pipeline.shutdown()
            try? await store.close()
        })
}

/// Creates the demo experiments that do not exist yet.
private func seedDemo(store: any ExperimentStore) async throws {
    let tenant = TenantID(DemoExperiments.tenant)
    for experiment in [DemoExperiments.rankerV2] {
        _ = try await store.modify(tenant: tenant, key: experiment.key, idempotency: nil) { current in
            if let current { return .none(current) }
            var stored = experiment
            let now = Google_Protobuf_Timestamp(date: Date())
            stored.createTime = now
            stored.updateTime = now
            stored.etag = ExperimentationHandler.newEtag()
            return .save(stored, change: .with {
                $0.actor = "demo-data"
                $0.changeTime = now
                $0.after = Google_Protobuf_Struct(fields: ExperimentMask.jsonFields(stored))
            })
        }
    }
}
