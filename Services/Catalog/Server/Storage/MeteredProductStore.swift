import Foundation
import Metrics
import ServiceKit
import Synchronization

/// Reports how the store is used through swift-metrics: operations in flight
/// (`catalog_store_in_flight`, the pool's load) and their latency by
/// operation and outcome (`catalog_store_duration_seconds`).
public final class MeteredProductStore: ProductStore {
    private let base: any ProductStore
    private let backend: String
    private let inFlight = Atomic<Int>(0)
    private let gauge: Gauge

    public init(_ base: any ProductStore, backend: String) {
        self.base = base
        self.backend = backend
        gauge = Gauge(label: "catalog_store_in_flight", dimensions: [("backend", backend)])
    }

    private func measure<T>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        gauge.record(inFlight.add(1, ordering: .relaxed).newValue)
        let start = ContinuousClock.now
        var outcome = "ok"
        defer {
            gauge.record(inFlight.subtract(1, ordering: .relaxed).newValue)
            Metrics.Timer(label: "catalog_store_duration_seconds",
                          dimensions: [("backend", backend), ("operation", operation), ("outcome", outcome)],
                          preferredDisplayUnit: .seconds)
                .record(duration: ContinuousClock.now - start)
        }
        do {
            return try await body()
        } catch {
            outcome = "error"
            throw error
        }
    }

    public func products(tenant: TenantID, ids: [String]) async throws -> [String: Product] {
        try await measure("get") { try await base.products(tenant: tenant, ids: ids) }
    }

    public func list(tenant: TenantID, query: ProductQuery, after cursor: PageCursor?, limit: Int) async throws -> (products: [Product], total: Int) {
        try await measure("list") { try await base.list(tenant: tenant, query: query, after: cursor, limit: limit) }
    }

    public func search(tenant: TenantID, text: String, filter: ProductFilter, after cursor: PageCursor?, limit: Int) async throws -> [(product: Product, relevance: Double)] {
        try await measure("search") { try await base.search(tenant: tenant, text: text, filter: filter, after: cursor, limit: limit) }
    }

    public func modify(tenant: TenantID, productID: String, idempotency: IdempotencyKey?,
                       decide: @Sendable (Product?) throws -> ProductWrite) async throws -> ModifyOutcome {
        try await measure("modify") { try await base.modify(tenant: tenant, productID: productID, idempotency: idempotency, decide: decide) }
    }

    public func upsertAll(tenant: TenantID, products: [Product]) async throws -> [Bool] {
        try await measure("upsert") { try await base.upsertAll(tenant: tenant, products: products) }
    }

    public func changes(tenant: TenantID, after sequence: Int64, limit: Int) async throws -> [ProductChangeRecord] {
        try await measure("changes") { try await base.changes(tenant: tenant, after: sequence, limit: limit) }
    }

    public func changeBounds(tenant: TenantID) async throws -> (oldest: Int64, newest: Int64) {
        try await measure("change_bounds") { try await base.changeBounds(tenant: tenant) }
    }

    public func changeNotifications() -> AsyncStream<Void> { base.changeNotifications() }

    public func idempotentResponse(tenant: TenantID, key: IdempotencyKey) async throws -> IdempotencyLookup {
        try await measure("idempotency_lookup") { try await base.idempotentResponse(tenant: tenant, key: key) }
    }

    public func saveIdempotentResponse(tenant: TenantID, key: IdempotencyKey, response: Data) async throws {
        try await measure("idempotency_save") { try await base.saveIdempotentResponse(tenant: tenant, key: key, response: response) }
    }

    public func pruneExpired(now: Date) async throws {
        try await measure("prune") { try await base.pruneExpired(now: now) }
    }

    public func isAvailable() async -> Bool { await base.isAvailable() }
    public func close() async throws { try await base.close() }
}
