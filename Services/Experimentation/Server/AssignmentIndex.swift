import Foundation
import ServiceKit
import Synchronization

/// Each tenant's experiments, prepared for assignment and kept in memory so
/// GetAssignments never reads storage on the hot path.
///
/// - A write through this process drops the tenant's entry; the next
///   request loads it again, one load however many requests wait for it.
/// - Writes by other replicas sharing a database are picked up by a check
///   every `refreshInterval`, in the background: requests keep getting the
///   current snapshot meanwhile, and the experiments are only reloaded when
///   the tenant's audit log changed (`ExperimentStore.experimentsVersion`).
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

    private struct Entry {
        var snapshot: Snapshot?
        var version: ExperimentSetVersion?
        var checkedAt: ContinuousClock.Instant = .now
        /// Bumped by every invalidation; a load started under an older
        /// generation must not install what it read.
        var generation = 0
        var refreshing = false
    }

    private struct LoadKey: Hashable {
        var tenant: TenantID
        var generation: Int
    }

    private struct Loaded: Sendable {
        var snapshot: Snapshot
        var version: ExperimentSetVersion
    }

    private let store: any ExperimentStore
    private let refreshInterval: Duration
    private let entries = Mutex<[TenantID: Entry]>([:])
    private let loads = SingleFlight<LoadKey, Result<Snapshot, any Error>>()

    init(store: any ExperimentStore, refreshInterval: Duration = .seconds(5)) {
        self.store = store
        self.refreshInterval = refreshInterval
    }

    func snapshot(tenant: TenantID) async throws -> Snapshot {
        let (cached, generation, refresh) = entries.withLock { entries -> (Snapshot?, Int, Bool) in
            guard var entry = entries[tenant], let snapshot = entry.snapshot else { return (nil, entries[tenant]?.generation ?? 0, false) }
            guard !entry.refreshing, entry.checkedAt.duration(to: .now) >= refreshInterval else { return (snapshot, entry.generation, false) }
            entry.refreshing = true
            entries[tenant] = entry
            return (snapshot, entry.generation, true)
        }
        if let cached {
            if refresh { Task { await self.refresh(tenant: tenant, generation: generation) } }
            return cached
        }
        return try await loads.run(key: LoadKey(tenant: tenant, generation: generation)) {
            do {
                let loaded = try await self.load(tenant: tenant)
                self.install(loaded, tenant: tenant, generation: generation)
                return .success(loaded.snapshot)
            } catch {
                return .failure(error)
            }
        }.get()
    }

    func invalidate(tenant: TenantID) {
        entries.withLock { entries in
            var entry = entries[tenant] ?? Entry()
            entry.snapshot = nil
            entry.version = nil
            entry.generation += 1
            entries[tenant] = entry
        }
    }

    /// The version first: a write landing between the two reads then shows
    /// up as a changed version at the next check, never as a missed change.
    private func load(tenant: TenantID) async throws -> Loaded {
        let version = try await store.experimentsVersion(tenant: tenant)
        let (experiments, conditionCount) = AssignableExperiment.prepare(try await store.experiments(tenant: tenant))
        let snapshot = Snapshot(
            experiments: experiments, conditionCount: conditionCount,
            byKey: Dictionary(uniqueKeysWithValues: experiments.enumerated().map { ($1.experiment.key, $0) }),
            serving: experiments.filter(\.isServing))
        return Loaded(snapshot: snapshot, version: version)
    }

    private func install(_ loaded: Loaded, tenant: TenantID, generation: Int) {
        entries.withLock { entries in
            var entry = entries[tenant] ?? Entry()
            guard entry.generation == generation else { return }
            entry.snapshot = loaded.snapshot
            entry.version = loaded.version
            entry.checkedAt = .now
            entries[tenant] = entry
        }
    }

    /// Reloads when the version moved; on any failure the current snapshot
    /// keeps serving and the next check comes an interval later.
    private func refresh(tenant: TenantID, generation: Int) async {
        let known = entries.withLock { $0[tenant]?.version }
        var loaded: Loaded?
        if let version = try? await store.experimentsVersion(tenant: tenant), version != known {
            loaded = try? await load(tenant: tenant)
        }
        entries.withLock { entries in
            guard var entry = entries[tenant] else { return }
            entry.refreshing = false
            if entry.generation == generation {
                if let loaded {
                    entry.snapshot = loaded.snapshot
                    entry.version = loaded.version
                }
                entry.checkedAt = .now
            }
            entries[tenant] = entry
        }
    }
}
