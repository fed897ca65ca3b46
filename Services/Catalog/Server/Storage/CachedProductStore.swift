import Foundation
import ServiceKit
import SwiftProtobuf
import Synchronization

/// An in-memory read-through cache of products by id in front of a store
/// whose only writer is this process (embedded SQLite): every write goes
/// through here, so entries are replaced or dropped exactly when the row
/// changes. GetProduct and BatchGetProducts hit memory, for products that
/// exist and for ids known to be missing alike (a miss went to the store
/// every time, nine times the cost of a hit); lists, search and the change
/// feed go to the store.
public final class CachedProductStore: ProductStore {
    private let base: any ProductStore
    private let capacity: Int
    private let state = Mutex(State())

    private struct State {
        /// nil: the store has no such product.
        var entries: [Key: Entry?] = [:]
        /// Bumped by every write, so a read that raced a write does not
        /// cache what it loaded before the write committed.
        var generation: UInt64 = 0
    }

    private struct Key: Hashable {
        let tenant: String
        let productID: String
    }

    /// A product and its encoding, made once when it is cached: encoding
    /// cost GetProduct more than everything else it does.
    private struct Entry {
        let product: Product
        let encoded: [UInt8]
    }

    public init(_ base: any ProductStore, capacity: Int = 200_000) {
        self.base = base
        self.capacity = capacity
    }

    public func products(tenant: TenantID, ids: [String]) async throws -> [String: Product] {
        var found: [String: Product] = [:]
        var missing: [String] = []
        let generation = state.withLock { state in
            for id in ids {
                switch state.entries[Key(tenant: tenant.value, productID: id)] {
                case .some(.some(let entry)): found[id] = entry.product
                case .some(.none): break  // known missing
                case .none: missing.append(id)
                }
            }
            return state.generation
        }
        guard !missing.isEmpty else { return found }
        let loaded = try await base.products(tenant: tenant, ids: missing)
        store(missing, loaded: loaded, tenant: tenant, loadedAt: generation)
        return found.merging(loaded) { cached, _ in cached }
    }

    public func knownProduct(tenant: TenantID, id: String) -> KnownProduct? {
        switch state.withLock({ $0.entries[Key(tenant: tenant.value, productID: id)] }) {
        case .some(.some(let entry)): .found(entry.product, encoded: entry.encoded)
        case .some(.none): .missing
        case .none: nil
        }
    }

    public func modify(tenant: TenantID, productID: String, idempotency: IdempotencyKey?,
                       decide: @Sendable (Product?) throws -> ProductWrite) async throws -> ModifyOutcome {
        // Drop first: a concurrent reader then reloads from the store instead
        // of keeping a value this write replaces.
        forget([productID], tenant: tenant)
        let outcome = try await base.modify(tenant: tenant, productID: productID, idempotency: idempotency, decide: decide)
        forget([productID], tenant: tenant)
        return outcome
    }

    public func upsertAll(tenant: TenantID, products: [Product]) async throws -> [Bool] {
        forget(products.map(\.productID), tenant: tenant)
        let created = try await base.upsertAll(tenant: tenant, products: products)
        forget(products.map(\.productID), tenant: tenant)
        return created
    }

    /// Keeps what loading `ids` found, and that the others are missing.
    private func store(_ ids: [String], loaded: [String: Product], tenant: TenantID, loadedAt generation: UInt64) {
        // Encoded outside the lock; a product that would not encode is
        // left to the store.
        let entries: [(Key, Entry?)] = ids.compactMap { id in
            let key = Key(tenant: tenant.value, productID: id)
            guard let product = loaded[id] else { return (key, nil) }
            return (try? product.serializedBytes() as [UInt8]).map { (key, Entry(product: product, encoded: $0)) }
        }
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.entries.count + entries.count > capacity { state.entries.removeAll(keepingCapacity: true) }
            for (key, entry) in entries { state.entries[key] = .some(entry) }
        }
    }

    private func forget(_ ids: [String], tenant: TenantID) {
        state.withLock { state in
            state.generation &+= 1
            for id in ids { state.entries.removeValue(forKey: Key(tenant: tenant.value, productID: id)) }
        }
    }

    // MARK: Passed through

    public func list(tenant: TenantID, query: ProductQuery, after cursor: PageCursor?, limit: Int) async throws -> (products: [Product], total: Int) {
        try await base.list(tenant: tenant, query: query, after: cursor, limit: limit)
    }

    public func search(tenant: TenantID, text: String, filter: ProductFilter, after cursor: PageCursor?, limit: Int) async throws -> [(product: Product, relevance: Double)] {
        try await base.search(tenant: tenant, text: text, filter: filter, after: cursor, limit: limit)
    }

    public func changes(tenant: TenantID, after sequence: Int64, limit: Int) async throws -> [ProductChangeRecord] {
        try await base.changes(tenant: tenant, after: sequence, limit: limit)
    }

    public func changeBounds(tenant: TenantID) async throws -> (oldest: Int64, newest: Int64) {
        try await base.changeBounds(tenant: tenant)
    }

    public func changeNotifications() -> AsyncStream<Void> { base.changeNotifications() }

    public func idempotentResponse(tenant: TenantID, key: IdempotencyKey) async throws -> IdempotencyLookup {
        try await base.idempotentResponse(tenant: tenant, key: key)
    }

    public func saveIdempotentResponse(tenant: TenantID, key: IdempotencyKey, response: Data) async throws {
        try await base.saveIdempotentResponse(tenant: tenant, key: key, response: response)
    }

    public func pruneExpired(now: Date) async throws { try await base.pruneExpired(now: now) }
    public func isAvailable() async -> Bool { await base.isAvailable() }
    public func close() async throws { try await base.close() }
}
