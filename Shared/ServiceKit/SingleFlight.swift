import Synchronization

/// Runs one fetch per key at a time: callers that ask for a key while its
/// fetch is running wait for that fetch's result instead of starting their
/// own, so a cache miss under load costs the dependency one call, not one
/// per request.
public final class SingleFlight<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let running = Mutex<[Key: Task<Value, Never>]>([:])

    public init() {}

    public func run(key: Key, _ fetch: @escaping @Sendable () async -> Value) async -> Value {
        let task = running.withLock { running in
            if let existing = running[key] { return existing }
            let task = Task { await fetch() }
            running[key] = task
            return task
        }
        let value = await task.value
        running.withLock { running in
            // Only the fetch this caller waited for is forgotten; a newer one stays.
            if running[key] == task { running[key] = nil }
        }
        return value
    }
}
