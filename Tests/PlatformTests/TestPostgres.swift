import Foundation
import Logging
import PostgresNIO

/// The throwaway PostgreSQL cluster `scripts/with-test-postgres.sh` starts.
/// Each test gets its own database, so tests never see each other's rows.
/// Without the cluster, PostgreSQL tests fail with instructions (they are
/// never skipped silently).
enum TestPostgres {
    struct Unavailable: Error, CustomStringConvertible {
        var description: String {
            "MERIDIAN_TEST_POSTGRES_URL is not set: run the tests through scripts/test.sh, or scripts/with-test-postgres.sh swift test"
        }
    }

    static func createDatabase() async throws -> String {
        guard let admin = ProcessInfo.processInfo.environment["MERIDIAN_TEST_POSTGRES_URL"],
              var components = URLComponents(string: admin), let host = components.host, let user = components.user
        else { throw Unavailable() }
        let name = "catalog_test_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
        let configuration = PostgresConnection.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: components.password,
            database: "postgres", tls: .disable)
        let logger = Logger(label: "test-postgres")
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        try await connection.close()
        components.path = "/\(name)"
        return components.string!
    }
}
