import Contracts
import Foundation
import Logging
import PostgresNIO
import ServiceKit
import StorageKit
import SwiftProtobuf

/// Definitions and rows in PostgreSQL, for deployments with several
/// replicas or more rows than one file should hold. Same layout as the
/// SQLite storage. Registry writes lock the tenant's registry rows so
/// concurrent applies on different replicas serialize.
public final class PostgresFeatureStorage: FeatureStorage {
    private let database: PostgresStorage
    private var client: PostgresClient { database.client }
    private let logger: Logger
    let idempotencyRetention: TimeInterval

    public init(url: String, logger: Logger, idempotencyRetention: TimeInterval = 86_400) async throws {
        database = try PostgresStorage(url: url, logger: logger)
        self.logger = logger
        self.idempotencyRetention = idempotencyRetention
        try await database.migrate(table: "feature_store_schema_migrations", lockID: 7102, migrations: [
            (1, [
                "CREATE TABLE feature_views (tenant TEXT NOT NULL, name TEXT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (tenant, name))",
                "CREATE TABLE feature_services (tenant TEXT NOT NULL, name TEXT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (tenant, name))",
                """
                CREATE TABLE feature_rows (
                    tenant TEXT NOT NULL, view TEXT NOT NULL, entity_key TEXT NOT NULL, event_time BIGINT NOT NULL, data BYTEA NOT NULL,
                    PRIMARY KEY (tenant, view, entity_key))
                """,
                PostgresStorage.idempotencyTable,
            ]),
            (2, ["CREATE TABLE consumer_offsets (tenant TEXT NOT NULL, consumer TEXT NOT NULL, token TEXT NOT NULL, PRIMARY KEY (tenant, consumer))"]),
        ])
    }

    public func registry(tenant: TenantID) async throws -> (views: [FeatureView], services: [FeatureService]) {
        var views: [FeatureView] = [], services: [FeatureService] = []
        for try await data in try await client.query("SELECT data FROM feature_views WHERE tenant = \(tenant.value) ORDER BY name", logger: logger).decode(Data.self) {
            views.append(try FeatureView(serializedBytes: data))
        }
        for try await data in try await client.query("SELECT data FROM feature_services WHERE tenant = \(tenant.value) ORDER BY name", logger: logger).decode(Data.self) {
            services.append(try FeatureService(serializedBytes: data))
        }
        return (views, services)
    }

    public func modifyRegistry(tenant: TenantID, idempotency: IdempotencyKey?,
                               decide: @Sendable ([String: FeatureView], [String: FeatureService]) throws -> RegistryWrite) async throws -> RegistryOutcome {
        let now = Date()
        let logger = self.logger
        let retention = idempotencyRetention
        return try await database.inTransaction { connection in
            // One writer per tenant registry at a time.
            try await connection.query("SELECT pg_advisory_xact_lock(7102, hashtext(\(tenant.value)))", logger: logger)
            if let idempotency {
                switch try await PostgresStorage.idempotencyLookup(connection, tenant: tenant, key: idempotency, retention: retention, now: now, logger: logger) {
                case .replay(let data): return .answered(data)
                case .conflict: throw FeatureStorageError.idempotencyConflict
                case .unused: break
                }
            }
            var views: [String: FeatureView] = [:], services: [String: FeatureService] = [:]
            for try await data in try await connection.query("SELECT data FROM feature_views WHERE tenant = \(tenant.value)", logger: logger).decode(Data.self) {
                let view = try FeatureView(serializedBytes: data)
                views[view.name] = view
            }
            for try await data in try await connection.query("SELECT data FROM feature_services WHERE tenant = \(tenant.value)", logger: logger).decode(Data.self) {
                let service = try FeatureService(serializedBytes: data)
                services[service.name] = service
            }
            let response: Data
            switch try decide(views, services) {
            case .saveView(let view, let answer):
                let data: Data = try view.serializedBytes()
                try await connection.query("""
                    INSERT INTO feature_views (tenant, name, data) VALUES (\(tenant.value), \(view.name), \(data))
                    ON CONFLICT (tenant, name) DO UPDATE SET data = excluded.data
                    """, logger: logger)
                response = answer
            case .deleteView(let name, let answer):
                try await connection.query("DELETE FROM feature_views WHERE tenant = \(tenant.value) AND name = \(name)", logger: logger)
                try await connection.query("DELETE FROM feature_rows WHERE tenant = \(tenant.value) AND view = \(name)", logger: logger)
                response = answer
            case .saveService(let service, let answer):
                let data: Data = try service.serializedBytes()
                try await connection.query("""
                    INSERT INTO feature_services (tenant, name, data) VALUES (\(tenant.value), \(service.name), \(data))
                    ON CONFLICT (tenant, name) DO UPDATE SET data = excluded.data
                    """, logger: logger)
                response = answer
            case .none(let answer):
                response = answer
            }
            if let idempotency {
                try await PostgresStorage.storeIdempotent(connection, tenant: tenant, key: idempotency, response: response, now: now, logger: logger)
            }
            return .answered(response)
        }
    }

    public func write(tenant: TenantID, view: String, rows: [StoredRow], idempotency: IdempotencyKey?,
                      response: @Sendable ([Bool]) -> Data) async throws -> WriteOutcome {
        let now = Date()
        let logger = self.logger
        let retention = idempotencyRetention
        let encoded = try rows.map { try SQLiteFeatureStorage.encode($0) }
        return try await database.inTransaction { connection in
            if let idempotency {
                switch try await PostgresStorage.idempotencyLookup(connection, tenant: tenant, key: idempotency, retention: retention, now: now, logger: logger) {
                case .replay(let data): return .replayed(data)
                case .conflict: throw FeatureStorageError.idempotencyConflict
                case .unused: break
                }
            }
            var stored: [Bool] = []
            stored.reserveCapacity(rows.count)
            // Row by row, in request order: rows for one entity in one batch
            // must each meet the stored row as the one before left it.
            for (row, data) in zip(rows, encoded) {
                var wrote = false
                for try await _ in try await connection.query("""
                    INSERT INTO feature_rows (tenant, view, entity_key, event_time, data)
                    VALUES (\(tenant.value), \(view), \(row.entityKey), \(SQLiteIdempotency.micros(row.eventTime)), \(data))
                    ON CONFLICT (tenant, view, entity_key) DO UPDATE SET event_time = excluded.event_time, data = excluded.data
                    WHERE excluded.event_time >= feature_rows.event_time
                    RETURNING 1
                    """, logger: logger) { wrote = true }
                stored.append(wrote)
            }
            if let idempotency {
                try await PostgresStorage.storeIdempotent(connection, tenant: tenant, key: idempotency, response: response(stored), now: now, logger: logger)
            }
            return .stored(stored)
        }
    }

    public func rows(tenant: TenantID, view: String, entityKeys: [String]) async throws -> [String: StoredRow] {
        guard !entityKeys.isEmpty else { return [:] }
        let keys = Array(Set(entityKeys))
        var found: [String: StoredRow] = [:]
        for try await (key, micros, data) in try await client.query("""
            SELECT entity_key, event_time, data FROM feature_rows WHERE tenant = \(tenant.value) AND view = \(view) AND entity_key = ANY(\(keys))
            """, logger: logger).decode((String, Int64, Data).self) {
            found[key] = try SQLiteFeatureStorage.decode(key: key, micros: micros, data: data)
        }
        return found
    }

    public func offset(tenant: TenantID, consumer: String) async throws -> String? {
        for try await token in try await client.query(
            "SELECT token FROM consumer_offsets WHERE tenant = \(tenant.value) AND consumer = \(consumer)", logger: logger).decode(String.self) {
            return token
        }
        return nil
    }

    public func saveOffset(tenant: TenantID, consumer: String, token: String) async throws {
        try await client.query("""
            INSERT INTO consumer_offsets (tenant, consumer, token) VALUES (\(tenant.value), \(consumer), \(token))
            ON CONFLICT (tenant, consumer) DO UPDATE SET token = excluded.token
            """, logger: logger)
    }

    public func pruneExpired(now: Date) async throws {
        try await database.pruneIdempotencyKeys(olderThan: idempotencyRetention, now: now)
    }

    public func isAvailable() async -> Bool { await database.isAvailable() }

    public func close() async throws { database.close() }
}
