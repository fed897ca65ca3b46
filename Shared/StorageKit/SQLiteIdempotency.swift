import Foundation
import GRDB
import ServiceKit

/// The `idempotency_keys` table of the SQLite stores: a mutation's first
/// answer, kept for the retention period and replayed to retries.
public enum SQLiteIdempotency {
    public static let table = """
        CREATE TABLE idempotency_keys (
            tenant TEXT NOT NULL,
            method TEXT NOT NULL,
            key TEXT NOT NULL,
            request_hash BLOB NOT NULL,
            response BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (tenant, method, key)
        ) WITHOUT ROWID
        """

    public static func lookup(_ db: Database, tenant: TenantID, key: IdempotencyKey, retention: TimeInterval, now: Date) throws -> IdempotencyLookup {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT request_hash, response FROM idempotency_keys
            WHERE tenant = ? AND method = ? AND key = ? AND created_at >= ?
            """, arguments: [tenant.value, key.method, key.key, micros(now.addingTimeInterval(-retention))])
        else { return .unused }
        return (row["request_hash"] as Data) == key.requestHash ? .replay(row["response"]) : .conflict
    }

    public static func store(_ db: Database, tenant: TenantID, key: IdempotencyKey, response: Data, now: Date) throws {
        try db.execute(sql: """
            INSERT OR REPLACE INTO idempotency_keys (tenant, method, key, request_hash, response, created_at) VALUES (?, ?, ?, ?, ?, ?)
            """, arguments: [tenant.value, key.method, key.key, key.requestHash, response, micros(now)])
    }

    public static func prune(_ db: Database, retention: TimeInterval, now: Date) throws {
        try db.execute(sql: "DELETE FROM idempotency_keys WHERE created_at < ?", arguments: [micros(now.addingTimeInterval(-retention))])
    }

    /// Microseconds since 1970, the time unit of every stored timestamp.
    public static func micros(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }
}
