import Foundation
import Logging
import PostgresNIO
import ServiceKit

/// A service's PostgreSQL database: a pooled `PostgresClient` running for the
/// store's lifetime, versioned migrations, and transactions that rethrow the
/// closure's own error.
public final class PostgresStorage: Sendable {
    public let client: PostgresClient
    public let logger: Logger
    private let runner: Task<Void, Never>

    public enum ConfigurationError: Error, CustomStringConvertible {
        case invalidURL(String)
        public var description: String {
            switch self {
            case .invalidURL(let url): "database URL \(url) is not postgres://user[:password]@host[:port]/database"
            }
        }
    }

    /// - Parameter url: `postgres://user:password@host:port/database`.
    public init(url: String, logger: Logger, maximumConnections: Int = 16) throws {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? ""),
              let host = components.host, let user = components.user
        else {
            throw ConfigurationError.invalidURL(url)
        }
        let database = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: components.password,
            database: database.isEmpty ? nil : database, tls: .disable)
        configuration.options.maximumConnections = maximumConnections
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        runner = Task { await client.run() }
    }

    /// Applies the migrations not yet recorded in `table`, in order, under an
    /// advisory lock so replicas starting together do not race.
    public func migrate(table: String, lockID: Int64, migrations: [(version: Int, sql: [String])]) async throws {
        let logger = self.logger
        try await inTransaction { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockID))", logger: logger)
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE TABLE IF NOT EXISTS \(table) (version INTEGER PRIMARY KEY)"), logger: logger)
            var applied = Set<Int>()
            for try await version in try await connection.query(PostgresQuery(unsafeSQL: "SELECT version FROM \(table)"), logger: logger).decode(Int.self) {
                applied.insert(version)
            }
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.sql {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(PostgresQuery(unsafeSQL: "INSERT INTO \(table) (version) VALUES (\(migration.version))"), logger: logger)
            }
        }
    }

    /// Runs `body` in a transaction. postgres-nio wraps what the closure
    /// throws; callers get the original (an RPCError or a store error
    /// chooses the status).
    public func inTransaction<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        do {
            return try await client.withTransaction(logger: logger) { connection in try await body(connection) }
        } catch let error as PostgresTransactionError {
            throw error.closureError ?? error.beginError ?? error.commitError ?? error
        }
    }

    public func isAvailable() async -> Bool {
        (try? await client.query("SELECT 1", logger: logger)) != nil
    }

    public func close() {
        runner.cancel()
    }

    // MARK: Idempotency keys

    /// The `idempotency_keys` table both services keep.
    public static let idempotencyTable = """
        CREATE TABLE idempotency_keys (
            tenant TEXT NOT NULL, method TEXT NOT NULL, key TEXT NOT NULL,
            request_hash BYTEA NOT NULL, response BYTEA NOT NULL, created_at BIGINT NOT NULL,
            PRIMARY KEY (tenant, method, key))
        """

    public static func idempotencyLookup(_ connection: PostgresConnection, tenant: TenantID, key: IdempotencyKey, retention: TimeInterval,
                                         now: Date, logger: Logger) async throws -> IdempotencyLookup {
        let since = Int64((now.timeIntervalSince1970 - retention) * 1_000_000)
        for try await (hash, response) in try await connection.query("""
            SELECT request_hash, response FROM idempotency_keys
            WHERE tenant = \(tenant.value) AND method = \(key.method) AND key = \(key.key) AND created_at >= \(since)
            """, logger: logger).decode((Data, Data).self) {
            return hash == key.requestHash ? .replay(response) : .conflict
        }
        return .unused
    }

    public static func storeIdempotent(_ connection: PostgresConnection, tenant: TenantID, key: IdempotencyKey, response: Data,
                                       now: Date, logger: Logger) async throws {
        let time = Int64(now.timeIntervalSince1970 * 1_000_000)
        try await connection.query("""
            INSERT INTO idempotency_keys (tenant, method, key, request_hash, response, created_at)
            VALUES (\(tenant.value), \(key.method), \(key.key), \(key.requestHash), \(response), \(time))
            ON CONFLICT (tenant, method, key) DO UPDATE SET request_hash = excluded.request_hash,
                response = excluded.response, created_at = excluded.created_at
            """, logger: logger)
    }

    public func pruneIdempotencyKeys(olderThan retention: TimeInterval, now: Date) async throws {
        let before = Int64((now.timeIntervalSince1970 - retention) * 1_000_000)
        try await client.query("DELETE FROM idempotency_keys WHERE created_at < \(before)", logger: logger)
    }
}
