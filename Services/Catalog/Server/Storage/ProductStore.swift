import Contracts
import Foundation
import ServiceKit

public typealias Product = Platform_Catalog_V1_Product

/// Where products live. Two implementations share this contract: SQLite
/// (embedded default) and, for scale, PostgreSQL. Business rules (masks,
/// etags, validation) stay in `CatalogHandler`; a store only has to make each
/// operation atomic and scoped to its tenant.
public protocol ProductStore: Sendable {
    /// The products with these ids that exist, by id.
    func products(tenant: TenantID, ids: [String]) async throws -> [String: Product]

    /// What memory knows of one product, without waiting; nil when only
    /// the store knows.
    func knownProduct(tenant: TenantID, id: String) -> KnownProduct?

    /// One page of `query`, after `cursor`, and how many match in all.
    func list(tenant: TenantID, query: ProductQuery, after cursor: PageCursor?, limit: Int) async throws -> (products: [Product], total: Int)

    /// One page of full-text hits, best first, after `cursor`.
    func search(tenant: TenantID, text: String, filter: ProductFilter, after cursor: PageCursor?, limit: Int) async throws -> [(product: Product, relevance: Double)]

    /// Reads the product, lets `decide` choose a write, and commits it with
    /// its change-feed entry and idempotency record in one transaction. When
    /// `idempotency` names a key already used, replays or rejects instead.
    func modify(
        tenant: TenantID, productID: String, idempotency: IdempotencyKey?,
        decide: @Sendable (Product?) throws -> ProductWrite
    ) async throws -> ModifyOutcome

    /// Creates or replaces each product in one transaction; returns, for
    /// each, whether it was created (true) or replaced (false).
    func upsertAll(tenant: TenantID, products: [Product]) async throws -> [Bool]

    /// Changes after `sequence`, oldest first.
    func changes(tenant: TenantID, after sequence: Int64, limit: Int) async throws -> [ProductChangeRecord]

    /// The newest change's sequence (0 when none), and the oldest still kept.
    func changeBounds(tenant: TenantID) async throws -> (oldest: Int64, newest: Int64)

    /// Ticks after every committed write, for change-feed watchers.
    func changeNotifications() -> AsyncStream<Void>

    /// A stored idempotent answer, or nil.
    func idempotentResponse(tenant: TenantID, key: IdempotencyKey) async throws -> IdempotencyLookup

    /// Stores an idempotent answer for a write that did not go through `modify`.
    func saveIdempotentResponse(tenant: TenantID, key: IdempotencyKey, response: Data) async throws

    /// Drops change-feed entries and idempotency keys past their retention.
    func pruneExpired(now: Date) async throws

    /// Whether the store answers (health).
    func isAvailable() async -> Bool

    func close() async throws
}

extension ProductStore {
    /// Stores without a cache in memory never answer at once.
    public func knownProduct(tenant: TenantID, id: String) -> KnownProduct? { nil }
}

/// A product as a cache in memory knows it.
public enum KnownProduct: Sendable {
    /// The product, with its protobuf encoding (a GetProduct response).
    case found(Product, encoded: [UInt8])
    /// The store has no such product.
    case missing
}

/// What `modify` should do with the product it read.
public enum ProductWrite: Sendable {
    /// Store this product (created when there was none).
    case save(Product)
    /// Delete it.
    case delete
    /// Nothing to write; answer with this.
    case none(Product?)
}

/// The result of `modify`.
public enum ModifyOutcome: Sendable {
    /// The write happened (or was a no-op); the product after it, nil if deleted.
    case applied(Product?)
    /// The idempotency key was used before with the same request: the
    /// serialized first answer.
    case replayed(Data)
}

/// One entry of the change feed.
public struct ProductChangeRecord: Sendable {
    public var sequence: Int64
    public var productID: String
    public var type: Platform_Catalog_V1_ProductChange.ChangeType
    /// The product after the change; nil for deletions.
    public var product: Product?
    public var time: Date
}

public enum StoreError: Error, Sendable {
    /// The idempotency key was used with a different request.
    case idempotencyConflict
}
