import Contracts
import Foundation
import ServiceKit

public typealias ExperimentChange = Platform_Experimentation_V1_ExperimentChange

/// Where experiments, their audit log, exposures and events live. Business
/// rules (validation, masks, etags, allowed status changes) stay in the
/// handler; a store makes each operation atomic and scoped to its tenant.
public protocol ExperimentStore: Sendable {
    /// One experiment, or nil.
    func experiment(tenant: TenantID, key: String) async throws -> Experiment?

    /// Every experiment of the tenant (assignment keeps them in memory).
    func experiments(tenant: TenantID) async throws -> [Experiment]

    /// Changes whenever any of the tenant's experiments does: a cheap read
    /// that tells a replica whether its copy is still current.
    func experimentsVersion(tenant: TenantID) async throws -> ExperimentSetVersion

    /// One page ordered by key, after `afterKey`, optionally of one status.
    func list(tenant: TenantID, status: Experiment.Status?, afterKey: String?, limit: Int) async throws -> [Experiment]

    /// Reads the experiment, lets `decide` choose a write, and commits it
    /// with its audit entry and idempotency record in one transaction.
    func modify(tenant: TenantID, key: String, idempotency: IdempotencyKey?,
                decide: @Sendable (Experiment?) throws -> ExperimentWrite) async throws -> ExperimentModifyOutcome

    /// Audit entries of one experiment, newest first, with sequence below
    /// `before` (all when nil).
    func changes(tenant: TenantID, key: String, before: Int64?, limit: Int) async throws -> [(sequence: Int64, change: ExperimentChange)]

    /// A stored idempotent answer, or nil.
    func idempotentResponse(tenant: TenantID, key: IdempotencyKey) async throws -> IdempotencyLookup

    /// Stores the batches in one transaction, skipping duplicate ids, with
    /// each batch's idempotency record; returns each batch's outcome.
    func ingest(_ batches: [IngestionBatch]) async throws -> [IngestionResult]

    /// Stored sticky variations: for each (experiment key, unit) asked, the
    /// variation key when one is stored.
    func stickyVariations(tenant: TenantID, units: [StickyUnit]) async throws -> [StickyUnit: String]

    /// Each unit exposed to the experiment: its variations, the metric
    /// summed from its first exposure on, and the covariate summed over
    /// `preperiod` before it.
    func unitMetrics(tenant: TenantID, experimentKey: String, metricKey: String, covariateKey: String?,
                     preperiod: TimeInterval) async throws -> [UnitMetric]

    /// Drops idempotency keys past their retention.
    func pruneExpired(now: Date) async throws

    func isAvailable() async -> Bool
    func close() async throws
}

/// The state of a tenant's audit log, which every experiment write appends
/// to. The count is there because sequences are handed out before commit:
/// a transaction can commit after a later one, leaving the highest sequence
/// unchanged but not the number of entries.
public struct ExperimentSetVersion: Hashable, Sendable {
    public var changes: Int64
    public var lastSequence: Int64

    public init(changes: Int64, lastSequence: Int64) {
        self.changes = changes
        self.lastSequence = lastSequence
    }
}

/// What `modify` should do with the experiment it read.
public enum ExperimentWrite: Sendable {
    /// Store this experiment and append `change` to its audit log.
    case save(Experiment, change: ExperimentChange)
    /// Nothing to write; answer with this.
    case none(Experiment)
}

public enum ExperimentModifyOutcome: Sendable {
    case applied(Experiment)
    /// The idempotency key was used before with the same request.
    case replayed(Data)
}

public enum ExperimentStoreError: Error, Sendable {
    case idempotencyConflict
}

/// Exposures and events of one accepted request.
public struct IngestionBatch: Sendable {
    public var tenant: TenantID
    public var exposures: [ExposureRecord] = []
    public var events: [EventRecord] = []
    /// First assignments of sticky experiments; a unit's first stored
    /// variation wins. Not counted in the batch's counts.
    public var sticky: [StickyRecord] = []
    /// With the key, the response is stored in the same transaction, so a
    /// retry replays it.
    public var idempotency: IdempotencyKey?
    /// Builds the serialized response from the counts.
    public var response: @Sendable (IngestionCounts) -> Data = { _ in Data() }

    public var count: Int { exposures.count + events.count + sticky.count }
}

public enum IngestionResult: Sendable, Equatable {
    case stored(IngestionCounts)
    /// The batch's idempotency key was used before with the same request:
    /// the first answer, serialized; nothing was stored again.
    case replayed(Data)
    /// The idempotency key was used with a different request.
    case conflict
}

public struct IngestionCounts: Sendable, Equatable {
    public var accepted = 0
    public var duplicates = 0
}

public struct ExposureRecord: Sendable {
    public var experimentKey: String
    public var variationKey: String
    public var unitID: String
    public var time: Date
    public var exposureID: String
    public var attributesJSON: String
}

public struct EventRecord: Sendable {
    public var eventKey: String
    public var unitID: String
    public var value: Double
    public var time: Date
    /// Nil: no deduplication.
    public var eventID: String?
    public var attributesJSON: String
}

/// A unit of one experiment: its hash value there.
public struct StickyUnit: Sendable, Hashable {
    public var experimentKey: String
    public var unitID: String
}

public struct StickyRecord: Sendable {
    public var unit: StickyUnit
    public var variationKey: String
}

/// One unit's data for results.
public struct UnitMetric: Sendable {
    public var unitID: String
    /// The variation it saw; meaningful only when `variationCount` is 1.
    public var variationKey: String
    public var variationCount: Int
    /// Its exposures, after deduplication.
    public var exposures: Int
    public var value: Double
    public var covariate: Double
}
