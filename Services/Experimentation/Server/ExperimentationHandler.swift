import Contracts
import Foundation
import Logging
import MeridianRPC
import ServiceKit
import StandardProtos
import StandardServices
import SwiftProtobuf

/// `platform.experimentation.v1.ExperimentationService`: experiment
/// definitions with validation, etags and an audit log; assignment from an
/// in-memory index; exposures and events through the ingestion pipeline;
/// results computed from the stored data.
public struct ExperimentationHandler: Platform_Experimentation_V1_ExperimentationServiceHandler {
    public struct Configuration: Sendable {
        /// Most experiment keys per GetAssignments.
        public var maxAssignmentKeys = 100
        /// Most records per LogExposures or TrackEvents.
        public var maxBatch = 10_000
        /// How far in the future a record's time may be (clock skew).
        public var maxFutureSkew: TimeInterval = 300
        /// The CUPED pre-period before each unit's first exposure.
        public var cupedPreperiod: TimeInterval = 14 * 86_400

        public static var defaults: Configuration { Configuration() }
    }

    let store: any ExperimentStore
    let pipeline: IngestionPipeline
    let index: AssignmentIndex
    let tokens: PageTokenCodec
    let configuration: Configuration
    let logger: Logger

    init(store: any ExperimentStore, pipeline: IngestionPipeline, index: AssignmentIndex, pageTokenSecret: Data,
         configuration: Configuration = .defaults, logger: Logger) {
        self.store = store
        self.pipeline = pipeline
        self.index = index
        self.tokens = PageTokenCodec(secret: pageTokenSecret)
        self.configuration = configuration
        self.logger = logger
    }

    // MARK: Definitions

    public func createExperiment(request: Platform_Experimentation_V1_CreateExperimentRequest, context: ServerContext) async throws -> Experiment {
        let tenant = try TenantID.from(context)
        var draft = Self.writable(request.experiment)
        if draft.status == .unspecified { draft.status = .draft }
        if draft.hashVersion == 0 { draft.hashVersion = 2 }
        var violations = ExperimentValidation.violations(draft)
        if draft.status == .stopped {
            violations.append(FieldViolation("experiment.status", "an experiment is created in DRAFT or RUNNING"))
        }
        try check(violations)
        let key = try IdempotencyKey.of(request, requestID: request.requestID, method: "CreateExperiment", context: context)
        let experiment = draft
        let actor = Self.actor(context)
        let created = try await modify(tenant: tenant, key: experiment.key, idempotency: key) { current in
            if current != nil {
                throw RPCError.rich(.alreadyExists, "experiment \(experiment.key) already exists",
                                    reason: "EXPERIMENT_EXISTS", metadata: ["experiment_key": experiment.key])
            }
            var stored = experiment
            let now = Google_Protobuf_Timestamp(date: Date())
            stored.createTime = now
            stored.updateTime = now
            stored.etag = Self.newEtag()
            let change = ExperimentChange.with {
                $0.actor = actor
                $0.changeTime = now
                $0.after = Google_Protobuf_Struct(fields: ExperimentMask.jsonFields(stored))
            }
            return .save(stored, change: change)
        }
        index.invalidate(tenant: tenant)
        return created
    }

    public func getExperiment(request: Platform_Experimentation_V1_GetExperimentRequest, context: ServerContext) async throws -> Experiment {
        let tenant = try TenantID.from(context)
        try check(ExperimentValidation.keyViolations(request.key, field: "key"))
        guard let experiment = try await store.experiment(tenant: tenant, key: request.key) else { throw notFound(request.key) }
        return experiment
    }

    public func updateExperiment(request: Platform_Experimentation_V1_UpdateExperimentRequest, context: ServerContext) async throws -> Experiment {
        let tenant = try TenantID.from(context)
        let experimentKey = request.experiment.key
        try check(ExperimentValidation.keyViolations(experimentKey, field: "experiment.key") + ExperimentMask.violations(request.updateMask.paths))
        let key = try IdempotencyKey.of(request, requestID: request.requestID, method: "UpdateExperiment", context: context)
        let actor = Self.actor(context)
        let updated = try await modify(tenant: tenant, key: experimentKey, idempotency: key) { current in
            guard let current else { throw notFound(experimentKey) }
            let etag = request.experiment.etag
            guard etag.isEmpty || etag == current.etag else {
                throw RPCError.rich(.aborted, "etag \(etag) is stale: experiment \(experimentKey) is now at \(current.etag); read it again and retry",
                                    reason: "STALE_ETAG", metadata: ["experiment_key": experimentKey, "etag": current.etag])
            }
            var next = ExperimentMask.apply(request.updateMask.paths, from: request.experiment, to: current)
            if next.hashVersion == 0 { next.hashVersion = 2 }
            try check(ExperimentValidation.violations(next))
            guard ExperimentValidation.allowedTransition(from: current.status, to: next.status) else {
                throw RPCError.rich(.failedPrecondition,
                                    "status cannot change from \(current.status) to \(next.status); allowed: DRAFT to RUNNING, RUNNING to STOPPED, STOPPED to RUNNING",
                                    reason: "INVALID_STATUS_CHANGE", metadata: ["experiment_key": experimentKey])
            }
            if current.status == .running, next.status == .running {
                let moving = ExperimentValidation.reassigningChanges(from: current, to: next)
                if !moving.isEmpty {
                    throw RPCError.rich(.failedPrecondition,
                                        "experiment \(experimentKey) is running: changing \(moving.joined(separator: ", ")) would move units already assigned; stop it and create a new experiment instead",
                                        reason: "REASSIGNING_CHANGE", metadata: ["experiment_key": experimentKey, "fields": moving.joined(separator: ",")])
                }
            }
            let changed = ExperimentMask.changedFields(from: current, to: next)
            guard !changed.isEmpty else { return .none(current) }
            next.updateTime = Google_Protobuf_Timestamp(date: Date())
            next.etag = Self.newEtag()
            let before = ExperimentMask.jsonFields(current), after = ExperimentMask.jsonFields(next)
            let change = ExperimentChange.with {
                $0.actor = actor
                $0.changeTime = next.updateTime
                $0.changedFields = changed
                $0.before = Google_Protobuf_Struct(fields: Dictionary(uniqueKeysWithValues: changed.map {
                    ($0, before[ExperimentMask.jsonName($0)] ?? Google_Protobuf_Value(nilLiteral: ())) }))
                $0.after = Google_Protobuf_Struct(fields: Dictionary(uniqueKeysWithValues: changed.map {
                    ($0, after[ExperimentMask.jsonName($0)] ?? Google_Protobuf_Value(nilLiteral: ())) }))
            }
            return .save(next, change: change)
        }
        index.invalidate(tenant: tenant)
        return updated
    }

    public func listExperiments(request: Platform_Experimentation_V1_ListExperimentsRequest, context: ServerContext) async throws -> Platform_Experimentation_V1_ListExperimentsResponse {
        let tenant = try TenantID.from(context)
        let pageSize = try effectivePageSize(request.pageSize)
        let fingerprint = "list|\(request.status.rawValue)"
        let cursor = request.pageToken.isEmpty ? nil : try tokens.decode(request.pageToken, requestFingerprint: fingerprint)
        let status: Experiment.Status? = request.status == .unspecified ? nil : request.status
        let page = try await store.list(tenant: tenant, status: status, afterKey: cursor?.id, limit: pageSize + 1)
        return .with { response in
            response.experiments = Array(page.prefix(pageSize))
            if page.count > pageSize, let last = response.experiments.last {
                response.nextPageToken = tokens.encode(PageCursor(value: last.key, id: last.key), requestFingerprint: fingerprint)
            }
        }
    }

    public func listExperimentChanges(request: Platform_Experimentation_V1_ListExperimentChangesRequest, context: ServerContext) async throws -> Platform_Experimentation_V1_ListExperimentChangesResponse {
        let tenant = try TenantID.from(context)
        try check(ExperimentValidation.keyViolations(request.key, field: "key"))
        let pageSize = try effectivePageSize(request.pageSize)
        let fingerprint = "changes|\(request.key)"
        let cursor = request.pageToken.isEmpty ? nil : try tokens.decode(request.pageToken, requestFingerprint: fingerprint)
        guard try await store.experiment(tenant: tenant, key: request.key) != nil else { throw notFound(request.key) }
        let page = try await store.changes(tenant: tenant, key: request.key, before: cursor.flatMap { Int64($0.value) }, limit: pageSize + 1)
        return .with { response in
            response.changes = page.prefix(pageSize).map(\.change)
            if page.count > pageSize, let last = page.prefix(pageSize).last {
                response.nextPageToken = tokens.encode(PageCursor(value: String(last.sequence), id: request.key), requestFingerprint: fingerprint)
            }
        }
    }

    // MARK: Assignment

    /// The service as hosted: the generated methods, with GetAssignments
    /// decoding its request straight into an `AssignmentsQuery`.
    var hostedService: any RPCService {
        replacingMethods([
            .unary(Platform_Experimentation_V1_ExperimentationService.Method.getAssignments,
                   decode: { payload throws(RPCError) in try AssignmentsQuery(payload: payload) },
                   immediately: { query, context in try assignmentsAtOnce(query, context: context) }) { query, context in
                try await getAssignments(query, context: context)
            },
        ])
    }

    public func getAssignments(request: Platform_Experimentation_V1_GetAssignmentsRequest, context: ServerContext) async throws -> Platform_Experimentation_V1_GetAssignmentsResponse {
        try await getAssignments(AssignmentsQuery(request), context: context)
    }

    /// GetAssignments as served: the request decoded by `AssignmentsQuery`
    /// straight from its bytes (see `hostedService`).
    func getAssignments(_ request: AssignmentsQuery, context: ServerContext) async throws -> Platform_Experimentation_V1_GetAssignmentsResponse {
        let tenant = try TenantID.from(context)
        try check(request)
        let selected = try select(request, from: try await index.snapshot(tenant: tenant))
        // Sticky experiments first look up the unit's stored variations, in one read.
        let stickyUnits = Self.stickyUnits(of: selected, request.attributes)
        let stored = stickyUnits.isEmpty ? [:] : try await store.stickyVariations(tenant: tenant, units: stickyUnits)
        return assign(request, selected, stored: stored, tenant: tenant, context: context)
    }

    /// GetAssignments answered on the event loop: when the tenant's
    /// experiments are loaded and none of those asked for needs the unit's
    /// stored (sticky) variations; nil otherwise.
    func assignmentsAtOnce(_ request: AssignmentsQuery, context: ServerContext) throws -> Platform_Experimentation_V1_GetAssignmentsResponse? {
        let tenant = try TenantID.from(context)
        try check(request)
        guard let snapshot = index.loadedSnapshot(tenant: tenant) else { return nil }
        let selected = try select(request, from: snapshot)
        guard Self.stickyUnits(of: selected, request.attributes).isEmpty else { return nil }
        return assign(request, selected, stored: [:], tenant: tenant, context: context)
    }

    private func check(_ request: AssignmentsQuery) throws {
        var violations: [FieldViolation] = []
        if request.experimentKeys.count > configuration.maxAssignmentKeys {
            violations.append(FieldViolation("experiment_keys", "at most \(configuration.maxAssignmentKeys) keys, got \(request.experimentKeys.count)"))
        }
        if request.attributesSize > ExperimentValidation.maxConditionBytes {
            violations.append(FieldViolation("attributes", "at most 64 KiB, got \(request.attributesSize) bytes"))
        }
        try check(violations)
    }

    /// The experiments asked for (all serving ones when none are named).
    private func select(_ request: AssignmentsQuery, from snapshot: AssignmentIndex.Snapshot) throws -> Selection {
        guard !request.experimentKeys.isEmpty else { return Selection(snapshot: snapshot, experiments: snapshot.serving) }
        return Selection(snapshot: snapshot, experiments: try request.experimentKeys.map { key in
            guard let position = snapshot.byKey[key] else { throw notFound(key) }
            return snapshot.experiments[position]
        })
    }

    private struct Selection {
        let snapshot: AssignmentIndex.Snapshot
        let experiments: [AssignableExperiment]
    }

    private static func stickyUnits(of selected: Selection, _ attributes: [String: JSONValue]) -> [StickyUnit] {
        var units: [StickyUnit] = []
        for experiment in selected.experiments where experiment.isSticky {
            if let unit = experiment.stickyUnit(attributes) { units.append(StickyUnit(experimentKey: experiment.key, unitID: unit)) }
        }
        return units
    }

    /// Decides every selected experiment for the unit and writes the
    /// response; queues first sticky assignments and exposures.
    private func assign(_ request: AssignmentsQuery, _ selection: Selection, stored: [StickyUnit: String],
                        tenant: TenantID, context: ServerContext) -> Platform_Experimentation_V1_GetAssignmentsResponse {
        let selected = selection.experiments
        let snapshot = selection.snapshot
        let attributes = request.attributes
        let now = Date()
        var response = Platform_Experimentation_V1_GetAssignmentsResponse()
        var newSticky: [StickyRecord] = []
        var exposures: [ExposureRecord] = []
        var lookups = AssignableExperiment.UnitLookups(conditionCount: snapshot.conditionCount)
        let encoded = withUnsafeTemporaryAllocation(of: AssignableExperiment.Decision.self, capacity: selected.count) { decisions in
            for position in selected.indices {
                // `selected` holds every experiment for the whole call: borrowing
                // each one spares a retain and release per experiment (~2% of a call).
                Unmanaged.passUnretained(selected[position])._withUnsafeGuaranteedRef { experiment in
                    var unit: StickyUnit?
                    if experiment.isSticky { unit = experiment.stickyUnit(attributes).map { StickyUnit(experimentKey: experiment.key, unitID: $0) } }
                    let decision = experiment.decide(attributes, now: now, stickyVariation: unit.flatMap { stored[$0] }, lookups: &lookups)
                    (decisions.baseAddress! + position).initialize(to: decision)
                    if let unit, decision.inExperiment, !decision.sticky {
                        newSticky.append(StickyRecord(unit: unit, variationKey: experiment.variationKeys[decision.index]))
                    }
                    if request.logExposures, decision.inExperiment, let index = decision.unitIndex {
                        let variationKey = experiment.variationKeys[decision.index], unitID = lookups.units[index].value
                        exposures.append(ExposureRecord(experimentKey: experiment.key, variationKey: variationKey, unitID: unitID, time: now,
                                                        exposureID: Self.derivedExposureID(variation: variationKey, unit: unitID),
                                                        attributesJSON: "{}"))
                    }
                }
            }
            // Decisions are plain values: the memory is handed back without deinitializing.
            return AssignmentsEncoder.encode(UnsafeBufferPointer(decisions), of: selected, units: lookups.units)
        }
        context.appendEncodedResponseFields(encoded)
        // First assignments are stored in the background; until then the
        // hash gives the same variation, so an answer never changes.
        if !newSticky.isEmpty, !pipeline.submitWithoutWaiting(IngestionBatch(tenant: tenant, sticky: newSticky)) {
            logger.warning("sticky assignments not stored: ingestion queue full", metadata: ["count": "\(newSticky.count)"])
        }
        if request.logExposures {
            response.exposuresLogged = exposures.isEmpty || pipeline.submitWithoutWaiting(IngestionBatch(tenant: tenant, exposures: exposures))
        }
        return response
    }

    // MARK: Exposures and events

    public func logExposures(request: Platform_Experimentation_V1_LogExposuresRequest, context: ServerContext) async throws -> Platform_Experimentation_V1_LogExposuresResponse {
        let tenant = try TenantID.from(context)
        try checkBatchSize(request.exposures.count, field: "exposures")
        let snapshot = try await index.snapshot(tenant: tenant)
        let now = Date()
        var violations: [FieldViolation] = []
        var records: [ExposureRecord] = []
        records.reserveCapacity(request.exposures.count)
        for (position, exposure) in request.exposures.enumerated() {
            let field = "exposures[\(position)]"
            if let experiment = snapshot.byKey[exposure.experimentKey].map({ snapshot.experiments[$0].experiment }) {
                if !experiment.variations.contains(where: { $0.key == exposure.variationKey }) {
                    violations.append(FieldViolation("\(field).variation_key", "experiment \(exposure.experimentKey) has no variation \"\(exposure.variationKey)\""))
                }
            } else {
                violations.append(FieldViolation("\(field).experiment_key", "no experiment \"\(exposure.experimentKey)\""))
            }
            violations += unitViolations(exposure.unitID, field: field)
            violations += idViolations(exposure.exposureID, field: "\(field).exposure_id")
            let time = exposure.hasTime ? exposure.time.date : now
            violations += timeViolations(time, now: now, field: field)
            violations += attributeViolations(exposure.attributes, field: field)
            records.append(ExposureRecord(
                experimentKey: exposure.experimentKey, variationKey: exposure.variationKey, unitID: exposure.unitID, time: time,
                exposureID: exposure.exposureID.isEmpty ? Self.derivedExposureID(variation: exposure.variationKey, unit: exposure.unitID) : exposure.exposureID,
                attributesJSON: Self.json(exposure.attributes)))
        }
        try check(violations)
        let key = try IdempotencyKey.of(request, requestID: request.requestID, method: "LogExposures", context: context)
        let counts = try await ingest(IngestionBatch(tenant: tenant, exposures: records, idempotency: key), as: Platform_Experimentation_V1_LogExposuresResponse.self) { counts in
            .with {
                $0.accepted = Int32(counts.accepted)
                $0.duplicates = Int32(counts.duplicates)
            }
        }
        return counts
    }

    public func trackEvents(request: Platform_Experimentation_V1_TrackEventsRequest, context: ServerContext) async throws -> Platform_Experimentation_V1_TrackEventsResponse {
        let tenant = try TenantID.from(context)
        try checkBatchSize(request.events.count, field: "events")
        let now = Date()
        var violations: [FieldViolation] = []
        var records: [EventRecord] = []
        records.reserveCapacity(request.events.count)
        for (position, event) in request.events.enumerated() {
            let field = "events[\(position)]"
            if !ExperimentValidation.isKey(event.eventKey, maxLength: 128) {
                violations.append(FieldViolation("\(field).event_key", "must be 1-128 characters of [A-Za-z0-9._-]"))
            }
            violations += unitViolations(event.unitID, field: field)
            violations += idViolations(event.eventID, field: "\(field).event_id")
            if !event.value.isFinite { violations.append(FieldViolation("\(field).value", "must be finite, got \(event.value)")) }
            let time = event.hasTime ? event.time.date : now
            violations += timeViolations(time, now: now, field: field)
            violations += attributeViolations(event.attributes, field: field)
            records.append(EventRecord(eventKey: event.eventKey, unitID: event.unitID, value: event.value, time: time,
                                       eventID: event.eventID.isEmpty ? nil : event.eventID, attributesJSON: Self.json(event.attributes)))
        }
        try check(violations)
        let key = try IdempotencyKey.of(request, requestID: request.requestID, method: "TrackEvents", context: context)
        return try await ingest(IngestionBatch(tenant: tenant, events: records, idempotency: key), as: Platform_Experimentation_V1_TrackEventsResponse.self) { counts in
            .with {
                $0.accepted = Int32(counts.accepted)
                $0.duplicates = Int32(counts.duplicates)
            }
        }
    }

    /// Sends a batch through the pipeline and turns its outcome into the
    /// response, a replay, or the backpressure error.
    private func ingest<Response: SwiftProtobuf.Message>(
        _ batch: IngestionBatch, as: Response.Type, response build: @escaping @Sendable (IngestionCounts) -> Response
    ) async throws -> Response {
        var batch = batch
        batch.response = { counts in (try? build(counts).serializedBytes()) ?? Data() }
        let result: IngestionResult
        do {
            result = try await pipeline.submit(batch)
        } catch IngestionPipeline.SubmitError.full(let delay) {
            let milliseconds = Int(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)
            let message = "the ingestion queue is full; nothing was stored: retry the same request after \(milliseconds) ms"
            throw RPCError(.unavailable, message, details: StatusDetails.retryInfo(
                delayMilliseconds: milliseconds, reason: "INGESTION_QUEUE_FULL", code: .unavailable, message: message))
        } catch IngestionPipeline.SubmitError.closed {
            throw RPCError(.unavailable, "the service is shutting down; retry on another replica")
        }
        switch result {
        case .stored(let counts): return build(counts)
        case .replayed(let data): return try Response(serializedBytes: data)
        case .conflict: throw batch.idempotency?.conflict ?? RPCError(.internal, "idempotency conflict without a key")
        }
    }

    // MARK: Results

    public func getResults(request: Platform_Experimentation_V1_GetResultsRequest, context: ServerContext) async throws -> Platform_Experimentation_V1_GetResultsResponse {
        let tenant = try TenantID.from(context)
        var violations = ExperimentValidation.keyViolations(request.experimentKey, field: "experiment_key")
        if !ExperimentValidation.isKey(request.metricKey, maxLength: 128) {
            violations.append(FieldViolation("metric_key", "must be 1-128 characters of [A-Za-z0-9._-]"))
        }
        if !(request.alpha == 0 || (request.alpha > 0 && request.alpha <= 0.5)) {
            violations.append(FieldViolation("alpha", "must be in (0, 0.5], or 0 for 0.05; got \(request.alpha)"))
        }
        if !request.covariateMetricKey.isEmpty && !request.cuped {
            violations.append(FieldViolation("covariate_metric_key", "only used with cuped"))
        }
        try check(violations)
        guard let experiment = try await store.experiment(tenant: tenant, key: request.experimentKey) else { throw notFound(request.experimentKey) }
        guard experiment.status != .draft else {
            throw RPCError.rich(.failedPrecondition, "experiment \(experiment.key) never ran (DRAFT): there are no results",
                                reason: "EXPERIMENT_NOT_STARTED", metadata: ["experiment_key": experiment.key])
        }
        let units = try await store.unitMetrics(
            tenant: tenant, experimentKey: experiment.key, metricKey: request.metricKey,
            covariateKey: request.cuped ? (request.covariateMetricKey.isEmpty ? request.metricKey : request.covariateMetricKey) : nil,
            preperiod: configuration.cupedPreperiod)
        return ExperimentResults.compute(
            experiment: experiment, metricKey: request.metricKey, units: units, cuped: request.cuped,
            sequential: request.kind == .sequential, alpha: request.alpha == 0 ? 0.05 : request.alpha)
    }

    // MARK: Helpers

    private func modify(tenant: TenantID, key: String, idempotency: IdempotencyKey?,
                        decide: @escaping @Sendable (Experiment?) throws -> ExperimentWrite) async throws -> Experiment {
        do {
            switch try await store.modify(tenant: tenant, key: key, idempotency: idempotency, decide: decide) {
            case .applied(let experiment): return experiment
            case .replayed(let data): return try Experiment(serializedBytes: data)
            }
        } catch ExperimentStoreError.idempotencyConflict {
            throw idempotency?.conflict ?? RPCError(.internal, "idempotency conflict without a key")
        }
    }

    private func checkBatchSize(_ count: Int, field: String) throws {
        guard count >= 1, count <= configuration.maxBatch else {
            throw RPCError.invalidArgument(violations: [FieldViolation(field, "needs 1 to \(configuration.maxBatch) records, got \(count)")])
        }
    }

    private func unitViolations(_ unitID: String, field: String) -> [FieldViolation] {
        if unitID.isEmpty { return [FieldViolation("\(field).unit_id", "is required")] }
        if unitID.utf8.count > 256 { return [FieldViolation("\(field).unit_id", "at most 256 characters")] }
        return []
    }

    private func idViolations(_ id: String, field: String) -> [FieldViolation] {
        id.utf8.count > 256 ? [FieldViolation(field, "at most 256 characters")] : []
    }

    private func timeViolations(_ time: Date, now: Date, field: String) -> [FieldViolation] {
        time.timeIntervalSince(now) > configuration.maxFutureSkew
            ? [FieldViolation("\(field).time", "is more than \(Int(configuration.maxFutureSkew / 60)) minutes in the future")] : []
    }

    private func attributeViolations(_ attributes: [String: String], field: String) -> [FieldViolation] {
        if attributes.count > 50 { return [FieldViolation("\(field).attributes", "at most 50 entries, got \(attributes.count)")] }
        if attributes.contains(where: { $0.key.count > 256 || $0.value.count > 256 }) {
            return [FieldViolation("\(field).attributes", "keys and values at most 256 characters")]
        }
        return []
    }

    private func check(_ violations: [FieldViolation]) throws {
        if !violations.isEmpty { throw RPCError.invalidArgument(violations: violations) }
    }

    private func notFound(_ key: String) -> RPCError {
        RPCError.rich(.notFound, "experiment \(key) not found", reason: "EXPERIMENT_NOT_FOUND", metadata: ["experiment_key": key])
    }

    /// The exposure id LogExposures derives when none is given: a unit's
    /// repeated views of one variation count once. Length-prefixed so no two
    /// (variation, unit) pairs share an id.
    static func derivedExposureID(variation: String, unit: String) -> String {
        "\(variation.utf8.count):\(variation)/\(unit)"
    }

    static func json(_ attributes: [String: String]) -> String {
        guard !attributes.isEmpty,
              let data = try? JSONSerialization.data(withJSONObject: attributes, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// The fields a client may set; output-only ones are cleared.
    static func writable(_ experiment: Experiment) -> Experiment {
        var copy = experiment
        copy.clearCreateTime()
        copy.clearUpdateTime()
        copy.etag = ""
        return copy
    }

    static func newEtag() -> String {
        String(UInt64.random(in: 1...UInt64.max), radix: 36)
    }

    /// Who made a change: the `x-user-id` metadata a trusted caller sets for
    /// its user, else the tenant itself.
    static func actor(_ context: ServerContext) -> String {
        if let user = context.requestMetadata["x-user-id"], !user.isEmpty { return String(user.prefix(256)) }
        return "tenant:" + (context.requestMetadata["x-tenant-id"] ?? "")
    }
}

extension AssignableExperiment {
    /// Whether GetAssignments without keys evaluates it: running, or stopped
    /// with a winner.
    var isServing: Bool {
        experiment.status == .running || (experiment.status == .stopped && !experiment.forcedVariationKey.isEmpty)
    }
}
