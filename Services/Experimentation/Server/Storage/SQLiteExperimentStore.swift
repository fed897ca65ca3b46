import Contracts
import Foundation
import GRDB
import ServiceKit
import StorageKit
import SwiftProtobuf

/// Experiments, audit log, exposures and events in SQLite through GRDB: one
/// file under the data directory, WAL mode, schema migrated on open.
/// Experiments are stored whole as protobuf beside the columns queries need.
public final class SQLiteExperimentStore: ExperimentStore {
    private let pool: DatabasePool
    let idempotencyRetention: TimeInterval

    public init(path: String, idempotencyRetention: TimeInterval = 86_400) throws {
        // An acknowledged exposure survives power loss, not only a crash.
        pool = try SQLiteStorage.openPool(path: path, durability: .powerLoss)
        self.idempotencyRetention = idempotencyRetention
        try Self.migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: experiments, audit log, exposures, events, idempotency") { db in
            try db.execute(sql: """
                CREATE TABLE experiments (
                    tenant TEXT NOT NULL,
                    key TEXT NOT NULL,
                    status INTEGER NOT NULL,
                    data BLOB NOT NULL,
                    PRIMARY KEY (tenant, key)
                ) WITHOUT ROWID;
                CREATE TABLE experiment_changes (
                    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                    tenant TEXT NOT NULL,
                    key TEXT NOT NULL,
                    data BLOB NOT NULL
                );
                CREATE INDEX experiment_changes_by_key ON experiment_changes (tenant, key, sequence);
                CREATE TABLE exposures (
                    tenant TEXT NOT NULL,
                    experiment_key TEXT NOT NULL,
                    exposure_id TEXT NOT NULL,
                    variation_key TEXT NOT NULL,
                    unit_id TEXT NOT NULL,
                    time INTEGER NOT NULL,
                    attributes TEXT NOT NULL,
                    PRIMARY KEY (tenant, experiment_key, exposure_id)
                ) WITHOUT ROWID;
                CREATE INDEX exposures_by_unit ON exposures (tenant, experiment_key, unit_id, time);
                CREATE TABLE events (
                    id INTEGER PRIMARY KEY,
                    tenant TEXT NOT NULL,
                    event_key TEXT NOT NULL,
                    unit_id TEXT NOT NULL,
                    value REAL NOT NULL,
                    time INTEGER NOT NULL,
                    event_id TEXT,
                    attributes TEXT NOT NULL
                );
                CREATE UNIQUE INDEX events_by_id ON events (tenant, event_id) WHERE event_id IS NOT NULL;
                CREATE INDEX events_by_unit ON events (tenant, event_key, unit_id, time);
                """)
            try db.execute(sql: SQLiteIdempotency.table)
        }
        migrator.registerMigration("v2: sticky assignments") { db in
            try db.execute(sql: """
                CREATE TABLE sticky_assignments (
                    tenant TEXT NOT NULL,
                    experiment_key TEXT NOT NULL,
                    unit_id TEXT NOT NULL,
                    variation_key TEXT NOT NULL,
                    PRIMARY KEY (tenant, experiment_key, unit_id)
                ) WITHOUT ROWID
                """)
        }
        return migrator
    }

    // MARK: Experiments

    public func experiment(tenant: TenantID, key: String) async throws -> Experiment? {
        try await pool.read { db in
            try Data.fetchOne(db, sql: "SELECT data FROM experiments WHERE tenant = ? AND key = ?", arguments: [tenant.value, key])
                .map { try Experiment(serializedBytes: $0) }
        }
    }

    public func experiments(tenant: TenantID) async throws -> [Experiment] {
        try await pool.read { db in
            try Data.fetchAll(db, sql: "SELECT data FROM experiments WHERE tenant = ? ORDER BY key", arguments: [tenant.value])
                .map { try Experiment(serializedBytes: $0) }
        }
    }

    public func experimentsVersion(tenant: TenantID) async throws -> ExperimentSetVersion {
        try await pool.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT count(*), coalesce(max(sequence), 0) FROM experiment_changes WHERE tenant = ?",
                                       arguments: [tenant.value])
            return ExperimentSetVersion(changes: row?[0] ?? 0, lastSequence: row?[1] ?? 0)
        }
    }

    public func list(tenant: TenantID, status: Experiment.Status?, afterKey: String?, limit: Int) async throws -> [Experiment] {
        var sql = "SELECT data FROM experiments WHERE tenant = ?"
        var arguments: StatementArguments = [tenant.value]
        if let status { sql += " AND status = ?"; arguments += [status.rawValue] }
        if let afterKey { sql += " AND key > ?"; arguments += [afterKey] }
        sql += " ORDER BY key LIMIT ?"
        arguments += [limit]
        return try await pool.read { [sql, arguments] db in
            try Data.fetchAll(db, sql: sql, arguments: arguments).map { try Experiment(serializedBytes: $0) }
        }
    }

    public func modify(tenant: TenantID, key: String, idempotency: IdempotencyKey?,
                       decide: @Sendable (Experiment?) throws -> ExperimentWrite) async throws -> ExperimentModifyOutcome {
        let now = Date()
        return try await pool.write { db in
            if let idempotency {
                switch try SQLiteIdempotency.lookup(db, tenant: tenant, key: idempotency, retention: self.idempotencyRetention, now: now) {
                case .replay(let data): return .replayed(data)
                case .conflict: throw ExperimentStoreError.idempotencyConflict
                case .unused: break
                }
            }
            let current = try Data.fetchOne(db, sql: "SELECT data FROM experiments WHERE tenant = ? AND key = ?", arguments: [tenant.value, key])
                .map { try Experiment(serializedBytes: $0) }
            let result: Experiment
            switch try decide(current) {
            case .none(let experiment):
                result = experiment
            case .save(let experiment, let change):
                try db.execute(sql: "INSERT OR REPLACE INTO experiments (tenant, key, status, data) VALUES (?, ?, ?, ?)",
                               arguments: [tenant.value, key, experiment.status.rawValue, try experiment.serializedBytes() as Data])
                try db.execute(sql: "INSERT INTO experiment_changes (tenant, key, data) VALUES (?, ?, ?)",
                               arguments: [tenant.value, key, try change.serializedBytes() as Data])
                result = experiment
            }
            if let idempotency {
                try SQLiteIdempotency.store(db, tenant: tenant, key: idempotency, response: try result.serializedBytes(), now: now)
            }
            return .applied(result)
        }
    }

    public func changes(tenant: TenantID, key: String, before: Int64?, limit: Int) async throws -> [(sequence: Int64, change: ExperimentChange)] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT sequence, data FROM experiment_changes WHERE tenant = ? AND key = ? AND sequence < ?
                ORDER BY sequence DESC LIMIT ?
                """, arguments: [tenant.value, key, before ?? Int64.max, limit])
                .map { (sequence: $0["sequence"], change: try ExperimentChange(serializedBytes: $0["data"] as Data)) }
        }
    }

    // MARK: Exposures and events

    public func ingest(_ batches: [IngestionBatch]) async throws -> [IngestionResult] {
        let now = Date()
        return try await pool.write { db in
            let exposure = try db.cachedStatement(sql: """
                INSERT INTO exposures (tenant, experiment_key, exposure_id, variation_key, unit_id, time, attributes)
                VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                """)
            let event = try db.cachedStatement(sql: """
                INSERT INTO events (tenant, event_key, unit_id, value, time, event_id, attributes)
                VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                """)
            let sticky = try db.cachedStatement(sql: """
                INSERT INTO sticky_assignments (tenant, experiment_key, unit_id, variation_key) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING
                """)
            var results: [IngestionResult] = []
            for batch in batches {
                if let key = batch.idempotency {
                    switch try SQLiteIdempotency.lookup(db, tenant: batch.tenant, key: key, retention: self.idempotencyRetention, now: now) {
                    case .replay(let data): results.append(.replayed(data)); continue
                    case .conflict: results.append(.conflict); continue
                    case .unused: break
                    }
                }
                var counts = IngestionCounts()
                for record in batch.exposures {
                    try exposure.execute(arguments: [batch.tenant.value, record.experimentKey, record.exposureID, record.variationKey,
                                                     record.unitID, Self.micros(record.time), record.attributesJSON])
                    if db.changesCount > 0 { counts.accepted += 1 } else { counts.duplicates += 1 }
                }
                for record in batch.events {
                    try event.execute(arguments: [batch.tenant.value, record.eventKey, record.unitID, record.value,
                                                  Self.micros(record.time), record.eventID, record.attributesJSON])
                    if db.changesCount > 0 { counts.accepted += 1 } else { counts.duplicates += 1 }
                }
                for record in batch.sticky {
                    try sticky.execute(arguments: [batch.tenant.value, record.unit.experimentKey, record.unit.unitID, record.variationKey])
                }
                if let key = batch.idempotency {
                    try SQLiteIdempotency.store(db, tenant: batch.tenant, key: key, response: batch.response(counts), now: now)
                }
                results.append(.stored(counts))
            }
            return results
        }
    }

    public func stickyVariations(tenant: TenantID, units: [StickyUnit]) async throws -> [StickyUnit: String] {
        guard !units.isEmpty else { return [:] }
        return try await pool.read { db in
            var found: [StickyUnit: String] = [:]
            let statement = try db.cachedStatement(sql: """
                SELECT variation_key FROM sticky_assignments WHERE tenant = ? AND experiment_key = ? AND unit_id = ?
                """)
            for unit in units {
                if let variation = try String.fetchOne(statement, arguments: [tenant.value, unit.experimentKey, unit.unitID]) {
                    found[unit] = variation
                }
            }
            return found
        }
    }

    public func unitMetrics(tenant: TenantID, experimentKey: String, metricKey: String, covariateKey: String?,
                            preperiod: TimeInterval) async throws -> [UnitMetric] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                WITH units AS (
                    SELECT unit_id, MIN(variation_key) AS variation_key, COUNT(DISTINCT variation_key) AS variations, COUNT(*) AS exposures, MIN(time) AS first
                    FROM exposures WHERE tenant = ? AND experiment_key = ? GROUP BY unit_id)
                SELECT u.unit_id, u.variation_key, u.variations, u.exposures,
                    (SELECT COALESCE(SUM(e.value), 0) FROM events e
                        WHERE e.tenant = ? AND e.event_key = ? AND e.unit_id = u.unit_id AND e.time >= u.first) AS value,
                    (SELECT COALESCE(SUM(e.value), 0) FROM events e
                        WHERE e.tenant = ? AND e.event_key = ? AND e.unit_id = u.unit_id AND e.time >= u.first - ? AND e.time < u.first) AS covariate
                FROM units u ORDER BY u.unit_id
                """, arguments: [tenant.value, experimentKey, tenant.value, metricKey, tenant.value, covariateKey ?? metricKey,
                                 Int64(preperiod * 1_000_000)])
                .map { row in
                    UnitMetric(unitID: row["unit_id"], variationKey: row["variation_key"], variationCount: row["variations"], exposures: row["exposures"],
                               value: row["value"], covariate: covariateKey == nil ? 0 : row["covariate"])
                }
        }
    }

    // MARK: Idempotency

    public func idempotentResponse(tenant: TenantID, key: IdempotencyKey) async throws -> IdempotencyLookup {
        try await pool.read { db in try SQLiteIdempotency.lookup(db, tenant: tenant, key: key, retention: self.idempotencyRetention, now: Date()) }
    }

    public func pruneExpired(now: Date) async throws {
        try await pool.write { db in
            try SQLiteIdempotency.prune(db, retention: self.idempotencyRetention, now: now)
        }
    }

    // MARK: Health

    public func isAvailable() async -> Bool {
        (try? await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }) == 1
    }

    public func close() async throws {
        try pool.close()
    }

    static func micros(_ date: Date) -> Int64 { SQLiteIdempotency.micros(date) }
}
