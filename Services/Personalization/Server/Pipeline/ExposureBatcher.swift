import Contracts
import Logging
import Metrics
import ServiceKit
import Synchronization

/// Sends the exposures of many answers to experimentation together: one
/// LogExposures per tenant every `interval`, instead of one per answer.
/// Each exposure carries an id, so a batch retried after a lost answer
/// counts once. Bounded: beyond `capacity` waiting exposures new ones are
/// dropped and counted (`personalization_exposures_lost_total`), never
/// slowing the answers down.
final class ExposureBatcher: Sendable {
    typealias Exposure = Platform_Experimentation_V1_Exposure

    let interval: Duration
    let capacity: Int
    private let steps: DependencySteps
    private let logger: Logger
    private let pending = Mutex<(byTenant: [TenantID: [Exposure]], count: Int)>(([:], 0))
    private let loop = Mutex<Task<Void, Never>?>(nil)

    init(steps: DependencySteps, interval: Duration = .milliseconds(50), capacity: Int = 100_000, logger: Logger) {
        self.steps = steps
        self.interval = interval
        self.capacity = capacity
        self.logger = logger
    }

    func start() {
        loop.withLock { loop in
            guard loop == nil else { return }
            loop = Task.detached { [self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    await flush()
                }
            }
        }
    }

    /// Stops the loop and sends what is waiting.
    func stop() async {
        loop.withLock { $0?.cancel() }
        await flush()
    }

    func add(_ exposures: [Exposure], tenant: TenantID) {
        let accepted = pending.withLock { pending -> Bool in
            guard pending.count + exposures.count <= capacity else { return false }
            pending.byTenant[tenant, default: []] += exposures
            pending.count += exposures.count
            return true
        }
        if !accepted { Counter(label: "personalization_exposures_lost_total").increment(by: Int64(exposures.count)) }
    }

    func flush() async {
        let batches = pending.withLock { pending in
            defer { pending = ([:], 0) }
            return pending.byTenant
        }
        for (tenant, exposures) in batches {
            for start in stride(from: 0, to: exposures.count, by: 5000) {
                await send(Array(exposures[start..<min(start + 5000, exposures.count)]), tenant: tenant)
            }
        }
    }

    private func send(_ exposures: [Exposure], tenant: TenantID) async {
        var delay = Duration.milliseconds(100)
        for attempt in 1...3 {
            guard case .failure(let failure) = await steps.logExposures(exposures, tenant: tenant) else { return }
            if attempt == 3 {
                Counter(label: "personalization_exposures_lost_total").increment(by: Int64(exposures.count))
                logger.warning("exposures not logged", metadata: ["tenant": "\(tenant)", "count": "\(exposures.count)", "reason": "\(failure.reason)"])
                return
            }
            try? await Task.sleep(for: delay)
            delay *= 4
        }
    }
}
