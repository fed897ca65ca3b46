import Synchronization

/// A server-wide cap on calls in flight. Over the cap a call is refused at
/// once (UNAVAILABLE with a retry hint) rather than queued without bound.
final class InFlightLimiter: Sendable {
    let limit: Int
    private let current = Atomic<Int>(0)

    init(limit: Int) { self.limit = limit }

    func tryAcquire() -> Bool {
        let after = current.add(1, ordering: .relaxed).newValue
        if after > limit {
            current.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func release() { current.subtract(1, ordering: .relaxed) }

    var inFlight: Int { current.load(ordering: .relaxed) }
}
