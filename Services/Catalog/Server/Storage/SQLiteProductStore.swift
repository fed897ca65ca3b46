import Contracts
import Foundation
import GRDB
import Logging
import ServiceKit
import StorageKit
import SwiftProtobuf
import Synchronization

/// Products in SQLite through GRDB: one file under the data directory, WAL
/// mode with a pool of readers, schema migrated on open. Full-text search
/// uses FTS5; the change feed is an outbox table written in the same
/// transaction as each change.
public final class SQLiteProductStore: ProductStore {
    private let pool: DatabasePool
    private let notifier = ChangeNotifier()
    /// How long change-feed entries and idempotency keys are kept.
    let changeRetention: TimeInterval
    let idempotencyRetention: TimeInterval

    public init(path: String, changeRetention: TimeInterval = 7 * 86_400, idempotencyRetention: TimeInterval = 86_400) throws {
        pool = try SQLiteStorage.openPool(path: path, durability: .processCrash)
        self.changeRetention = changeRetention
        self.idempotencyRetention = idempotencyRetention
        try Self.migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: products, categories, search, change feed, idempotency") { db in
            try db.execute(sql: """
                CREATE TABLE products (
                    id INTEGER PRIMARY KEY,
                    tenant TEXT NOT NULL,
                    product_id TEXT NOT NULL,
                    title TEXT NOT NULL,
                    description TEXT NOT NULL,
                    brand TEXT NOT NULL,
                    currency TEXT NOT NULL,
                    price REAL NOT NULL,
                    availability INTEGER NOT NULL,
                    create_time INTEGER NOT NULL,
                    update_time INTEGER NOT NULL,
                    version INTEGER NOT NULL,
                    data BLOB NOT NULL,
                    UNIQUE (tenant, product_id)
                );
                CREATE INDEX products_by_title ON products (tenant, title, product_id);
                CREATE INDEX products_by_price ON products (tenant, price, product_id);
                CREATE INDEX products_by_create_time ON products (tenant, create_time, product_id);
                CREATE INDEX products_by_update_time ON products (tenant, update_time, product_id);
                CREATE TABLE product_categories (
                    tenant TEXT NOT NULL,
                    category TEXT NOT NULL,
                    product_id TEXT NOT NULL,
                    PRIMARY KEY (tenant, category, product_id)
                ) WITHOUT ROWID;
                CREATE VIRTUAL TABLE products_search USING fts5(
                    title, description, brand, content='products', content_rowid='id', tokenize='porter unicode61');
                CREATE TRIGGER products_search_insert AFTER INSERT ON products BEGIN
                    INSERT INTO products_search(rowid, title, description, brand) VALUES (new.id, new.title, new.description, new.brand);
                END;
                CREATE TRIGGER products_search_delete AFTER DELETE ON products BEGIN
                    INSERT INTO products_search(products_search, rowid, title, description, brand) VALUES ('delete', old.id, old.title, old.description, old.brand);
                END;
                CREATE TRIGGER products_search_update AFTER UPDATE ON products BEGIN
                    INSERT INTO products_search(products_search, rowid, title, description, brand) VALUES ('delete', old.id, old.title, old.description, old.brand);
                    INSERT INTO products_search(rowid, title, description, brand) VALUES (new.id, new.title, new.description, new.brand);
                END;
                CREATE TABLE product_changes (
                    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                    tenant TEXT NOT NULL,
                    product_id TEXT NOT NULL,
                    change_type INTEGER NOT NULL,
                    data BLOB,
                    change_time INTEGER NOT NULL
                );
                CREATE INDEX product_changes_by_tenant ON product_changes (tenant, sequence);
                CREATE TABLE idempotency_keys (
                    tenant TEXT NOT NULL,
                    method TEXT NOT NULL,
                    key TEXT NOT NULL,
                    request_hash BLOB NOT NULL,
                    response BLOB NOT NULL,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (tenant, method, key)
                ) WITHOUT ROWID;
                """)
        }
        return migrator
    }

    // MARK: Reads

    public func products(tenant: TenantID, ids: [String]) async throws -> [String: Product] {
        guard !ids.isEmpty else { return [:] }
        return try await pool.read { db in
            var found: [String: Product] = [:]
            // Chunks stay under SQLite's bound-parameter limit.
            for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) {
                let placeholders = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                let rows = try Row.fetchAll(db, sql: "SELECT data FROM products WHERE tenant = ? AND product_id IN (\(placeholders))",
                                            arguments: StatementArguments([tenant.value] + chunk))
                for row in rows {
                    let product = try Product(serializedBytes: row["data"] as Data)
                    found[product.productID] = product
                }
            }
            return found
        }
    }

    public func list(tenant: TenantID, query: ProductQuery, after cursor: PageCursor?, limit: Int) async throws -> (products: [Product], total: Int) {
        try await pool.read { db in
            var (conditions, values) = ProductSQL.filterConditions(query.filter) { "?" }
            conditions.insert("p.tenant = ?", at: 0)
            values.insert(.text(tenant.value), at: 0)
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM products p WHERE \(conditions.joined(separator: " AND "))",
                                         arguments: Self.arguments(values)) ?? 0
            if let cursor {
                let keyset = ProductSQL.cursorCondition(cursor, order: query.order) { "?" }
                conditions.append(keyset.condition)
                values += keyset.values
            }
            values.append(.integer(Int64(limit)))
            let rows = try Row.fetchAll(
                db, sql: "SELECT data FROM products p WHERE \(conditions.joined(separator: " AND ")) ORDER BY \(ProductSQL.orderClause(query.order)) LIMIT ?",
                arguments: Self.arguments(values))
            return (try rows.map { try Product(serializedBytes: $0["data"] as Data) }, total)
        }
    }

    public func search(tenant: TenantID, text: String, filter: ProductFilter, after cursor: PageCursor?, limit: Int) async throws -> [(product: Product, relevance: Double)] {
        // Every word must appear (as a prefix); bm25 ranks title matches highest.
        let terms = text.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map { "\"\($0.replacingOccurrences(of: "\"", with: ""))\"*" }
        guard !terms.isEmpty else { return [] }
        let match = terms.joined(separator: " ")
        return try await pool.read { db in
            var (conditions, values) = ProductSQL.filterConditions(filter) { "?" }
            conditions.insert("p.tenant = ?", at: 0)
            var arguments: [any DatabaseValueConvertible] = [match, tenant.value] + values.map(Self.databaseValue)
            var outer = ""
            if let cursor, let score = Double(cursor.value) {
                // Lower bm25 is better; ties broken by product_id.
                outer = "WHERE score > ? OR (score = ? AND product_id > ?)"
                arguments += [score, score, cursor.id]
            }
            arguments.append(limit)
            let rows = try Row.fetchAll(db, sql: """
                SELECT data, score, product_id FROM (
                    SELECT p.data AS data, p.product_id AS product_id, bm25(products_search, 10.0, 1.0, 3.0) AS score
                    FROM products_search JOIN products p ON p.id = products_search.rowid
                    WHERE products_search MATCH ? AND \(conditions.joined(separator: " AND "))
                ) \(outer)
                ORDER BY score, product_id LIMIT ?
                """, arguments: StatementArguments(arguments))
            return try rows.map { row in
                (try Product(serializedBytes: row["data"] as Data), row["score"] as Double)
            }
        }
    }

    // MARK: Writes

    public func modify(
        tenant: TenantID, productID: String, idempotency: IdempotencyKey?,
        decide: @Sendable (Product?) throws -> ProductWrite
    ) async throws -> ModifyOutcome {
        let now = Date()
        let outcome = try await pool.write { db -> (ModifyOutcome, Bool) in
            if let idempotency {
                switch try SQLiteIdempotency.lookup(db, tenant: tenant, key: idempotency, retention: self.idempotencyRetention, now: now) {
                case .replay(let data): return (.replayed(data), false)
                case .conflict: throw StoreError.idempotencyConflict
                case .unused: break
                }
            }
            let current = try Row.fetchOne(db, sql: "SELECT data FROM products WHERE tenant = ? AND product_id = ?",
                                           arguments: [tenant.value, productID])
                .map { try Product(serializedBytes: $0["data"] as Data) }
            let result: Product?
            var wrote = false
            switch try decide(current) {
            case .none(let product):
                result = product
            case .save(var product):
                product.productID = productID
                try Self.save(&product, previous: current, tenant: tenant, now: now, db: db)
                result = product
                wrote = true
            case .delete:
                if current != nil {
                    try db.execute(sql: "DELETE FROM products WHERE tenant = ? AND product_id = ?", arguments: [tenant.value, productID])
                    try db.execute(sql: "DELETE FROM product_categories WHERE tenant = ? AND product_id = ?", arguments: [tenant.value, productID])
                    try Self.recordChange(db, tenant: tenant, productID: productID, type: .deleted, product: nil, now: now)
                    wrote = true
                }
                result = nil
            }
            if let idempotency {
                let response: Data = try result?.serializedBytes() ?? Data()
                try SQLiteIdempotency.store(db, tenant: tenant, key: idempotency, response: response, now: now)
            }
            return (.applied(result), wrote)
        }
        if outcome.1 { notifier.notify() }
        return outcome.0
    }

    public func upsertAll(tenant: TenantID, products: [Product]) async throws -> [Bool] {
        guard !products.isEmpty else { return [] }
        let now = Date()
        let created = try await pool.write { db in
            try products.map { incoming -> Bool in
                var product = incoming
                let current = try Row.fetchOne(db, sql: "SELECT data FROM products WHERE tenant = ? AND product_id = ?",
                                               arguments: [tenant.value, product.productID])
                    .map { try Product(serializedBytes: $0["data"] as Data) }
                try Self.save(&product, previous: current, tenant: tenant, now: now, db: db)
                return current == nil
            }
        }
        notifier.notify()
        return created
    }

    /// Writes a product row, its categories, and its change-feed entry;
    /// sets the output-only fields on `product`.
    private static func save(_ product: inout Product, previous: Product?, tenant: TenantID, now: Date, db: Database) throws {
        let version = (previous.map { ProductSQL.version(ofEtag: $0.etag) } ?? 0) + 1
        product.createTime = previous?.createTime ?? Google_Protobuf_Timestamp(date: now)
        product.updateTime = Google_Protobuf_Timestamp(date: now)
        product.etag = "\"v\(version)\""
        let data: Data = try product.serializedBytes()
        let price = ProductSQL.price(of: product)
        try db.execute(sql: """
            INSERT INTO products (tenant, product_id, title, description, brand, currency, price, availability, create_time, update_time, version, data)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (tenant, product_id) DO UPDATE SET
                title = excluded.title, description = excluded.description, brand = excluded.brand,
                currency = excluded.currency, price = excluded.price, availability = excluded.availability,
                update_time = excluded.update_time, version = excluded.version, data = excluded.data
            """, arguments: [
                tenant.value, product.productID, product.title, product.description_p, product.brand,
                product.price.currencyCode, price, product.availability.rawValue,
                micros(product.createTime), micros(product.updateTime), version, data,
            ])
        if previous?.categories != product.categories {
            try db.execute(sql: "DELETE FROM product_categories WHERE tenant = ? AND product_id = ?", arguments: [tenant.value, product.productID])
            for category in Set(product.categories) {
                try db.execute(sql: "INSERT INTO product_categories (tenant, category, product_id) VALUES (?, ?, ?)",
                               arguments: [tenant.value, category, product.productID])
            }
        }
        try recordChange(db, tenant: tenant, productID: product.productID, type: previous == nil ? .created : .updated, product: product, now: now)
    }

    private static func recordChange(_ db: Database, tenant: TenantID, productID: String,
                                     type: Platform_Catalog_V1_ProductChange.ChangeType, product: Product?, now: Date) throws {
        let data: Data? = try product?.serializedBytes()
        try db.execute(sql: "INSERT INTO product_changes (tenant, product_id, change_type, data, change_time) VALUES (?, ?, ?, ?, ?)",
                       arguments: [tenant.value, productID, type.rawValue, data, Int64(now.timeIntervalSince1970 * 1_000_000)])
    }

    // MARK: Change feed

    public func changes(tenant: TenantID, after sequence: Int64, limit: Int) async throws -> [ProductChangeRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT sequence, product_id, change_type, data, change_time FROM product_changes
                WHERE tenant = ? AND sequence > ? ORDER BY sequence LIMIT ?
                """, arguments: [tenant.value, sequence, limit]).map { row in
                let data: Data? = row["data"]
                return ProductChangeRecord(
                    sequence: row["sequence"], productID: row["product_id"],
                    type: .init(rawValue: row["change_type"]) ?? .unspecified,
                    product: try data.map { try Product(serializedBytes: $0) },
                    time: Date(timeIntervalSince1970: Double(row["change_time"] as Int64) / 1_000_000))
            }
        }
    }

    public func changeBounds(tenant: TenantID) async throws -> (oldest: Int64, newest: Int64) {
        try await pool.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT MIN(sequence) AS oldest, MAX(sequence) AS newest FROM product_changes WHERE tenant = ?",
                                       arguments: [tenant.value])
            let newest: Int64 = row?["newest"] ?? 0
            let oldest: Int64 = row?["oldest"] ?? newest + 1
            return (oldest, newest)
        }
    }

    public func changeNotifications() -> AsyncStream<Void> {
        notifier.subscribe()
    }

    /// Drops change-feed entries and idempotency keys past their retention.
    public func pruneExpired(now: Date = Date()) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM product_changes WHERE change_time < ?",
                           arguments: [Int64((now.timeIntervalSince1970 - self.changeRetention) * 1_000_000)])
            try db.execute(sql: "DELETE FROM idempotency_keys WHERE created_at < ?",
                           arguments: [Int64((now.timeIntervalSince1970 - self.idempotencyRetention) * 1_000_000)])
        }
    }

    // MARK: Idempotency

    public func idempotentResponse(tenant: TenantID, key: IdempotencyKey) async throws -> IdempotencyLookup {
        try await pool.read { db in try SQLiteIdempotency.lookup(db, tenant: tenant, key: key, retention: self.idempotencyRetention, now: Date()) }
    }

    public func saveIdempotentResponse(tenant: TenantID, key: IdempotencyKey, response: Data) async throws {
        try await pool.write { db in try SQLiteIdempotency.store(db, tenant: tenant, key: key, response: response, now: Date()) }
    }

    // MARK: Helpers

    public func isAvailable() async -> Bool {
        (try? await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }) == 1
    }

    public func close() async throws {
        try pool.close()
    }

    private static func micros(_ timestamp: Google_Protobuf_Timestamp) -> Int64 {
        ProductSQL.micros(timestamp)
    }

    private static func databaseValue(_ value: ProductSQL.Value) -> any DatabaseValueConvertible {
        switch value {
        case .text(let text): text
        case .real(let real): real
        case .integer(let integer): integer
        }
    }

    private static func arguments(_ values: [ProductSQL.Value]) -> StatementArguments {
        StatementArguments(values.map(databaseValue))
    }




}

/// Fans a "something changed" tick out to every change-feed watcher.
final class ChangeNotifier: Sendable {
    private let subscribers = Mutex<[UUID: AsyncStream<Void>.Continuation]>([:])

    func subscribe() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    func notify() {
        for continuation in subscribers.withLock({ Array($0.values) }) { continuation.yield() }
    }
}
