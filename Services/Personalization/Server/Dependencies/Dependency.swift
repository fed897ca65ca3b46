import MeridianRPC
import Metrics
import ServiceKit

/// Why a dependency could not be used for this request, for the response's
/// degradation reasons and the logs.
struct DependencyFailure: Error, Sendable {
    var dependency: String
    var reason: String
}

/// One service personalization calls: its client channel, a circuit
/// breaker, and the timeout each call gets. `call` never throws a
/// dependency's error: it returns a failure the pipeline degrades on.
final class Dependency: Sendable {
    let name: String
    let channel: RPCChannel
    let timeout: Duration
    let breaker: CircuitBreaker

    init(name: String, channel: RPCChannel, timeout: Duration, breaker: CircuitBreaker.Configuration) {
        self.name = name
        self.channel = channel
        self.timeout = timeout
        let gauge = Gauge(label: "personalization_circuit_open", dimensions: [("dependency", name)])
        gauge.record(0)
        self.breaker = CircuitBreaker(name: name, configuration: breaker) { open in gauge.record(open ? 1 : 0) }
    }

    /// Runs `body` with call options carrying the tenant and a timeout of
    /// this dependency's share, cut to what is left of `budget`.
    func call<T: Sendable>(
        _ step: String, budget: RequestBudget, tenant: TenantID, timeout: Duration? = nil,
        _ body: @Sendable (CallOptions) async throws -> T
    ) async -> Result<T, DependencyFailure> {
        let admission = breaker.admit()
        guard admission.allowed else {
            return .failure(DependencyFailure(dependency: name, reason: "circuit open after repeated failures"))
        }
        let timeout = min(timeout ?? self.timeout, budget.remaining)
        guard timeout > .milliseconds(1) else {
            breaker.record(.inconclusive, for: admission)
            return .failure(DependencyFailure(dependency: name, reason: "no time left in the request's budget"))
        }
        var options = CallOptions(timeout: timeout)
        options.metadata.add("x-tenant-id", tenant.value)
        let start = ContinuousClock.now
        do {
            let result = try await body(options)
            breaker.record(.success, for: admission)
            Timer(label: "personalization_dependency_seconds", dimensions: [("dependency", name), ("step", step)])
                .recordNanoseconds((ContinuousClock.now - start).nanosecondsCount)
            return .success(result)
        } catch {
            let elapsed = ContinuousClock.now - start
            let code = (error as? RPCError)?.code
            if Task.isCancelled {
                breaker.record(.inconclusive, for: admission)
            } else {
                // Statuses that say the call was wrong, not the dependency,
                // leave the breaker alone.
                let blamesCaller: Set<RPCStatus.Code> = [.invalidArgument, .notFound, .failedPrecondition, .unauthenticated, .permissionDenied, .alreadyExists, .outOfRange]
                breaker.record(code.map(blamesCaller.contains) == true ? .inconclusive : .failure, for: admission)
            }
            Counter(label: "personalization_dependency_failures_total", dimensions: [("dependency", name), ("step", step), ("code", code.map { "\($0)" } ?? "error")]).increment()
            let what = (error as? RPCError).map { "\($0.code): \($0.message)" } ?? "\(error)"
            return .failure(DependencyFailure(dependency: name, reason: "\(what) after \(elapsed.milliseconds) ms"))
        }
    }
}

/// The time a request may still spend, shared by its steps.
struct RequestBudget: Sendable {
    let deadline: ContinuousClock.Instant

    init(callerTimeRemaining: Duration?, default budget: Duration) {
        // A little is kept back so the answer still reaches the caller.
        let available = callerTimeRemaining.map { $0 - .milliseconds(2) } ?? budget
        deadline = .now + available
    }

    var remaining: Duration { max(.zero, deadline - .now) }
}

extension Duration {
    var nanosecondsCount: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    var milliseconds: Int { Int(nanosecondsCount / 1_000_000) }
}
