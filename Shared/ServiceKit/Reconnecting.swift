import Logging

/// Runs `session` (following a feed, holding a stream open) again and
/// again until the task is cancelled: after each failure it logs, waits,
/// and doubles the wait up to `maximumDelay`; a session that ends without
/// failing resets the wait. `onFailure` sees each error first, e.g. to
/// forget a resume position the server no longer has.
public func reconnecting(
    _ what: String, logger: Logger, metadata: Logger.Metadata = [:],
    initialDelay: Duration = .milliseconds(200), maximumDelay: Duration,
    onFailure: (any Error) -> Void = { _ in },
    _ session: () async throws -> Void
) async {
    var delay = initialDelay
    while !Task.isCancelled {
        do {
            try await session()
            delay = initialDelay
        } catch is CancellationError {
            return
        } catch {
            if Task.isCancelled { return }
            onFailure(error)
            var details = metadata
            details["error"] = "\(error)"
            details["retry_in"] = "\(delay)"
            logger.warning("\(what) interrupted; reconnecting", metadata: details)
        }
        try? await Task.sleep(for: delay)
        delay = min(delay * 2, maximumDelay)
    }
}
