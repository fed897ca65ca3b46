import Foundation
import ServiceKit
import Synchronization

/// Each tenant's experiments, prepared for assignment and kept in memory so
/// GetAssignments never reads storage on the hot path. A tenant's entry is
/// dropped on every write through this process and reloaded after
/// `refreshInterval` to pick up writes by other replicas sharing a database.
final class AssignmentIndex: Sendable {
    struct Snapshot: Sendable {
        /// Ordered by key.
        var experiments: [AssignableExperiment]
        var byKey: [String: Int]
        /// What GetAssignments without keys evaluates.
        var serving: [AssignableExperiment]
    }

    private struct Entry {
        var snapshot: Snapshot?
        var loadedAt: ContinuousClock.Instant = .now
        /// Bumped by every invalidation; a load started under an older
        /// generation must not install what it read.
        var generation = 0
    }

    private let store: any ExperimentStore
    private let refreshInterval: Duration
    private let entries = Mutex<[TenantID: Entry]>([:])

    init(store: any ExperimentStore, refreshInterval: Duration = .seconds(5)) {
        self.store = store
        self.refreshInterval = refreshInterval
    }

    func snapshot(tenant: TenantID) async throws -> Snapshot {
        let (cached, generation) = entries.withLock { entries -> (Snapshot?, Int) in
            let entry = entries[tenant] ?? Entry()
            if let snapshot = entry.snapshot, entry.loadedAt.duration(to: .now) < refreshInterval { return (snapshot, entry.generation) }
            return (nil, entry.generation)
        }
        if let cached { return cached }
        let experiments = try await store.experiments(tenant: tenant).map(AssignableExperiment.init)
        let snapshot = Snapshot(
            experiments: experiments,
            byKey: Dictionary(uniqueKeysWithValues: experiments.enumerated().map { ($1.experiment.key, $0) }),
            serving: experiments.filter(\.isServing))
        entries.withLock { entries in
            var entry = entries[tenant] ?? Entry()
            guard entry.generation == generation else { return }
            entry.snapshot = snapshot
            entry.loadedAt = .now
            entries[tenant] = entry
        }
        return snapshot
    }

    func invalidate(tenant: TenantID) {
        entries.withLock { entries in
            var entry = entries[tenant] ?? Entry()
            entry.snapshot = nil
            entry.generation += 1
            entries[tenant] = entry
        }
    }
}
