import Foundation
import ServiceKit

/// Each tenant's experiments, prepared for assignment and kept in memory so
/// GetAssignments never reads storage on the hot path.
///
/// - A write through this process drops the tenant's entry; the next
///   request loads it again, one load however many requests wait for it.
/// - Writes by other replicas sharing a database are picked up by a check
///   every `refreshInterval`, in the background (`RefreshingCache`):
///   requests keep getting the current snapshot meanwhile, and the
///   experiments are only reloaded when the tenant's audit log changed
///   (`ExperimentStore.experimentsVersion`).
final class AssignmentIndex: Sendable {
    struct Snapshot: Sendable {
        /// Ordered by key.
        var experiments: [AssignableExperiment]
        /// Distinct targeting conditions among them (`UnitLookups`).
        var conditionCount: Int
        var byKey: [String: Int]
        /// What GetAssignments without keys evaluates.
        var serving: [AssignableExperiment]
    }

    /// A snapshot with the audit-log version it was read at.
    private struct Loaded: Sendable {
        var snapshot: Snapshot
        var version: ExperimentSetVersion
    }

    private let cache: RefreshingCache<TenantID, Loaded>

    init(store: any ExperimentStore, refreshInterval: Duration = .seconds(5)) {
        cache = RefreshingCache(
            refreshInterval: refreshInterval,
            load: { tenant in try await Self.load(tenant: tenant, store: store) },
            refresh: { tenant, current in
                // Reloads only when the audit log moved.
                guard try await store.experimentsVersion(tenant: tenant) != current.version else { return nil }
                return try await Self.load(tenant: tenant, store: store)
            })
    }

    func snapshot(tenant: TenantID) async throws -> Snapshot {
        try await cache.value(for: tenant).snapshot
    }

    /// The tenant's snapshot if loaded, without waiting.
    func loadedSnapshot(tenant: TenantID) -> Snapshot? {
        cache.loadedValue(for: tenant)?.snapshot
    }

    func invalidate(tenant: TenantID) {
        cache.invalidate(tenant)
    }

    /// The version first: a write landing between the two reads then shows
    /// up as a changed version at the next check, never as a missed change.
    private static func load(tenant: TenantID, store: any ExperimentStore) async throws -> Loaded {
        let version = try await store.experimentsVersion(tenant: tenant)
        let (experiments, conditionCount) = AssignableExperiment.prepare(try await store.experiments(tenant: tenant))
        let snapshot = Snapshot(
            experiments: experiments, conditionCount: conditionCount,
            byKey: Dictionary(uniqueKeysWithValues: experiments.enumerated().map { ($1.experiment.key, $0) }),
            serving: experiments.filter(\.isServing))
        return Loaded(snapshot: snapshot, version: version)
    }
}
