import Foundation
import Synchronization

/// One loaded, warmed version of a model: its backend, the batcher in front
/// of it (when the config asks for dynamic batching) and its statistics.
/// Requests hold a reference while they run, so unloading or replacing a
/// version never cuts a request short.
final class ServedVersion: Sendable {
    let definition: ModelDefinition
    let version: Int64
    let backend: any ModelBackend
    let statistics: VersionStatistics
    /// Where the artifact was loaded from, and when it was last modified:
    /// poll mode reloads a version whose artifact changed.
    let artifact: URL
    let artifactModified: Date?
    /// Unique per load in this process (response cache keys use it).
    let instance: UInt64
    private let batcher: DynamicBatcher?
    private static let loads = Atomic<UInt64>(0)

    init(definition: ModelDefinition, version: Int64, backend: any ModelBackend, artifact: URL, artifactModified: Date?) {
        self.definition = definition
        self.version = version
        self.backend = backend
        self.artifact = artifact
        self.artifactModified = artifactModified
        self.instance = Self.loads.add(1, ordering: .relaxed).newValue
        let statistics = VersionStatistics(model: definition.name, version: version)
        self.statistics = statistics
        if let batching = definition.batching {
            batcher = DynamicBatcher(
                name: "\(definition.name)/\(version)",
                configuration: .init(maxBatchSize: definition.maxBatchSize, maxQueueDelay: batching.maxQueueDelay,
                                     maxQueueSize: batching.maxQueueSize, queueTimeout: batching.queueTimeout),
                execute: { inputs throws(BackendError) in try Self.execute(backend, inputs, statistics: statistics) })
        } else {
            batcher = nil
        }
    }

    deinit { batcher?.stop() }

    /// Stops the batcher taking new requests; those queued still complete.
    func retire() { batcher?.stop() }

    /// Runs `inputs` (`rows` rows): through the batcher when there is one, else right here.
    func infer(_ inputs: [Tensor], rows: Int, deadline: UInt64?) async throws -> (outputs: [Tensor], queueNanoseconds: UInt64) {
        if let batcher {
            do {
                return try await batcher.submit(inputs, rows: rows, deadline: deadline)
            } catch DynamicBatcher.Rejection.stopped {
                // Retired between routing and queueing: still answer, unbatched.
            }
        }
        return (try Self.execute(backend, inputs, statistics: statistics), 0)
    }

    private static func execute(_ backend: any ModelBackend, _ inputs: [Tensor], statistics: VersionStatistics) throws(BackendError) -> [Tensor] {
        let start = DispatchTime.now().uptimeNanoseconds
        let outputs = try backend.execute(inputs)
        let end = DispatchTime.now().uptimeNanoseconds
        statistics.recordExecution(rows: inputs.first?.shape.first ?? 1, input: 0, infer: end - start, output: 0)
        return outputs
    }
}
