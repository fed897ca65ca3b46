import Synchronization

/// Stops calling a dependency that keeps failing: after
/// `failureThreshold` failures in a row the breaker opens and refuses calls
/// for `openDuration`; then one probe call is let through, and its outcome
/// closes the breaker or opens it again. Callers fall back while it is open
/// instead of spending their deadline on a dependency that is down.
public final class CircuitBreaker: Sendable {
    public struct Configuration: Sendable {
        public var failureThreshold: Int
        public var openDuration: Duration

        public init(failureThreshold: Int = 5, openDuration: Duration = .seconds(2)) {
            self.failureThreshold = max(1, failureThreshold)
            self.openDuration = openDuration
        }

        public static var defaults: Configuration { Configuration() }
    }

    /// Whether a call may go ahead; pass it back to `record`.
    public struct Admission: Sendable {
        public let allowed: Bool
        let isProbe: Bool
    }

    public enum Outcome: Sendable {
        case success
        /// The dependency failed (unreachable, too slow, internal error).
        case failure
        /// The call ended for a reason that says nothing about the
        /// dependency, e.g. the caller cancelled.
        case inconclusive
    }

    public let name: String
    private let machine: Mutex<StateMachine>
    private let onStateChange: @Sendable (_ open: Bool) -> Void

    public init(name: String, configuration: Configuration = .defaults, onStateChange: @escaping @Sendable (_ open: Bool) -> Void = { _ in }) {
        self.name = name
        self.machine = Mutex(StateMachine(configuration: configuration))
        self.onStateChange = onStateChange
    }

    public func admit() -> Admission {
        let action = machine.withLock { $0.admit(now: .now) }
        return Admission(allowed: action != .reject, isProbe: action == .probe)
    }

    public func record(_ outcome: Outcome, for admission: Admission) {
        let change: Bool? = machine.withLock { machine in
            switch outcome {
            case .success:
                let wasOpen = machine.state != .closed(consecutiveFailures: 0) && admission.isProbe
                machine.recordSuccess()
                return wasOpen ? false : nil
            case .failure:
                return machine.recordFailure(now: .now) ? true : nil
            case .inconclusive:
                if admission.isProbe { machine.abandonProbe(now: .now) }
                return nil
            }
        }
        if let change { onStateChange(change) }
    }

    /// True while calls are being refused.
    public var isOpen: Bool {
        machine.withLock { if case .closed = $0.state { false } else { true } }
    }
}
