import Foundation

/// Gathers concurrent requests for one model version into batches: a batch
/// goes when it holds `maxBatchSize` rows or when its oldest request has
/// waited `maxQueueDelay`, whichever comes first. The queue is bounded: a
/// full queue answers at once instead of growing, and a request that waited
/// past its timeout leaves with UNAVAILABLE rather than being computed late.
///
/// Batches run on the batcher's own thread, so model compute never occupies
/// the threads that serve connections and the async runtime.
final class DynamicBatcher: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `condition`.
    struct Configuration: Sendable {
        var maxBatchSize: Int
        var maxQueueDelay: Duration
        var maxQueueSize: Int
        var queueTimeout: Duration?
    }

    enum Rejection: Error {
        case queueFull(Int)
        case timedOut(waited: Duration)
        case stopped
    }

    typealias Execute = @Sendable ([Tensor]) throws(BackendError) -> [Tensor]

    private struct Pending {
        var id: UInt64
        var rows: Int
        var inputs: [Tensor]
        var enqueued: UInt64
        var expires: UInt64?
        var continuation: CheckedContinuation<(outputs: [Tensor], queueNanoseconds: UInt64), any Error>
    }

    private let configuration: Configuration
    private let execute: Execute
    private let condition = NSCondition()
    private var queue: [Pending] = []
    private var head = 0
    private var queuedRows = 0
    private var nextID: UInt64 = 0
    private var stopped = false
    private var thread: Thread?

    init(name: String, configuration: Configuration, execute: @escaping Execute) {
        self.configuration = configuration
        self.execute = execute
        let thread = Thread { [self] in self.run() }
        thread.name = "batcher \(name)"
        self.thread = thread
        thread.start()
    }

    private var waiting: Int { queue.count - head }

    /// Queues `inputs` (`rows` rows) and waits for this request's share of a batch's outputs.
    func submit(_ inputs: [Tensor], rows: Int, deadline: UInt64?) async throws -> (outputs: [Tensor], queueNanoseconds: UInt64) {
        let id: UInt64 = condition.withLock { nextID += 1; return nextID }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let now = DispatchTime.now().uptimeNanoseconds
                var expires = deadline
                if let timeout = configuration.queueTimeout {
                    let limit = now + timeout.wholeNanoseconds
                    expires = min(expires ?? limit, limit)
                }
                condition.lock()
                if stopped {
                    condition.unlock()
                    continuation.resume(throwing: Rejection.stopped)
                    return
                }
                if waiting >= configuration.maxQueueSize {
                    condition.unlock()
                    continuation.resume(throwing: Rejection.queueFull(configuration.maxQueueSize))
                    return
                }
                queue.append(Pending(id: id, rows: rows, inputs: inputs, enqueued: now, expires: expires, continuation: continuation))
                queuedRows += rows
                condition.signal()
                condition.unlock()
            }
        } onCancel: {
            condition.lock()
            let index = queue[head...].firstIndex { $0.id == id }
            let removed = index.map { queue.remove(at: $0) }
            if let removed { queuedRows -= removed.rows }
            condition.unlock()
            removed?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Stops taking requests; those queued are still computed.
    func stop() {
        condition.withLock {
            stopped = true
            condition.signal()
        }
    }

    private func run() {
        let maxDelay = configuration.maxQueueDelay.wholeNanoseconds
        condition.lock()
        while true {
            while waiting == 0 && !stopped { condition.wait() }
            if waiting == 0 && stopped { break }
            // Wait for the batch to fill, at most until the oldest request's delay is up.
            let due = queue[head].enqueued + maxDelay
            while !stopped && queuedRows < configuration.maxBatchSize {
                let now = DispatchTime.now().uptimeNanoseconds
                guard now < due else { break }
                _ = condition.wait(until: Date(timeIntervalSinceNow: Double(due - now) / 1e9))
                if waiting == 0 { break }
            }
            var batch: [Pending] = []
            var expired: [Pending] = []
            var rows = 0
            let now = DispatchTime.now().uptimeNanoseconds
            while head < queue.count, batch.isEmpty || rows + queue[head].rows <= configuration.maxBatchSize {
                let next = queue[head]
                head += 1
                queuedRows -= next.rows
                if let expires = next.expires, expires <= now {
                    expired.append(next)
                } else {
                    batch.append(next)
                    rows += next.rows
                }
            }
            if head > 64 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            condition.unlock()
            for request in expired {
                request.continuation.resume(throwing: Rejection.timedOut(waited: .nanoseconds(Int64(now - request.enqueued))))
            }
            if !batch.isEmpty { compute(batch, started: now) }
            condition.lock()
        }
        condition.unlock()
    }

    private func compute(_ batch: [Pending], started: UInt64) {
        if batch.count == 1 {
            let request = batch[0]
            do {
                let outputs = try execute(request.inputs)
                request.continuation.resume(returning: (outputs, started - request.enqueued))
            } catch {
                request.continuation.resume(throwing: error)
            }
            return
        }
        let stacked = batch[0].inputs.indices.map { index in Tensor.concatenate(batch.map { $0.inputs[index] }) }
        do {
            let outputs = try execute(stacked)
            var offset = 0
            for request in batch {
                let share = outputs.map { $0.rows(offset..<offset + request.rows) }
                offset += request.rows
                request.continuation.resume(returning: (share, started - request.enqueued))
            }
        } catch {
            for request in batch { request.continuation.resume(throwing: error) }
        }
    }
}

extension Duration {
    /// The whole duration in nanoseconds (non-negative durations).
    var wholeNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        return UInt64(max(seconds, 0)) * 1_000_000_000 + UInt64(max(attoseconds, 0) / 1_000_000_000)
    }
}
