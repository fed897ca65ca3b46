import Synchronization

/// A bounded in-memory cache whose entries expire after a fixed time and
/// carry the generation they were made in: bumping a scope's generation
/// invalidates every entry made before, without finding them one by one.
/// At capacity the oldest entries go first.
public final class ExpiringCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct Entry {
        var value: Value
        var expires: ContinuousClock.Instant
        var generation: UInt64
    }

    private struct Storage {
        var entries: [Key: Entry] = [:]
        var insertionOrder: [Key] = []
        var orderStart = 0
    }

    public let timeToLive: Duration
    public let capacity: Int
    private let storage = Mutex(Storage())

    public init(timeToLive: Duration, capacity: Int) {
        self.timeToLive = timeToLive
        self.capacity = max(1, capacity)
    }

    /// The value, unless it expired or was made before `generation`.
    public func value(for key: Key, generation: UInt64 = 0) -> Value? {
        storage.withLock { storage in
            guard let entry = storage.entries[key] else { return nil }
            guard entry.expires > .now, entry.generation == generation else {
                storage.entries[key] = nil
                return nil
            }
            return entry.value
        }
    }

    /// The value made in `generation`, and whether it is still fresh: lets
    /// a caller serve an expired value while it refreshes it. Values of
    /// another generation are never returned.
    public func lookup(_ key: Key, generation: UInt64 = 0) -> (value: Value, isFresh: Bool)? {
        storage.withLock { storage in
            guard let entry = storage.entries[key] else { return nil }
            guard entry.generation == generation else {
                storage.entries[key] = nil
                return nil
            }
            return (entry.value, entry.expires > .now)
        }
    }

    public func store(_ value: Value, for key: Key, generation: UInt64 = 0) {
        storage.withLock { storage in
            if storage.entries.updateValue(Entry(value: value, expires: .now + timeToLive, generation: generation), forKey: key) == nil {
                storage.insertionOrder.append(key)
            }
            // Evict the oldest insertions (possibly already gone) until within capacity.
            while storage.entries.count > capacity, storage.orderStart < storage.insertionOrder.count {
                storage.entries[storage.insertionOrder[storage.orderStart]] = nil
                storage.orderStart += 1
            }
            if storage.orderStart > 4096, storage.orderStart * 2 > storage.insertionOrder.count {
                storage.insertionOrder.removeFirst(storage.orderStart)
                storage.orderStart = 0
                storage.insertionOrder.removeAll { storage.entries[$0] == nil }
            }
        }
    }
}
