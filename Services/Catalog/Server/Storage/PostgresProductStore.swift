import Contracts
import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceKit
import StorageKit
import SwiftProtobuf

/// Products in PostgreSQL through postgres-nio's pooled `PostgresClient`,
/// for deployments that outgrow one machine. Same schema ideas as the SQLite
/// store: one row per product with its serialized proto, a categories table,
/// a generated `tsvector` for search, the change-feed outbox and the
/// idempotency keys, every table keyed by tenant.
public final class PostgresProductStore: ProductStore {
    private let database: PostgresStorage
    private var client: PostgresClient { database.client }
    private let logger: Logger
    private let notifier = ChangeNotifier()
    let changeRetention: TimeInterval
    let idempotencyRetention: TimeInterval

    /// - Parameter url: `postgres://user:password@host:port/database`.
    public init(url: String, logger: Logger, changeRetention: TimeInterval = 7 * 86_400, idempotencyRetention: TimeInterval = 86_400) async throws {
        database = try PostgresStorage(url: url, logger: logger)
        self.logger = logger
        self.changeRetention = changeRetention
        self.idempotencyRetention = idempotencyRetention
        try await database.migrate(table: "catalog_schema_migrations", lockID: 7101, migrations: Self.migrations)
    }

    // MARK: Schema

    /// Versioned migrations, applied in order under an advisory lock so
    /// replicas starting together do not race.
    static let migrations: [(version: Int, sql: [String])] = [
        (1, [
            """
            CREATE TABLE products (
                tenant TEXT NOT NULL,
                product_id TEXT NOT NULL,
                title TEXT NOT NULL,
                description TEXT NOT NULL,
                brand TEXT NOT NULL,
                currency TEXT NOT NULL,
                price DOUBLE PRECISION NOT NULL,
                availability INTEGER NOT NULL,
                create_time BIGINT NOT NULL,
                update_time BIGINT NOT NULL,
                version BIGINT NOT NULL,
                data BYTEA NOT NULL,
                search tsvector GENERATED ALWAYS AS (
                    setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', brand), 'B')
                    || setweight(to_tsvector('english', description), 'C')) STORED,
                PRIMARY KEY (tenant, product_id)
            )
            """,
            "CREATE INDEX products_by_title ON products (tenant, title, product_id)",
            "CREATE INDEX products_by_price ON products (tenant, price, product_id)",
            "CREATE INDEX products_by_create_time ON products (tenant, create_time, product_id)",
            "CREATE INDEX products_by_update_time ON products (tenant, update_time, product_id)",
            "CREATE INDEX products_search ON products USING GIN (search)",
            "CREATE TABLE product_categories (tenant TEXT NOT NULL, category TEXT NOT NULL, product_id TEXT NOT NULL, PRIMARY KEY (tenant, category, product_id))",
            """
            CREATE TABLE product_changes (
                sequence BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, product_id TEXT NOT NULL,
                change_type INTEGER NOT NULL, data BYTEA, change_time BIGINT NOT NULL)
            """,
            "CREATE INDEX product_changes_by_tenant ON product_changes (tenant, sequence)",
            """
            CREATE TABLE idempotency_keys (
                tenant TEXT NOT NULL, method TEXT NOT NULL, key TEXT NOT NULL,
                request_hash BYTEA NOT NULL, response BYTEA NOT NULL, created_at BIGINT NOT NULL,
                PRIMARY KEY (tenant, method, key))
            """,
        ]),
    ]

    // MARK: Reads

    public func products(tenant: TenantID, ids: [String]) async throws -> [String: Product] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await client.query("SELECT data FROM products WHERE tenant = \(tenant.value) AND product_id = ANY(\(ids))", logger: logger)
        var found: [String: Product] = [:]
        for try await data in rows.decode(Data.self) {
            let product = try Product(serializedBytes: data)
            found[product.productID] = product
        }
        return found
    }

    public func list(tenant: TenantID, query: ProductQuery, after cursor: PageCursor?, limit: Int) async throws -> (products: [Product], total: Int) {
        var counter = Placeholders()
        var (conditions, values) = ProductSQL.filterConditions(query.filter) { counter.next() }
        // Binds follow placeholder numbers: the filter's first, then the tenant.
        conditions.insert("p.tenant = \(counter.next())", at: 0)
        values.append(.text(tenant.value))
        var totalQuery = PostgresQuery(unsafeSQL: "SELECT COUNT(*) FROM products p WHERE \(conditions.joined(separator: " AND "))")
        totalQuery.binds = Self.bindings(values)
        var total = 0
        for try await count in try await client.query(totalQuery, logger: logger).decode(Int.self) { total = count }
        if let cursor {
            let keyset = ProductSQL.cursorCondition(cursor, order: query.order) { counter.next() }
            conditions.append(keyset.condition)
            values += keyset.values
        }
        let limitPlaceholder = counter.next()
        values.append(.integer(Int64(limit)))
        var pageQuery = PostgresQuery(unsafeSQL: """
            SELECT data FROM products p WHERE \(conditions.joined(separator: " AND "))
            ORDER BY \(ProductSQL.orderClause(query.order).replacingOccurrences(of: "p.title", with: "p.title COLLATE \"C\"")) LIMIT \(limitPlaceholder)
            """)
        pageQuery.binds = Self.bindings(values)
        var products: [Product] = []
        for try await data in try await client.query(pageQuery, logger: logger).decode(Data.self) {
            products.append(try Product(serializedBytes: data))
        }
        return (products, total)
    }

    public func search(tenant: TenantID, text: String, filter: ProductFilter, after cursor: PageCursor?, limit: Int) async throws -> [(product: Product, relevance: Double)] {
        let terms = text.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map { "\($0):*" }
        guard !terms.isEmpty else { return [] }
        var counter = Placeholders()
        let match = counter.next()
        var (conditions, values) = ProductSQL.filterConditions(filter) { counter.next() }
        values.insert(.text(terms.joined(separator: " & ")), at: 0)
        conditions.insert("p.tenant = \(counter.next())", at: 0)
        values.append(.text(tenant.value))
        var outer = ""
        if let cursor, let score = Double(cursor.value) {
            // Scores are negated ts_rank so lower is better, as with bm25.
            let (a, b, c) = (counter.next(), counter.next(), counter.next())
            outer = "WHERE score > \(a) OR (score = \(b) AND product_id > \(c))"
            values += [.real(score), .real(score), .text(cursor.id)]
        }
        let limitPlaceholder = counter.next()
        values.append(.integer(Int64(limit)))
        var query = PostgresQuery(unsafeSQL: """
            SELECT data, score FROM (
                SELECT p.data AS data, p.product_id AS product_id,
                       -ts_rank(p.search, to_tsquery('english', \(match)))::float8 AS score
                FROM products p
                WHERE p.search @@ to_tsquery('english', \(match)) AND \(conditions.joined(separator: " AND "))
            ) hits \(outer)
            ORDER BY score, product_id LIMIT \(limitPlaceholder)
            """)
        query.binds = Self.bindings(values)
        var hits: [(Product, Double)] = []
        for try await (data, score) in try await client.query(query, logger: logger).decode((Data, Double).self) {
            hits.append((try Product(serializedBytes: data), score))
        }
        return hits
    }

    // MARK: Writes

    public func modify(
        tenant: TenantID, productID: String, idempotency: IdempotencyKey?,
        decide: @Sendable (Product?) throws -> ProductWrite
    ) async throws -> ModifyOutcome {
        let now = Date()
        let logger = self.logger
        let retention = idempotencyRetention
        let (outcome, wrote) = try await database.inTransaction { connection -> (ModifyOutcome, Bool) in
            if let idempotency {
                // Serializes retries of the same key.
                try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(tenant.value + "|" + idempotency.method + "|" + idempotency.key)))", logger: logger)
                switch try await PostgresStorage.idempotencyLookup(connection, tenant: tenant, key: idempotency, retention: retention, now: now, logger: logger) {
                case .replay(let data): return (.replayed(data), false)
                case .conflict: throw StoreError.idempotencyConflict
                case .unused: break
                }
            }
            var current: Product?
            for try await data in try await connection.query(
                "SELECT data FROM products WHERE tenant = \(tenant.value) AND product_id = \(productID) FOR UPDATE", logger: logger
            ).decode(Data.self) {
                current = try Product(serializedBytes: data)
            }
            var result: Product?
            var wrote = false
            switch try decide(current) {
            case .none(let product):
                result = product
            case .save(var product):
                product.productID = productID
                try await Self.save(&product, previous: current, tenant: tenant, now: now, connection: connection, logger: logger)
                result = product
                wrote = true
            case .delete:
                if current != nil {
                    try await connection.query("DELETE FROM products WHERE tenant = \(tenant.value) AND product_id = \(productID)", logger: logger)
                    try await connection.query("DELETE FROM product_categories WHERE tenant = \(tenant.value) AND product_id = \(productID)", logger: logger)
                    try await Self.recordChange(connection, tenant: tenant, productID: productID, type: .deleted, product: nil, now: now, logger: logger)
                    wrote = true
                }
            }
            if let idempotency {
                let response: Data = try result?.serializedBytes() ?? Data()
                try await PostgresStorage.storeIdempotent(connection, tenant: tenant, key: idempotency, response: response, now: now, logger: logger)
            }
            return (.applied(result), wrote)
        }
        if wrote { notifier.notify() }
        return outcome
    }

    public func upsertAll(tenant: TenantID, products: [Product]) async throws -> [Bool] {
        guard !products.isEmpty else { return [] }
        let now = Date()
        let logger = self.logger
        let created = try await database.inTransaction { connection -> [Bool] in
            var created: [Bool] = []
            for incoming in products {
                var product = incoming
                var current: Product?
                for try await data in try await connection.query(
                    "SELECT data FROM products WHERE tenant = \(tenant.value) AND product_id = \(product.productID) FOR UPDATE", logger: logger
                ).decode(Data.self) {
                    current = try Product(serializedBytes: data)
                }
                try await Self.save(&product, previous: current, tenant: tenant, now: now, connection: connection, logger: logger)
                created.append(current == nil)
            }
            return created
        }
        notifier.notify()
        return created
    }

    private static func save(_ product: inout Product, previous: Product?, tenant: TenantID, now: Date,
                             connection: PostgresConnection, logger: Logger) async throws {
        let version = (previous.map { ProductSQL.version(ofEtag: $0.etag) } ?? 0) + 1
        product.createTime = previous?.createTime ?? Google_Protobuf_Timestamp(date: now)
        product.updateTime = Google_Protobuf_Timestamp(date: now)
        product.etag = "\"v\(version)\""
        let data: Data = try product.serializedBytes()
        let createTime = ProductSQL.micros(product.createTime), updateTime = ProductSQL.micros(product.updateTime)
        let availability = Int(product.availability.rawValue)
        try await connection.query("""
            INSERT INTO products (tenant, product_id, title, description, brand, currency, price, availability, create_time, update_time, version, data)
            VALUES (\(tenant.value), \(product.productID), \(product.title), \(product.description_p), \(product.brand),
                    \(product.price.currencyCode), \(ProductSQL.price(of: product)), \(availability), \(createTime), \(updateTime), \(version), \(data))
            ON CONFLICT (tenant, product_id) DO UPDATE SET
                title = excluded.title, description = excluded.description, brand = excluded.brand,
                currency = excluded.currency, price = excluded.price, availability = excluded.availability,
                update_time = excluded.update_time, version = excluded.version, data = excluded.data
            """, logger: logger)
        if previous?.categories != product.categories {
            try await connection.query("DELETE FROM product_categories WHERE tenant = \(tenant.value) AND product_id = \(product.productID)", logger: logger)
            for category in Set(product.categories) {
                try await connection.query(
                    "INSERT INTO product_categories (tenant, category, product_id) VALUES (\(tenant.value), \(category), \(product.productID))", logger: logger)
            }
        }
        try await recordChange(connection, tenant: tenant, productID: product.productID, type: previous == nil ? .created : .updated,
                               product: product, now: now, logger: logger)
    }

    private static func recordChange(_ connection: PostgresConnection, tenant: TenantID, productID: String,
                                     type: Platform_Catalog_V1_ProductChange.ChangeType, product: Product?, now: Date, logger: Logger) async throws {
        let data: Data? = try product?.serializedBytes()
        let time = Int64(now.timeIntervalSince1970 * 1_000_000)
        try await connection.query("""
            INSERT INTO product_changes (tenant, product_id, change_type, data, change_time)
            VALUES (\(tenant.value), \(productID), \(type.rawValue), \(data), \(time))
            """, logger: logger)
    }

    // MARK: Change feed

    public func changes(tenant: TenantID, after sequence: Int64, limit: Int) async throws -> [ProductChangeRecord] {
        let rows = try await client.query("""
            SELECT sequence, product_id, change_type, data, change_time FROM product_changes
            WHERE tenant = \(tenant.value) AND sequence > \(sequence) ORDER BY sequence LIMIT \(limit)
            """, logger: logger)
        var records: [ProductChangeRecord] = []
        for try await (sequence, productID, type, data, time) in rows.decode((Int64, String, Int, Data?, Int64).self) {
            records.append(ProductChangeRecord(
                sequence: sequence, productID: productID, type: .init(rawValue: type) ?? .unspecified,
                product: try data.map { try Product(serializedBytes: $0) },
                time: Date(timeIntervalSince1970: Double(time) / 1_000_000)))
        }
        return records
    }

    public func changeBounds(tenant: TenantID) async throws -> (oldest: Int64, newest: Int64) {
        let rows = try await client.query("SELECT MIN(sequence), MAX(sequence) FROM product_changes WHERE tenant = \(tenant.value)", logger: logger)
        for try await (oldest, newest) in rows.decode((Int64?, Int64?).self) {
            let newestValue = newest ?? 0
            return (oldest ?? newestValue + 1, newestValue)
        }
        return (1, 0)
    }

    public func changeNotifications() -> AsyncStream<Void> {
        notifier.subscribe()
    }

    public func pruneExpired(now: Date = Date()) async throws {
        let changesBefore = Int64((now.timeIntervalSince1970 - changeRetention) * 1_000_000)
        let keysBefore = Int64((now.timeIntervalSince1970 - idempotencyRetention) * 1_000_000)
        try await client.query("DELETE FROM product_changes WHERE change_time < \(changesBefore)", logger: logger)
        try await client.query("DELETE FROM idempotency_keys WHERE created_at < \(keysBefore)", logger: logger)
    }

    // MARK: Idempotency

    public func idempotentResponse(tenant: TenantID, key: IdempotencyKey) async throws -> IdempotencyLookup {
        let logger = self.logger
        let retention = idempotencyRetention
        return try await client.withConnection { connection in
            try await PostgresStorage.idempotencyLookup(connection, tenant: tenant, key: key, retention: retention, now: Date(), logger: logger)
        }
    }

    public func saveIdempotentResponse(tenant: TenantID, key: IdempotencyKey, response: Data) async throws {
        let logger = self.logger
        try await client.withConnection { connection in
            try await PostgresStorage.storeIdempotent(connection, tenant: tenant, key: key, response: response, now: Date(), logger: logger)
        }
    }

    // MARK: Helpers

    public func isAvailable() async -> Bool {
        await database.isAvailable()
    }

    public func close() async throws {
        database.close()
    }

    private static func bindings(_ values: [ProductSQL.Value]) -> PostgresBindings {
        var bindings = PostgresBindings()
        for value in values {
            switch value {
            case .text(let text): bindings.append(text)
            case .real(let real): bindings.append(real)
            case .integer(let integer): bindings.append(integer)
            }
        }
        return bindings
    }
}

/// `$1`, `$2`, ... in order.
struct Placeholders {
    private var count = 0
    mutating func next() -> String {
        count += 1
        return "$\(count)"
    }
}
