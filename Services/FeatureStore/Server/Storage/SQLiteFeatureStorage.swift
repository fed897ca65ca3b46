import Contracts
import Foundation
import GRDB
import ServiceKit
import StorageKit
import SwiftProtobuf

/// Definitions and rows in SQLite through GRDB: one file under the data
/// directory, WAL mode, `synchronous=FULL` so an acknowledged write survives
/// power loss. A row is one record per (view, entity) holding the latest
/// values as a serialized `FeatureRow`.
public final class SQLiteFeatureStorage: FeatureStorage {
    private let pool: DatabasePool
    let idempotencyRetention: TimeInterval

    public init(path: String, idempotencyRetention: TimeInterval = 86_400) throws {
        pool = try SQLiteStorage.openPool(path: path, durability: .powerLoss)
        self.idempotencyRetention = idempotencyRetention
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: views, services, rows, idempotency") { db in
            try db.execute(sql: """
                CREATE TABLE feature_views (tenant TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (tenant, name)) WITHOUT ROWID;
                CREATE TABLE feature_services (tenant TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (tenant, name)) WITHOUT ROWID;
                CREATE TABLE feature_rows (
                    tenant TEXT NOT NULL,
                    view TEXT NOT NULL,
                    entity_key TEXT NOT NULL,
                    event_time INTEGER NOT NULL,
                    data BLOB NOT NULL,
                    PRIMARY KEY (tenant, view, entity_key)
                ) WITHOUT ROWID;
                """)
            try db.execute(sql: SQLiteIdempotency.table)
        }
        migrator.registerMigration("v2: feed consumer offsets") { db in
            try db.execute(sql: "CREATE TABLE consumer_offsets (tenant TEXT NOT NULL, consumer TEXT NOT NULL, token TEXT NOT NULL, PRIMARY KEY (tenant, consumer)) WITHOUT ROWID")
        }
        try migrator.migrate(pool)
    }

    public func registry(tenant: TenantID) async throws -> (views: [FeatureView], services: [FeatureService]) {
        try await pool.read { db in
            (try Data.fetchAll(db, sql: "SELECT data FROM feature_views WHERE tenant = ? ORDER BY name", arguments: [tenant.value])
                .map { try FeatureView(serializedBytes: $0) },
             try Data.fetchAll(db, sql: "SELECT data FROM feature_services WHERE tenant = ? ORDER BY name", arguments: [tenant.value])
                .map { try FeatureService(serializedBytes: $0) })
        }
    }

    public func modifyRegistry(tenant: TenantID, idempotency: IdempotencyKey?,
                               decide: @Sendable ([String: FeatureView], [String: FeatureService]) throws -> RegistryWrite) async throws -> RegistryOutcome {
        let now = Date()
        return try await pool.write { db in
            if let idempotency {
                switch try SQLiteIdempotency.lookup(db, tenant: tenant, key: idempotency, retention: self.idempotencyRetention, now: now) {
                case .replay(let data): return .answered(data)
                case .conflict: throw FeatureStorageError.idempotencyConflict
                case .unused: break
                }
            }
            var views: [String: FeatureView] = [:], services: [String: FeatureService] = [:]
            for data in try Data.fetchAll(db, sql: "SELECT data FROM feature_views WHERE tenant = ?", arguments: [tenant.value]) {
                let view = try FeatureView(serializedBytes: data)
                views[view.name] = view
            }
            for data in try Data.fetchAll(db, sql: "SELECT data FROM feature_services WHERE tenant = ?", arguments: [tenant.value]) {
                let service = try FeatureService(serializedBytes: data)
                services[service.name] = service
            }
            let response: Data
            switch try decide(views, services) {
            case .saveView(let view, let answer):
                try db.execute(sql: "INSERT OR REPLACE INTO feature_views (tenant, name, data) VALUES (?, ?, ?)",
                               arguments: [tenant.value, view.name, try view.serializedBytes() as Data])
                response = answer
            case .deleteView(let name, let answer):
                try db.execute(sql: "DELETE FROM feature_views WHERE tenant = ? AND name = ?", arguments: [tenant.value, name])
                try db.execute(sql: "DELETE FROM feature_rows WHERE tenant = ? AND view = ?", arguments: [tenant.value, name])
                response = answer
            case .saveService(let service, let answer):
                try db.execute(sql: "INSERT OR REPLACE INTO feature_services (tenant, name, data) VALUES (?, ?, ?)",
                               arguments: [tenant.value, service.name, try service.serializedBytes() as Data])
                response = answer
            case .none(let answer):
                response = answer
            }
            if let idempotency {
                try SQLiteIdempotency.store(db, tenant: tenant, key: idempotency, response: response, now: now)
            }
            return .answered(response)
        }
    }

    public func write(tenant: TenantID, view: String, rows: [StoredRow], idempotency: IdempotencyKey?,
                      response: @Sendable ([Bool]) -> Data) async throws -> WriteOutcome {
        let now = Date()
        return try await pool.write { db in
            if let idempotency {
                switch try SQLiteIdempotency.lookup(db, tenant: tenant, key: idempotency, retention: self.idempotencyRetention, now: now) {
                case .replay(let data): return .replayed(data)
                case .conflict: throw FeatureStorageError.idempotencyConflict
                case .unused: break
                }
            }
            // The WHERE on the upsert keeps a later stored row: replays and
            // reordered batches converge to the same state.
            let statement = try db.cachedStatement(sql: """
                INSERT INTO feature_rows (tenant, view, entity_key, event_time, data) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (tenant, view, entity_key) DO UPDATE SET event_time = excluded.event_time, data = excluded.data
                WHERE excluded.event_time >= feature_rows.event_time
                """)
            var stored: [Bool] = []
            stored.reserveCapacity(rows.count)
            for row in rows {
                try statement.execute(arguments: [tenant.value, view, row.entityKey, SQLiteIdempotency.micros(row.eventTime), try Self.encode(row)])
                stored.append(db.changesCount > 0)
            }
            if let idempotency {
                try SQLiteIdempotency.store(db, tenant: tenant, key: idempotency, response: response(stored), now: now)
            }
            return .stored(stored)
        }
    }

    public func rows(tenant: TenantID, view: String, entityKeys: [String]) async throws -> [String: StoredRow] {
        guard !entityKeys.isEmpty else { return [:] }
        return try await pool.read { db in
            let statement = try db.cachedStatement(sql: "SELECT event_time, data FROM feature_rows WHERE tenant = ? AND view = ? AND entity_key = ?")
            var found: [String: StoredRow] = [:]
            for key in Set(entityKeys) {
                if let row = try Row.fetchOne(statement, arguments: [tenant.value, view, key]) {
                    found[key] = try Self.decode(key: key, micros: row["event_time"], data: row["data"])
                }
            }
            return found
        }
    }

    static func encode(_ row: StoredRow) throws -> Data {
        try Platform_Featurestore_V1_FeatureRow.with { $0.values = row.values }.serializedBytes()
    }

    static func decode(key: String, micros: Int64, data: Data) throws -> StoredRow {
        StoredRow(entityKey: key, values: try Platform_Featurestore_V1_FeatureRow(serializedBytes: data).values,
                  eventTime: Date(timeIntervalSince1970: Double(micros) / 1_000_000))
    }

    public func offset(tenant: TenantID, consumer: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT token FROM consumer_offsets WHERE tenant = ? AND consumer = ?", arguments: [tenant.value, consumer])
        }
    }

    public func saveOffset(tenant: TenantID, consumer: String, token: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO consumer_offsets (tenant, consumer, token) VALUES (?, ?, ?)", arguments: [tenant.value, consumer, token])
        }
    }

    public func pruneExpired(now: Date) async throws {
        try await pool.write { db in try SQLiteIdempotency.prune(db, retention: self.idempotencyRetention, now: now) }
    }

    public func isAvailable() async -> Bool {
        (try? await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }) == 1
    }

    public func close() async throws { try pool.close() }
}
