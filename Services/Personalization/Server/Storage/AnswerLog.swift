import Foundation
import GRDB
import ServiceKit
import StorageKit

/// The first answer to each idempotency key, kept 24 hours in SQLite so a
/// retried Recommend or RankItems (even after a restart) gets the same
/// recommendation id, and the same exposures are not logged twice.
final class AnswerLog: Sendable {
    static let retention: TimeInterval = 24 * 3600
    private let pool: DatabasePool

    init(path: String) throws {
        pool = try SQLiteStorage.openPool(path: path, durability: .processCrash)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: idempotency") { db in try db.execute(sql: SQLiteIdempotency.table) }
        try migrator.migrate(pool)
    }

    func lookup(_ key: IdempotencyKey, tenant: TenantID) async throws -> IdempotencyLookup {
        try await pool.read { db in try SQLiteIdempotency.lookup(db, tenant: tenant, key: key, retention: Self.retention, now: Date()) }
    }

    func store(_ answer: Data, for key: IdempotencyKey, tenant: TenantID) async throws {
        try await pool.write { db in try SQLiteIdempotency.store(db, tenant: tenant, key: key, response: answer, now: Date()) }
    }

    func prune() async throws {
        try await pool.write { db in try SQLiteIdempotency.prune(db, retention: Self.retention, now: Date()) }
    }

    func close() throws { try pool.close() }
}
