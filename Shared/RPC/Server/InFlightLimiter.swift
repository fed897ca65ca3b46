import Synchronization

/// A server-wide cap on calls in flight. Over the cap a call is refused at
/// once (UNAVAILABLE with a retry hint) rather than queued without bound,
/// unless its connection holds less than its fair share of the cap: one
/// client holding every permit cannot starve the others, and the calls in
/// flight stay under twice the cap.
final class InFlightLimiter: Sendable {
    let limit: Int
    private let current = Atomic<Int>(0)

    init(limit: Int) { self.limit = limit }

    /// `heldByConnection`: the permits the asking connection holds now;
    /// `connections`: the server's open connections.
    func tryAcquire(heldByConnection: Int = 0, connections: Int = 1) -> Bool {
        let after = current.add(1, ordering: .relaxed).newValue
        if after > limit {
            let fairShare = max(1, limit / max(1, connections))
            if heldByConnection < fairShare && after <= 2 * limit { return true }
            current.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func release() { current.subtract(1, ordering: .relaxed) }

    var inFlight: Int { current.load(ordering: .relaxed) }
}

/// Open connections, server-wide and by peer address. Over either cap a new
/// connection is told GOAWAY and closed.
final class ConnectionLimiter: Sendable {
    enum Admission: Equatable {
        case admitted
        case refused(LimitKind)
    }

    let maxTotal: Int
    let maxPerPeer: Int
    private let state = Mutex<(total: Int, byPeer: [String: Int])>((0, [:]))
    private let total = Atomic<Int>(0)

    init(maxTotal: Int, maxPerPeer: Int) {
        self.maxTotal = maxTotal
        self.maxPerPeer = maxPerPeer
    }

    func admit(peer: String) -> Admission {
        let admission = state.withLock { state -> Admission in
            if state.total >= maxTotal { return .refused(.connections) }
            let fromPeer = state.byPeer[peer, default: 0]
            if fromPeer >= maxPerPeer { return .refused(.connectionsPerPeer) }
            state.total += 1
            state.byPeer[peer] = fromPeer + 1
            return .admitted
        }
        if admission == .admitted { total.add(1, ordering: .relaxed) }
        return admission
    }

    func release(peer: String) {
        state.withLock { state in
            state.total -= 1
            let left = state.byPeer[peer, default: 1] - 1
            state.byPeer[peer] = left > 0 ? left : nil
        }
        total.subtract(1, ordering: .relaxed)
    }

    /// Admitted connections open now.
    var count: Int { total.load(ordering: .relaxed) }
}

/// Request bytes held server-wide that no handler has taken yet.
final class ReceiveBudget: Sendable {
    let limit: Int
    let reservePerConnection: Int
    private let held = Atomic<Int>(0)

    init(limit: Int, reservePerConnection: Int) {
        self.limit = limit
        self.reservePerConnection = reservePerConnection
    }

    func add(_ delta: Int) { held.add(delta, ordering: .relaxed) }

    /// Whether a connection holding `connectionBytes` is over its share:
    /// only once the server is over its limit, and past the reserve.
    func isOver(connectionBytes: Int) -> Bool {
        connectionBytes > reservePerConnection && held.load(ordering: .relaxed) > limit
    }

    var bytes: Int { held.load(ordering: .relaxed) }
}
