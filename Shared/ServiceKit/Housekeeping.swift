/// Runs `work` now and then every `interval` until cancelled: storage
/// housekeeping such as dropping expired idempotency keys. Failures are
/// retried at the next round.
public func startHousekeeping(every interval: Duration = .seconds(3600), _ work: @escaping @Sendable () async throws -> Void) -> Task<Void, Never> {
    Task {
        while !Task.isCancelled {
            try? await work()
            try? await Task.sleep(for: interval)
        }
    }
}
