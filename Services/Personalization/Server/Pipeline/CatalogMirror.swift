import Contracts
import Foundation
import Logging
import MeridianRPC
import ServiceKit
import Synchronization

/// An in-memory copy of each followed tenant's catalog, kept fresh from the
/// catalog's WatchProducts feed: the popularity list candidates come from
/// (most sold first), product facts when the catalog cannot be asked, and a
/// generation per tenant that moves on every change, so cached candidate
/// lists made before a change are never served after it.
///
/// A tenant is followed from its first request (or from the start, for
/// preloaded tenants): the feed is opened, every product listed once, then
/// each change applied; the newest change time wins per product, so the
/// listing and the feed may overlap in any order. After an interruption it
/// resumes from the last change seen, or lists everything again when it had
/// none or the catalog no longer has that position.
final class CatalogMirror: Sendable {
    private struct Entry {
        var item: CatalogItem?
        var time: Double
    }

    private struct TenantState {
        var entries: [String: Entry] = [:]
        var generation: UInt64 = 0
        var ready = false
        var sortedGeneration: UInt64 = .max
        var byPopularity: [CatalogItem] = []
    }

    private let catalog: Platform_Catalog_V1_CatalogServiceClient
    private let popularityAttribute: String
    private let maxTenants: Int
    private let logger: Logger
    private let tenants = Mutex<[TenantID: TenantState]>([:])
    private let followers = Mutex<[TenantID: Task<Void, Never>]>([:])

    init(channel: RPCChannel, popularityAttribute: String, maxTenants: Int, logger: Logger) {
        self.catalog = Platform_Catalog_V1_CatalogServiceClient(channel: channel)
        self.popularityAttribute = popularityAttribute
        self.maxTenants = maxTenants
        self.logger = logger
    }

    /// Starts following `tenant` unless it is already (or too many are).
    func follow(_ tenant: TenantID) {
        followers.withLock { followers in
            guard followers[tenant] == nil, followers.count < maxTenants else { return }
            // Detached: a follower outlives the request that started it and
            // must not inherit its deadline.
            followers[tenant] = Task.detached { [self] in await self.run(tenant) }
        }
    }

    func stop() {
        followers.withLock { followers in
            for task in followers.values { task.cancel() }
            followers.removeAll()
        }
    }

    /// Moves on with every change to the tenant's catalog.
    func generation(_ tenant: TenantID) -> UInt64 {
        tenants.withLock { $0[tenant]?.generation ?? 0 }
    }

    /// Whether the tenant's catalog has been listed completely once.
    func isReady(_ tenant: TenantID) -> Bool {
        tenants.withLock { $0[tenant]?.ready ?? false }
    }

    /// The most sold products the filter admits, best first.
    func popular(_ tenant: TenantID, filter: CandidateFilter, limit: Int, excluding: Set<String>) -> [CatalogItem] {
        tenants.withLock { tenants in
            guard var state = tenants[tenant] else { return [] }
            if state.sortedGeneration != state.generation {
                state.byPopularity = state.entries.values.compactMap(\.item).sorted {
                    $0.popularity != $1.popularity ? $0.popularity > $1.popularity : $0.productID < $1.productID
                }
                state.sortedGeneration = state.generation
                tenants[tenant] = state
            }
            var result: [CatalogItem] = []
            for item in state.byPopularity where filter.admits(item) && !excluding.contains(item.productID) {
                result.append(item)
                if result.count == limit { break }
            }
            return result
        }
    }

    /// The mirrored facts of these products (absent when unknown).
    func items(_ tenant: TenantID, ids: [String]) -> [String: CatalogItem] {
        tenants.withLock { tenants in
            guard let state = tenants[tenant] else { return [:] }
            var found: [String: CatalogItem] = [:]
            for id in ids { if let item = state.entries[id]?.item { found[id] = item } }
            return found
        }
    }

    // MARK: Following

    private func options(_ tenant: TenantID) -> CallOptions {
        var options = CallOptions(inheritsFromServerContext: false)
        options.metadata.add("x-tenant-id", tenant.value)
        return options
    }

    private func run(_ tenant: TenantID) async {
        var resumeToken = ""
        await reconnecting("catalog feed", logger: logger, metadata: ["tenant": "\(tenant)"], maximumDelay: .seconds(2),
                           onFailure: { error in if (error as? RPCError)?.code == .outOfRange { resumeToken = "" } }) {
            try await session(tenant, resumeToken: &resumeToken)
        }
    }

    /// One connection to the feed: list everything when there is no
    /// position to resume from, and apply changes until the feed ends.
    private func session(_ tenant: TenantID, resumeToken: inout String) async throws {
        let feed = catalog.watchProducts(.with { $0.resumeToken = resumeToken }, options: options(tenant))
        let needsListing = resumeToken.isEmpty
        let position = FeedPosition(resumeToken)
        defer { resumeToken = position.token.withLock { $0 } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await change in feed {
                    self.apply(change, tenant: tenant)
                    position.token.withLock { $0 = change.resumeToken }
                }
            }
            if needsListing {
                var token = ""
                repeat {
                    let page = try await catalog.listProducts(ProviderRequests.catalogPage(token: token), options: options(tenant))
                    store(page.products.map { (id: $0.productID, item: CatalogItem($0, popularityAttribute: popularityAttribute), time: $0.updateTime.timeIntervalSince1970) }, tenant: tenant)
                    token = page.nextPageToken
                } while !token.isEmpty
                tenants.withLock { $0[tenant, default: TenantState()].ready = true }
                logger.info("catalog mirrored", metadata: ["tenant": "\(tenant)"])
            }
            try await group.waitForAll()
        }
    }

    private func apply(_ change: Platform_Catalog_V1_ProductChange, tenant: TenantID) {
        let item = change.changeType == .deleted ? nil : CatalogItem(change.product, popularityAttribute: popularityAttribute)
        store([(id: change.productID, item: item, time: change.changeTime.timeIntervalSince1970)], tenant: tenant)
    }

    private func store(_ updates: [(id: String, item: CatalogItem?, time: Double)], tenant: TenantID) {
        tenants.withLock { tenants in
            var state = tenants[tenant] ?? TenantState()
            tenants[tenant] = nil  // keep the state uniquely referenced while it changes
            var changed = false
            for update in updates where (state.entries[update.id]?.time ?? -.infinity) <= update.time {
                state.entries[update.id] = Entry(item: update.item, time: update.time)
                changed = true
            }
            if changed { state.generation &+= 1 }
            tenants[tenant] = state
        }
    }
}

/// The last feed position a session saw, shared with its reading task.
private final class FeedPosition: Sendable {
    let token: Mutex<String>
    init(_ token: String) { self.token = Mutex(token) }
}
