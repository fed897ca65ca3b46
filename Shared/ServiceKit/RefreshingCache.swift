import Synchronization

/// Values per key (a tenant's feature registry, its experiments) loaded on
/// first use and kept in memory, for hot paths that must not read storage.
///
/// - `invalidate` (a write through this process) drops the key's value.
///   The next read loads it again: one load however many readers wait.
///   A load that started before the invalidation installs nothing.
/// - With a `refreshInterval` (storage shared with other replicas), a
///   value that old is still answered while one background `refresh`
///   replaces it. Refreshing on the request path made every request that
///   arrived during the reload wait for a reload of its own.
/// - A failed refresh keeps the current value and tries again an interval
///   later. A failed first load is the caller's error and keeps nothing.
///
/// The read path is inlinable: as unspecialized generic code across the
/// module boundary it cost a feature lookup several percent.
public final class RefreshingCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    @usableFromInline
    struct Entry {
        @usableFromInline var value: Value?
        @usableFromInline var checkedAt: ContinuousClock.Instant = .now
        /// Bumped by every invalidation.
        @usableFromInline var generation = 0
        @usableFromInline var refreshing = false

        @usableFromInline init() {}
    }

    private struct LoadKey: Hashable, Sendable {
        var key: Key
        var generation: Int
    }

    @usableFromInline let refreshInterval: Duration?
    private let load: @Sendable (Key) async throws -> Value
    private let refreshValue: @Sendable (Key, Value) async throws -> Value?
    @usableFromInline let entries = Mutex<[Key: Entry]>([:])
    private let loads = SingleFlight<LoadKey, Result<Value, any Error>>()

    /// - Parameters:
    ///   - refreshInterval: how old a value may get before a background
    ///     refresh; nil when nothing but `invalidate` changes values.
    ///   - load: reads a key's value from storage.
    ///   - refresh: the key's new value, or nil when the current one (its
    ///     second argument) is still right, e.g. its version did not move.
    ///     Reloads by default.
    public init(refreshInterval: Duration?,
                load: @escaping @Sendable (Key) async throws -> Value,
                refresh: (@Sendable (Key, Value) async throws -> Value?)? = nil) {
        self.refreshInterval = refreshInterval
        self.load = load
        refreshValue = refresh ?? { key, _ in try await load(key) }
    }

    @inlinable
    public func value(for key: Key) async throws -> Value {
        switch lookUp(key) {
        case .found(let value): value
        case .missing(let generation): try await loadOnce(key, generation: generation)
        }
    }

    /// The key's value if it is loaded, without waiting (starting a
    /// background refresh when one is due); nil when it must be loaded.
    @inlinable
    public func loadedValue(for key: Key) -> Value? {
        if case .found(let value) = lookUp(key) { value } else { nil }
    }

    @usableFromInline
    enum LookUp {
        case found(Value)
        case missing(generation: Int)
    }

    @inlinable
    func lookUp(_ key: Key) -> LookUp {
        let (cached, generation, refreshNow) = entries.withLock { entries -> (Value?, Int, Bool) in
            guard let entry = entries[key], let value = entry.value else { return (nil, entries[key]?.generation ?? 0, false) }
            guard let refreshInterval, !entry.refreshing, entry.checkedAt.duration(to: .now) >= refreshInterval else {
                return (value, entry.generation, false)
            }
            entries[key]?.refreshing = true
            return (value, entry.generation, true)
        }
        guard let cached else { return .missing(generation: generation) }
        if refreshNow { startRefresh(key, current: cached, generation: generation) }
        return .found(cached)
    }

    @usableFromInline
    func startRefresh(_ key: Key, current: Value, generation: Int) {
        Task { await self.refresh(key, current: current, generation: generation) }
    }

    @usableFromInline
    func loadOnce(_ key: Key, generation: Int) async throws -> Value {
        try await loads.run(key: LoadKey(key: key, generation: generation)) {
            do {
                let value = try await self.load(key)
                self.install(value, for: key, generation: generation)
                return .success(value)
            } catch {
                return .failure(error)
            }
        }.get()
    }

    public func invalidate(_ key: Key) {
        entries.withLock { entries in
            var entry = entries[key] ?? Entry()
            entry.value = nil
            entry.generation += 1
            entries[key] = entry
        }
    }

    private func install(_ value: Value, for key: Key, generation: Int) {
        entries.withLock { entries in
            var entry = entries[key] ?? Entry()
            guard entry.generation == generation else { return }
            entry.value = value
            entry.checkedAt = .now
            entries[key] = entry
        }
    }

    private func refresh(_ key: Key, current: Value, generation: Int) async {
        let replacement = try? await refreshValue(key, current)  // nil: unchanged, or failed
        entries.withLock { entries in
            guard var entry = entries[key] else { return }
            entry.refreshing = false
            if entry.generation == generation {
                if let replacement { entry.value = replacement }
                entry.checkedAt = .now
            }
            entries[key] = entry
        }
    }
}
