import Foundation
import Logging
import Metrics
import ServiceKit
import Synchronization

/// The exposure and event write path: a bounded queue in front of one
/// background writer that commits many requests per transaction (group
/// commit). A request is answered only after its transaction commits, so
/// every acknowledged record is durable; when the queue cannot take a
/// request whole, it is refused at once (backpressure) instead of growing
/// memory or dropping data.
public final class IngestionPipeline: Sendable {
    public struct Configuration: Sendable {
        /// Most records queued or being written at once.
        public var capacity = 100_000
        /// Most records per transaction.
        public var maxRecordsPerTransaction = 20_000
        /// Retry delay suggested to refused callers.
        public var retryDelay: Duration = .milliseconds(200)

        public static var defaults: Configuration { Configuration() }
    }

    public enum SubmitError: Error, Sendable {
        /// The queue cannot take the batch now; nothing was stored.
        case full(retryAfter: Duration)
        /// The pipeline has shut down.
        case closed
    }

    private struct Job: Sendable {
        var batch: IngestionBatch
        /// Nil for fire-and-forget submissions (GetAssignments' exposures).
        var continuation: CheckedContinuation<IngestionResult, any Error>?
    }

    private struct State {
        var jobs: [Job] = []
        var records = 0
        var writerWakeup: CheckedContinuation<Void, Never>?
        var closed = false
    }

    let configuration: Configuration
    private let store: any ExperimentStore
    private let logger: Logger
    private let state = Mutex(State())
    private let writer = Mutex<Task<Void, Never>?>(nil)
    private let queued = Gauge(label: "experimentation_ingestion_queued_records")
    private let refused = Counter(label: "experimentation_ingestion_refused_records_total")
    private let written = Counter(label: "experimentation_ingestion_written_records_total")

    public init(store: any ExperimentStore, configuration: Configuration = .defaults, logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        let task = Task { [self] in await self.runWriter() }
        writer.withLock { $0 = task }
    }

    /// Queues the batch and returns its outcome once it is committed.
    public func submit(_ batch: IngestionBatch) async throws -> IngestionResult {
        try await withCheckedThrowingContinuation { continuation in
            if let error = enqueue(Job(batch: batch, continuation: continuation)) { continuation.resume(throwing: error) }
        }
    }

    /// Queues the batch without waiting for it; false when it was refused.
    public func submitWithoutWaiting(_ batch: IngestionBatch) -> Bool {
        enqueue(Job(batch: batch, continuation: nil)) == nil
    }

    private func enqueue(_ job: Job) -> SubmitError? {
        let count = job.batch.count
        let (error, wakeup): (SubmitError?, CheckedContinuation<Void, Never>?) = state.withLock { state in
            if state.closed { return (.closed, nil) }
            guard state.records + count <= configuration.capacity else { return (.full(retryAfter: configuration.retryDelay), nil) }
            state.records += count
            state.jobs.append(job)
            defer { state.writerWakeup = nil }
            return (nil, state.writerWakeup)
        }
        if error != nil { refused.increment(by: Int64(count)) } else { queued.record(currentRecords) }
        wakeup?.resume()
        return error
    }

    private var currentRecords: Int { state.withLock { $0.records } }

    private func runWriter() async {
        while true {
            await waitForWork()
            let (jobs, closed) = takeJobs()
            if jobs.isEmpty {
                if closed { return }
                continue
            }
            await write(jobs)
        }
    }

    /// Parks the writer until a job is queued or the pipeline closes.
    private func waitForWork() async {
        await withCheckedContinuation { (wakeup: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if !state.jobs.isEmpty || state.closed { return true }
                state.writerWakeup = wakeup
                return false
            }
            if ready { wakeup.resume() }
        }
    }

    /// Whole jobs, oldest first, up to the transaction size (at least one).
    private func takeJobs() -> ([Job], closed: Bool) {
        state.withLock { state in
            var total = 0
            var count = 0
            for job in state.jobs {
                if count > 0 && total + job.batch.count > configuration.maxRecordsPerTransaction { break }
                total += job.batch.count
                count += 1
            }
            let taken = Array(state.jobs.prefix(count))
            state.jobs.removeFirst(count)
            return (taken, state.closed)
        }
    }

    private func write(_ jobs: [Job]) async {
        let records = jobs.reduce(0) { $0 + $1.batch.count }
        do {
            let results = try await store.ingest(jobs.map(\.batch))
            for (job, result) in zip(jobs, results) { job.continuation?.resume(returning: result) }
            written.increment(by: Int64(records))
        } catch {
            logger.error("ingestion transaction failed", metadata: ["records": "\(records)", "error": "\(error)"])
            for job in jobs { job.continuation?.resume(throwing: error) }
        }
        state.withLock { $0.records -= records }
        queued.record(currentRecords)
    }

    /// Refuses new batches, writes what is queued, and stops the writer.
    public func shutdown() async {
        let wakeup = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closed = true
            defer { state.writerWakeup = nil }
            return state.writerWakeup
        }
        wakeup?.resume()
        await writer.withLock { $0 }?.value
    }
}
