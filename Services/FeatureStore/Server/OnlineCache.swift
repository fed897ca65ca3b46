import Foundation
import ServiceKit
import Synchronization

/// The hot tier: the registry and recently read rows in memory, in front of
/// durable storage. When this process is storage's only writer (SQLite),
/// writes keep the cache right: they bump a generation and drop the keys
/// they touch; a read that started under an older generation does not
/// install what it read, so a slow read can never put back a row a write
/// replaced. With shared storage (PostgreSQL, several replicas) rows are not
/// cached and the registry is reloaded in the background every
/// `sharedRegistryRefresh` (`RefreshingCache`).
final class OnlineCache: Sendable {
    struct Registry: Sendable {
        var views: [String: FeatureView]
        var services: [String: FeatureService]
        /// Every "view:feature" reference, resolved once per registry load.
        var references: [String: FeatureColumn]
        /// How many views, columns and distinct feature names there are: the
        /// sizes of the arrays a lookup indexes by `ResolvedView.index`,
        /// `FeatureColumn.id` and `FeatureColumn.nameID` instead of hashing
        /// names on every request.
        var viewCount = 0
        var columnCount = 0
        var featureNameCount = 0
        /// Feature selections already resolved under this registry.
        let plans = LookupPlans()

        init(views: [String: FeatureView], services: [String: FeatureService]) {
            self.views = views
            self.services = services
            var references: [String: FeatureColumn] = [:]
            var nameIDs: [String: Int] = [:]
            for (index, view) in views.values.sorted(by: { $0.name < $1.name }).enumerated() {
                let shared = ResolvedView(view, index: index)
                for (position, feature) in view.features.enumerated() {
                    let nameID = nameIDs[feature.name] ?? nameIDs.count
                    nameIDs[feature.name] = nameID
                    references["\(view.name):\(feature.name)"] = FeatureColumn(
                        view: shared, feature: feature.name, position: position, id: references.count, nameID: nameID)
                }
            }
            self.references = references
            viewCount = views.count
            columnCount = references.count
            featureNameCount = nameIDs.count
        }
    }

    private struct RowKey: Hashable {
        var tenant: TenantID
        var view: String
        var entity: String
    }

    private struct State {
        /// nil: known to have no row.
        var rows: [RowKey: StoredRow?] = [:]
        var generation = 0
    }

    private let storage: any FeatureStorage
    private let maxRows: Int
    private let cachesRows: Bool
    private let registries: RefreshingCache<TenantID, Registry>
    private let state = Mutex(State())

    init(storage: any FeatureStorage, soleWriter: Bool, maxRows: Int = 1_000_000, sharedRegistryRefresh: Duration = .seconds(5)) {
        self.storage = storage
        self.maxRows = soleWriter ? maxRows : 0
        self.cachesRows = soleWriter
        registries = RefreshingCache(refreshInterval: soleWriter ? nil : sharedRegistryRefresh) { tenant in
            let (views, services) = try await storage.registry(tenant: tenant)
            return Registry(views: Dictionary(uniqueKeysWithValues: views.map { ($0.name, $0) }),
                            services: Dictionary(uniqueKeysWithValues: services.map { ($0.name, $0) }))
        }
    }

    /// The tenant's registry, resolved once per load, never per request.
    func registry(tenant: TenantID) async throws -> Registry {
        try await registries.value(for: tenant)
    }

    /// The tenant's registry if loaded, without waiting.
    func loadedRegistry(tenant: TenantID) -> Registry? {
        registries.loadedValue(for: tenant)
    }

    func invalidateRegistry(tenant: TenantID) {
        registries.invalidate(tenant)
        state.withLock { state in
            state.generation += 1
            // A deleted view's rows go with it.
            state.rows = state.rows.filter { $0.key.tenant != tenant }
        }
    }

    /// The latest row of each key of `layout`'s view, from memory where
    /// known, with its values encoded in `layout`'s feature order.
    func rows(tenant: TenantID, layout: ResolvedView, entityKeys: [String]) async throws -> [String: StoredRow] {
        let view = layout.name
        guard cachesRows else {
            return try await storage.rows(tenant: tenant, view: view, entityKeys: entityKeys).mapValues { try $0.encoded(for: layout) }
        }
        let (inMemory, missing, generation) = inMemory(tenant: tenant, view: view, entityKeys: entityKeys, stopAtMiss: false)
        guard !missing.isEmpty else { return inMemory }
        let loaded = try await storage.rows(tenant: tenant, view: view, entityKeys: missing).mapValues { try $0.encoded(for: layout) }
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.rows.count + missing.count > maxRows { state.rows.removeAll(keepingCapacity: true) }
            for key in missing { state.rows[RowKey(tenant: tenant, view: view, entity: key)] = .some(loaded[key]) }
        }
        return inMemory.merging(loaded) { $1 }
    }

    /// The rows of `entityKeys` if memory knows every one (found or known
    /// missing), without waiting; nil when any must be read from storage.
    func rowsInMemory(tenant: TenantID, layout: ResolvedView, entityKeys: [String]) -> [String: StoredRow]? {
        guard cachesRows else { return nil }
        let (found, missing, _) = inMemory(tenant: tenant, view: layout.name, entityKeys: entityKeys, stopAtMiss: true)
        return missing.isEmpty ? found : nil
    }

    private func inMemory(tenant: TenantID, view: String, entityKeys: [String], stopAtMiss: Bool)
        -> (found: [String: StoredRow], missing: [String], generation: Int) {
        var found: [String: StoredRow] = [:]
        var missing: [String] = []
        let generation = state.withLock { state -> Int in
            for key in entityKeys {
                switch state.rows[RowKey(tenant: tenant, view: view, entity: key)] {
                case .some(.some(let row)): found[key] = row
                case .some(.none): break
                case .none:
                    missing.append(key)
                    if stopAtMiss { return state.generation }
                }
            }
            return state.generation
        }
        return (found, missing, generation)
    }

    /// After a write committed: forget the rows it may have replaced.
    func forget(tenant: TenantID, view: String, entityKeys: [String]) {
        state.withLock { state in
            state.generation += 1
            for key in entityKeys { state.rows[RowKey(tenant: tenant, view: view, entity: key)] = nil }
        }
    }
}
