import Contracts
import Foundation
import Logging
import PostgresNIO
import ServiceKit
import StorageKit
import SwiftProtobuf

/// Experiments, audit log, exposures and events in PostgreSQL, for
/// deployments with several replicas or more events than one file should
/// hold. Same layout as the SQLite store.
public final class PostgresExperimentStore: ExperimentStore {
    private let database: PostgresStorage
    private var client: PostgresClient { database.client }
    private let logger: Logger
    let idempotencyRetention: TimeInterval

    public init(url: String, logger: Logger, idempotencyRetention: TimeInterval = 86_400) async throws {
        database = try PostgresStorage(url: url, logger: logger)
        self.logger = logger
        self.idempotencyRetention = idempotencyRetention
        try await database.migrate(table: "experimentation_schema_migrations", lockID: 7104, migrations: Self.migrations)
    }

    static let migrations: [(version: Int, sql: [String])] = [
        (1, [
            "CREATE TABLE experiments (tenant TEXT NOT NULL, key TEXT NOT NULL, status INTEGER NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (tenant, key))",
            "CREATE TABLE experiment_changes (sequence BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, key TEXT NOT NULL, data BYTEA NOT NULL)",
            "CREATE INDEX experiment_changes_by_key ON experiment_changes (tenant, key, sequence)",
            """
            CREATE TABLE exposures (
                tenant TEXT NOT NULL, experiment_key TEXT NOT NULL, exposure_id TEXT NOT NULL, variation_key TEXT NOT NULL,
                unit_id TEXT NOT NULL, time BIGINT NOT NULL, attributes TEXT NOT NULL,
                PRIMARY KEY (tenant, experiment_key, exposure_id))
            """,
            "CREATE INDEX exposures_by_unit ON exposures (tenant, experiment_key, unit_id, time)",
            """
            CREATE TABLE events (
                id BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, event_key TEXT NOT NULL, unit_id TEXT NOT NULL,
                value DOUBLE PRECISION NOT NULL, time BIGINT NOT NULL, event_id TEXT, attributes TEXT NOT NULL)
            """,
            "CREATE UNIQUE INDEX events_by_id ON events (tenant, event_id) WHERE event_id IS NOT NULL",
            "CREATE INDEX events_by_unit ON events (tenant, event_key, unit_id, time)",
            PostgresStorage.idempotencyTable,
        ]),
        (2, [
            """
            CREATE TABLE sticky_assignments (
                tenant TEXT NOT NULL, experiment_key TEXT NOT NULL, unit_id TEXT NOT NULL, variation_key TEXT NOT NULL,
                PRIMARY KEY (tenant, experiment_key, unit_id))
            """,
        ]),
    ]

    // MARK: Experiments

    public func experiment(tenant: TenantID, key: String) async throws -> Experiment? {
        for try await data in try await client.query("SELECT data FROM experiments WHERE tenant = \(tenant.value) AND key = \(key)", logger: logger).decode(Data.self) {
            return try Experiment(serializedBytes: data)
        }
        return nil
    }

    public func experiments(tenant: TenantID) async throws -> [Experiment] {
        try await decodeExperiments(client.query("SELECT data FROM experiments WHERE tenant = \(tenant.value) ORDER BY key COLLATE \"C\"", logger: logger))
    }

    public func experimentsVersion(tenant: TenantID) async throws -> ExperimentSetVersion {
        let rows = try await client.query(
            "SELECT count(*), coalesce(max(sequence), 0) FROM experiment_changes WHERE tenant = \(tenant.value)", logger: logger)
        for try await (changes, lastSequence) in rows.decode((Int64, Int64).self) {
            return ExperimentSetVersion(changes: changes, lastSequence: lastSequence)
        }
        return ExperimentSetVersion(changes: 0, lastSequence: 0)
    }

    public func list(tenant: TenantID, status: Experiment.Status?, afterKey: String?, limit: Int) async throws -> [Experiment] {
        // NULL parameters switch the optional conditions off.
        let statusValue: Int? = status?.rawValue
        return try await decodeExperiments(client.query("""
            SELECT data FROM experiments WHERE tenant = \(tenant.value)
              AND (\(statusValue)::INTEGER IS NULL OR status = \(statusValue))
              AND (\(afterKey)::TEXT IS NULL OR key COLLATE "C" > \(afterKey))
            ORDER BY key COLLATE "C" LIMIT \(limit)
            """, logger: logger))
    }

    private func decodeExperiments(_ rows: PostgresRowSequence) async throws -> [Experiment] {
        var experiments: [Experiment] = []
        for try await data in rows.decode(Data.self) { experiments.append(try Experiment(serializedBytes: data)) }
        return experiments
    }

    public func modify(tenant: TenantID, key: String, idempotency: IdempotencyKey?,
                       decide: @Sendable (Experiment?) throws -> ExperimentWrite) async throws -> ExperimentModifyOutcome {
        let now = Date()
        let logger = self.logger
        let retention = idempotencyRetention
        return try await database.inTransaction { connection in
            if let idempotency {
                switch try await PostgresStorage.idempotencyLookup(connection, tenant: tenant, key: idempotency, retention: retention, now: now, logger: logger) {
                case .replay(let data): return .replayed(data)
                case .conflict: throw ExperimentStoreError.idempotencyConflict
                case .unused: break
                }
            }
            var current: Experiment?
            for try await data in try await connection.query(
                "SELECT data FROM experiments WHERE tenant = \(tenant.value) AND key = \(key) FOR UPDATE", logger: logger).decode(Data.self) {
                current = try Experiment(serializedBytes: data)
            }
            let result: Experiment
            switch try decide(current) {
            case .none(let experiment):
                result = experiment
            case .save(let experiment, let change):
                let data: Data = try experiment.serializedBytes()
                let changeData: Data = try change.serializedBytes()
                try await connection.query("""
                    INSERT INTO experiments (tenant, key, status, data) VALUES (\(tenant.value), \(key), \(experiment.status.rawValue), \(data))
                    ON CONFLICT (tenant, key) DO UPDATE SET status = excluded.status, data = excluded.data
                    """, logger: logger)
                try await connection.query("INSERT INTO experiment_changes (tenant, key, data) VALUES (\(tenant.value), \(key), \(changeData))", logger: logger)
                result = experiment
            }
            if let idempotency {
                try await PostgresStorage.storeIdempotent(connection, tenant: tenant, key: idempotency, response: try result.serializedBytes(),
                                                           now: now, logger: logger)
            }
            return .applied(result)
        }
    }

    public func changes(tenant: TenantID, key: String, before: Int64?, limit: Int) async throws -> [(sequence: Int64, change: ExperimentChange)] {
        let rows = try await client.query("""
            SELECT sequence, data FROM experiment_changes WHERE tenant = \(tenant.value) AND key = \(key) AND sequence < \(before ?? Int64.max)
            ORDER BY sequence DESC LIMIT \(limit)
            """, logger: logger)
        var changes: [(sequence: Int64, change: ExperimentChange)] = []
        for try await (sequence, data) in rows.decode((Int64, Data).self) {
            changes.append((sequence, try ExperimentChange(serializedBytes: data)))
        }
        return changes
    }

    // MARK: Exposures and events

    public func ingest(_ batches: [IngestionBatch]) async throws -> [IngestionResult] {
        let now = Date()
        let logger = self.logger
        let retention = idempotencyRetention
        return try await database.inTransaction { connection in
            var results: [IngestionResult] = []
            for batch in batches {
                if let key = batch.idempotency {
                    switch try await PostgresStorage.idempotencyLookup(connection, tenant: batch.tenant, key: key, retention: retention, now: now, logger: logger) {
                    case .replay(let data): results.append(.replayed(data)); continue
                    case .conflict: results.append(.conflict); continue
                    case .unused: break
                    }
                }
                var counts = IngestionCounts()
                // One multi-row statement per batch and table; RETURNING tells which rows were new.
                if !batch.exposures.isEmpty {
                    let inserted = try await Self.count(connection.query("""
                        INSERT INTO exposures (tenant, experiment_key, exposure_id, variation_key, unit_id, time, attributes)
                        SELECT \(batch.tenant.value), * FROM UNNEST(\(batch.exposures.map(\.experimentKey))::TEXT[], \(batch.exposures.map(\.exposureID))::TEXT[],
                            \(batch.exposures.map(\.variationKey))::TEXT[], \(batch.exposures.map(\.unitID))::TEXT[],
                            \(batch.exposures.map { Self.micros($0.time) })::BIGINT[], \(batch.exposures.map(\.attributesJSON))::TEXT[])
                        ON CONFLICT DO NOTHING RETURNING 1
                        """, logger: logger))
                    counts.accepted += inserted
                    counts.duplicates += batch.exposures.count - inserted
                }
                if !batch.events.isEmpty {
                    let inserted = try await Self.count(connection.query("""
                        INSERT INTO events (tenant, event_key, unit_id, value, time, event_id, attributes)
                        SELECT \(batch.tenant.value), k, u, v, t, NULLIF(i, ''), a
                        FROM UNNEST(\(batch.events.map(\.eventKey))::TEXT[], \(batch.events.map(\.unitID))::TEXT[],
                            \(batch.events.map(\.value))::DOUBLE PRECISION[], \(batch.events.map { Self.micros($0.time) })::BIGINT[],
                            \(batch.events.map { $0.eventID ?? "" })::TEXT[], \(batch.events.map(\.attributesJSON))::TEXT[]) AS r(k, u, v, t, i, a)
                        ON CONFLICT DO NOTHING RETURNING 1
                        """, logger: logger))
                    counts.accepted += inserted
                    counts.duplicates += batch.events.count - inserted
                }
                if !batch.sticky.isEmpty {
                    try await connection.query("""
                        INSERT INTO sticky_assignments (tenant, experiment_key, unit_id, variation_key)
                        SELECT \(batch.tenant.value), * FROM UNNEST(\(batch.sticky.map(\.unit.experimentKey))::TEXT[],
                            \(batch.sticky.map(\.unit.unitID))::TEXT[], \(batch.sticky.map(\.variationKey))::TEXT[])
                        ON CONFLICT DO NOTHING
                        """, logger: logger)
                }
                if let key = batch.idempotency {
                    try await PostgresStorage.storeIdempotent(connection, tenant: batch.tenant, key: key, response: batch.response(counts), now: now, logger: logger)
                }
                results.append(.stored(counts))
            }
            return results
        }
    }

    private static func count(_ rows: PostgresRowSequence) async throws -> Int {
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    public func stickyVariations(tenant: TenantID, units: [StickyUnit]) async throws -> [StickyUnit: String] {
        guard !units.isEmpty else { return [:] }
        let rows = try await client.query("""
            SELECT s.experiment_key, s.unit_id, s.variation_key FROM sticky_assignments s
            JOIN UNNEST(\(units.map(\.experimentKey))::TEXT[], \(units.map(\.unitID))::TEXT[]) AS u(experiment_key, unit_id)
              ON s.experiment_key = u.experiment_key AND s.unit_id = u.unit_id
            WHERE s.tenant = \(tenant.value)
            """, logger: logger)
        var found: [StickyUnit: String] = [:]
        for try await (experiment, unit, variation) in rows.decode((String, String, String).self) {
            found[StickyUnit(experimentKey: experiment, unitID: unit)] = variation
        }
        return found
    }

    public func unitMetrics(tenant: TenantID, experimentKey: String, metricKey: String, covariateKey: String?,
                            preperiod: TimeInterval) async throws -> [UnitMetric] {
        let rows = try await client.query("""
            WITH units AS (
                SELECT unit_id, MIN(variation_key) AS variation_key, COUNT(DISTINCT variation_key) AS variations, COUNT(*) AS exposures, MIN(time) AS first
                FROM exposures WHERE tenant = \(tenant.value) AND experiment_key = \(experimentKey) GROUP BY unit_id)
            SELECT u.unit_id, u.variation_key, u.variations, u.exposures,
                (SELECT COALESCE(SUM(e.value), 0) FROM events e
                    WHERE e.tenant = \(tenant.value) AND e.event_key = \(metricKey) AND e.unit_id = u.unit_id AND e.time >= u.first)::DOUBLE PRECISION,
                (SELECT COALESCE(SUM(e.value), 0) FROM events e
                    WHERE e.tenant = \(tenant.value) AND e.event_key = \(covariateKey ?? metricKey) AND e.unit_id = u.unit_id
                      AND e.time >= u.first - \(Int64(preperiod * 1_000_000)) AND e.time < u.first)::DOUBLE PRECISION
            FROM units u ORDER BY u.unit_id
            """, logger: logger)
        var units: [UnitMetric] = []
        for try await (unit, variation, variations, exposures, value, covariate) in rows.decode((String, String, Int, Int, Double, Double).self) {
            units.append(UnitMetric(unitID: unit, variationKey: variation, variationCount: variations, exposures: exposures,
                                    value: value, covariate: covariateKey == nil ? 0 : covariate))
        }
        return units
    }

    // MARK: Idempotency and health

    public func idempotentResponse(tenant: TenantID, key: IdempotencyKey) async throws -> IdempotencyLookup {
        let logger = self.logger
        let retention = idempotencyRetention
        return try await client.withConnection { connection in
            try await PostgresStorage.idempotencyLookup(connection, tenant: tenant, key: key, retention: retention, now: Date(), logger: logger)
        }
    }

    public func pruneExpired(now: Date) async throws {
        try await database.pruneIdempotencyKeys(olderThan: idempotencyRetention, now: now)
    }

    public func isAvailable() async -> Bool { await database.isAvailable() }

    public func close() async throws { database.close() }

    static func micros(_ date: Date) -> Int64 { SQLiteIdempotency.micros(date) }
}
