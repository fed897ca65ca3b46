import Contracts
import Foundation
import Metrics
import Synchronization

/// What one model version has done since it was loaded: ModelStatistics
/// reads it, and every update also goes to the process's metrics (the admin
/// port's /metrics) under the model and version.
final class VersionStatistics: Sendable {
    struct Duration: Sendable {
        var count: UInt64 = 0
        var nanoseconds: UInt64 = 0
        mutating func add(_ ns: UInt64) { count += 1; nanoseconds += ns }
        var proto: Inference_StatisticDuration {
            .with { $0.count = count; $0.ns = nanoseconds }
        }
    }

    struct Snapshot: Sendable {
        var lastInferenceMilliseconds: UInt64 = 0
        var inferenceCount: UInt64 = 0
        var executionCount: UInt64 = 0
        var success = Duration(), fail = Duration(), queue = Duration()
        var computeInput = Duration(), computeInfer = Duration(), computeOutput = Duration()
        var cacheHit = Duration(), cacheMiss = Duration()
        var batches: [Int: (count: UInt64, infer: UInt64)] = [:]
    }

    private let state = Mutex(Snapshot())
    private let requests: Counter
    private let failures: Counter
    private let latency: Metrics.Timer
    private let queueTime: Metrics.Timer
    private let computeTime: Metrics.Timer
    private let batchSize: Recorder
    private let cacheHits: Counter
    private let cacheMisses: Counter

    init(model: String, version: Int64) {
        let dimensions = [("model", model), ("version", String(version))]
        requests = Counter(label: "inference_requests_total", dimensions: dimensions + [("outcome", "success")])
        failures = Counter(label: "inference_requests_total", dimensions: dimensions + [("outcome", "failure")])
        latency = Metrics.Timer(label: "inference_request_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
        queueTime = Metrics.Timer(label: "inference_queue_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
        computeTime = Metrics.Timer(label: "inference_compute_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
        batchSize = Recorder(label: "inference_batch_size", dimensions: dimensions, aggregate: true)
        cacheHits = Counter(label: "inference_cache_total", dimensions: dimensions + [("outcome", "hit")])
        cacheMisses = Counter(label: "inference_cache_total", dimensions: dimensions + [("outcome", "miss")])
    }

    var snapshot: Snapshot { state.withLock { $0 } }

    /// A request answered: `rows` inferences, `total` end to end, of which `queue` waiting for a batch.
    func recordSuccess(rows: Int, total: UInt64, queue: UInt64, fromCache: Bool) {
        state.withLock {
            $0.success.add(total)
            $0.inferenceCount += UInt64(rows)
            $0.lastInferenceMilliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
            if !fromCache { $0.queue.add(queue) }
        }
        requests.increment()
        latency.recordNanoseconds(Int64(total))
        if !fromCache { queueTime.recordNanoseconds(Int64(queue)) }
    }

    func recordFailure(total: UInt64) {
        state.withLock { $0.fail.add(total) }
        failures.increment()
    }

    /// One execution of the backend on a batch of `rows`.
    func recordExecution(rows: Int, input: UInt64, infer: UInt64, output: UInt64) {
        state.withLock {
            $0.executionCount += 1
            $0.computeInput.add(input)
            $0.computeInfer.add(infer)
            $0.computeOutput.add(output)
            let previous = $0.batches[rows] ?? (0, 0)
            $0.batches[rows] = (previous.count + 1, previous.infer + infer)
        }
        computeTime.recordNanoseconds(Int64(infer))
        batchSize.record(rows)
    }

    func recordCache(hit: Bool, lookup: UInt64) {
        state.withLock { hit ? $0.cacheHit.add(lookup) : $0.cacheMiss.add(lookup) }
        (hit ? cacheHits : cacheMisses).increment()
    }

    func proto(name: String, version: Int64) -> Inference_ModelStatistics {
        let snapshot = self.snapshot
        return .with {
            $0.name = name
            $0.version = String(version)
            $0.lastInference = snapshot.lastInferenceMilliseconds
            $0.inferenceCount = snapshot.inferenceCount
            $0.executionCount = snapshot.executionCount
            $0.inferenceStats = .with {
                $0.success = snapshot.success.proto
                $0.fail = snapshot.fail.proto
                $0.queue = snapshot.queue.proto
                $0.computeInput = snapshot.computeInput.proto
                $0.computeInfer = snapshot.computeInfer.proto
                $0.computeOutput = snapshot.computeOutput.proto
                $0.cacheHit = snapshot.cacheHit.proto
                $0.cacheMiss = snapshot.cacheMiss.proto
            }
            $0.batchStats = snapshot.batches.keys.sorted().map { size in
                let entry = snapshot.batches[size]!
                return .with {
                    $0.batchSize = UInt64(size)
                    $0.computeInfer = .with { $0.count = entry.count; $0.ns = entry.infer }
                }
            }
        }
    }
}
