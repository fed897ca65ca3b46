/// The states of a circuit breaker and what each event does to them, kept
/// free of clocks and locks so it can be reasoned about (and tested) alone.
extension CircuitBreaker {
    struct StateMachine: Sendable {
        enum State: Sendable, Equatable {
            /// Calls flow; this many have failed in a row.
            case closed(consecutiveFailures: Int)
            /// Calls are refused until the instant, then one probe is let through.
            case open(until: ContinuousClock.Instant)
            /// One probe is out; its outcome closes or reopens the breaker.
            case halfOpen
        }

        enum AdmitAction: Sendable, Equatable {
            case proceed
            /// The probe of a half-open breaker: its outcome decides.
            case probe
            case reject
        }

        let configuration: Configuration
        private(set) var state: State = .closed(consecutiveFailures: 0)

        init(configuration: Configuration) { self.configuration = configuration }

        mutating func admit(now: ContinuousClock.Instant) -> AdmitAction {
            switch state {
            case .closed:
                return .proceed
            case .open(let until):
                guard now >= until else { return .reject }
                state = .halfOpen
                return .probe
            case .halfOpen:
                // Only one probe at a time; everyone else keeps falling back.
                return .reject
            }
        }

        mutating func recordSuccess() {
            state = .closed(consecutiveFailures: 0)
        }

        /// Returns true when this failure opened the breaker.
        mutating func recordFailure(now: ContinuousClock.Instant) -> Bool {
            switch state {
            case .closed(let failures):
                if failures + 1 >= configuration.failureThreshold {
                    state = .open(until: now + configuration.openDuration)
                    return true
                }
                state = .closed(consecutiveFailures: failures + 1)
                return false
            case .halfOpen:
                state = .open(until: now + configuration.openDuration)
                return true
            case .open:
                return false
            }
        }

        /// A call admitted as a probe that ended without telling anything
        /// about the dependency (the caller gave up): let another probe try.
        mutating func abandonProbe(now: ContinuousClock.Instant) {
            if state == .halfOpen { state = .open(until: now) }
        }
    }
}
