import Contracts
import Foundation
import Logging
import MeridianRPC
import Metrics
import ServiceKit
import StandardProtos
import StandardServices
import SwiftProtobuf

/// `platform.featurestore.v1.FeatureStoreService`: the registry (views and
/// feature services, applied declaratively and versioned), writes where the
/// latest event time wins, and Feast-shaped online lookups with the TTL
/// enforced.
public struct FeatureStoreHandler: Platform_Featurestore_V1_FeatureStoreServiceHandler {
    public struct Configuration: Sendable {
        /// Most rows per WriteFeatures.
        public var maxWriteRows = 10_000
        /// Most entity rows per GetOnlineFeatures.
        public var maxLookupRows = 1000
        /// Most feature references per GetOnlineFeatures.
        public var maxFeatureRefs = 1000
        /// How far ahead of this clock an event time may be.
        public var maxFutureSkew: TimeInterval = 300

        public static var defaults: Configuration { Configuration() }
    }

    let storage: any FeatureStorage
    let cache: OnlineCache
    let tokens: PageTokenCodec
    let configuration: Configuration
    let logger: Logger

    init(storage: any FeatureStorage, cache: OnlineCache, pageTokenSecret: Data, configuration: Configuration = .defaults, logger: Logger) {
        self.storage = storage
        self.cache = cache
        self.tokens = PageTokenCodec(secret: pageTokenSecret)
        self.configuration = configuration
        self.logger = logger
    }

    public typealias ApplyViewResponse = Platform_Featurestore_V1_ApplyFeatureViewResponse
    public typealias ApplyServiceResponse = Platform_Featurestore_V1_ApplyFeatureServiceResponse

    // MARK: Registry

    public func applyFeatureView(request: Platform_Featurestore_V1_ApplyFeatureViewRequest, context: ServerContext) async throws -> ApplyViewResponse {
        let tenant = try TenantID.from(context)
        var desired = request.featureView
        desired.version = 0
        desired.clearCreateTime()
        desired.clearUpdateTime()
        try check(FeatureValidation.viewViolations(desired))
        let key = try IdempotencyKey.of(request, requestID: request.requestID, method: "ApplyFeatureView", context: context)
        return try await applyView(desired, tenant: tenant, idempotency: key)
    }

    /// ApplyFeatureView for a valid definition; also how the catalog feed
    /// consumer declares its view.
    func applyView(_ view: FeatureView, tenant: TenantID, idempotency key: IdempotencyKey?) async throws -> ApplyViewResponse {
        let data = try await modifyRegistry(tenant: tenant, key: key) { views, services in
            let now = Google_Protobuf_Timestamp(date: Date())
            guard let current = views[view.name] else {
                var created = view
                created.version = 1
                created.createTime = now
                created.updateTime = now
                return .saveView(created, response: try ApplyViewResponse.with { $0.featureView = created; $0.created = true }.serializedBytes())
            }
            try Self.checkViewChange(from: current, to: view, services: services)
            var comparable = current
            comparable.version = 0
            comparable.clearCreateTime()
            comparable.clearUpdateTime()
            guard comparable != view else {
                return .none(response: try ApplyViewResponse.with { $0.featureView = current }.serializedBytes())
            }
            var updated = view
            updated.version = current.version + 1
            updated.createTime = current.createTime
            updated.updateTime = now
            return .saveView(updated, response: try ApplyViewResponse.with { $0.featureView = updated; $0.changed = true }.serializedBytes())
        }
        cache.invalidateRegistry(tenant: tenant)
        return try ApplyViewResponse(serializedBytes: data)
    }

    /// What an apply may not change: join keys, a feature's type, and
    /// features a feature service names.
    static func checkViewChange(from current: FeatureView, to next: FeatureView, services: [String: FeatureService]) throws {
        if current.entities != next.entities {
            throw RPCError.rich(.failedPrecondition,
                                "feature view \(current.name) is keyed by \(current.entities); join keys cannot change (apply a new view instead)",
                                reason: "JOIN_KEYS_CHANGED", metadata: ["feature_view": current.name])
        }
        let nextTypes = Dictionary(next.features.map { ($0.name, $0.type) }, uniquingKeysWith: { first, _ in first })
        for feature in current.features {
            if let type = nextTypes[feature.name], type != feature.type {
                throw RPCError.rich(.failedPrecondition,
                                    "feature \(current.name):\(feature.name) is \(FeatureValidation.typeName(feature.type)); its type cannot change to \(FeatureValidation.typeName(type)) (add a new feature instead)",
                                    reason: "FEATURE_TYPE_CHANGED", metadata: ["feature_view": current.name, "feature": feature.name])
            }
            if nextTypes[feature.name] == nil {
                for service in services.values.sorted(by: { $0.name < $1.name }) {
                    if service.projections.contains(where: { $0.featureViewName == current.name && $0.featureNames.contains(feature.name) }) {
                        throw RPCError.rich(.failedPrecondition,
                                            "feature \(current.name):\(feature.name) is used by feature service \(service.name); re-apply the service without it first",
                                            reason: "FEATURE_IN_USE", metadata: ["feature_view": current.name, "feature": feature.name, "feature_service": service.name])
                    }
                }
            }
        }
    }

    public func getFeatureView(request: Platform_Featurestore_V1_GetFeatureViewRequest, context: ServerContext) async throws -> FeatureView {
        let tenant = try TenantID.from(context)
        try check(FeatureValidation.nameViolations(request.name, field: "name"))
        guard let view = try await cache.registry(tenant: tenant).views[request.name] else { throw viewNotFound(request.name) }
        return view
    }

    public func listFeatureViews(request: Platform_Featurestore_V1_ListFeatureViewsRequest, context: ServerContext) async throws -> Platform_Featurestore_V1_ListFeatureViewsResponse {
        let tenant = try TenantID.from(context)
        let (page, token) = try paged(try await cache.registry(tenant: tenant).views, size: request.pageSize, token: request.pageToken, kind: "views")
        return .with { $0.featureViews = page; $0.nextPageToken = token }
    }

    public func deleteFeatureView(request: Platform_Featurestore_V1_DeleteFeatureViewRequest, context: ServerContext) async throws -> Platform_Featurestore_V1_DeleteFeatureViewResponse {
        let tenant = try TenantID.from(context)
        try check(FeatureValidation.nameViolations(request.name, field: "name"))
        let key = try IdempotencyKey.of(request, requestID: request.requestID, method: "DeleteFeatureView", context: context)
        let name = request.name
        _ = try await modifyRegistry(tenant: tenant, key: key) { views, services in
            guard views[name] != nil else { throw viewNotFound(name) }
            if let user = services.values.sorted(by: { $0.name < $1.name }).first(where: { $0.projections.contains { $0.featureViewName == name } }) {
                throw RPCError.rich(.failedPrecondition, "feature view \(name) is used by feature service \(user.name); delete or re-apply the service first",
                                    reason: "FEATURE_VIEW_IN_USE", metadata: ["feature_view": name, "feature_service": user.name])
            }
            return .deleteView(name, response: Data())
        }
        cache.invalidateRegistry(tenant: tenant)
        return .init()
    }

    public func applyFeatureService(request: Platform_Featurestore_V1_ApplyFeatureServiceRequest, context: ServerContext) async throws -> ApplyServiceResponse {
        let tenant = try TenantID.from(context)
        var desired = request.featureService
        desired.version = 0
        try check(FeatureValidation.serviceViolations(desired))
        let key = try IdempotencyKey.of(request, requestID: request.requestID, method: "ApplyFeatureService", context: context)
        let service = desired
        let data = try await modifyRegistry(tenant: tenant, key: key) { views, services in
            for projection in service.projections {
                guard let view = views[projection.featureViewName] else {
                    throw RPCError.rich(.failedPrecondition, "feature view \(projection.featureViewName) does not exist; apply it first",
                                        reason: "FEATURE_VIEW_NOT_FOUND", metadata: ["feature_view": projection.featureViewName])
                }
                for name in projection.featureNames where !view.features.contains(where: { $0.name == name }) {
                    throw RPCError.rich(.failedPrecondition, "feature view \(view.name) has no feature \(name)",
                                        reason: "FEATURE_NOT_FOUND", metadata: ["feature_view": view.name, "feature": name])
                }
            }
            guard let current = services[service.name] else {
                var created = service
                created.version = 1
                return .saveService(created, response: try ApplyServiceResponse.with { $0.featureService = created; $0.created = true }.serializedBytes())
            }
            var comparable = current
            comparable.version = 0
            guard comparable != service else {
                return .none(response: try ApplyServiceResponse.with { $0.featureService = current }.serializedBytes())
            }
            var updated = service
            updated.version = current.version + 1
            return .saveService(updated, response: try ApplyServiceResponse.with { $0.featureService = updated; $0.changed = true }.serializedBytes())
        }
        cache.invalidateRegistry(tenant: tenant)
        return try ApplyServiceResponse(serializedBytes: data)
    }

    public func getFeatureService(request: Platform_Featurestore_V1_GetFeatureServiceRequest, context: ServerContext) async throws -> FeatureService {
        let tenant = try TenantID.from(context)
        try check(FeatureValidation.nameViolations(request.name, field: "name"))
        guard let service = try await cache.registry(tenant: tenant).services[request.name] else { throw serviceNotFound(request.name) }
        return service
    }

    public func listFeatureServices(request: Platform_Featurestore_V1_ListFeatureServicesRequest, context: ServerContext) async throws -> Platform_Featurestore_V1_ListFeatureServicesResponse {
        let tenant = try TenantID.from(context)
        let (page, token) = try paged(try await cache.registry(tenant: tenant).services, size: request.pageSize, token: request.pageToken, kind: "services")
        return .with { $0.featureServices = page; $0.nextPageToken = token }
    }

    // MARK: Writes

    public func writeFeatures(request: Platform_Featurestore_V1_WriteFeaturesRequest, context: ServerContext) async throws -> Platform_Featurestore_V1_WriteFeaturesResponse {
        let tenant = try TenantID.from(context)
        try check(FeatureValidation.nameViolations(request.featureView, field: "feature_view"))
        guard (1...configuration.maxWriteRows).contains(request.rows.count) else {
            throw RPCError.invalidArgument(violations: [FieldViolation("rows", "needs 1 to \(configuration.maxWriteRows) rows, got \(request.rows.count)")])
        }
        let key = try IdempotencyKey.of(request, requestID: request.requestID, method: "WriteFeatures", context: context)
        return try await write(request.rows, to: request.featureView, tenant: tenant, idempotency: key)
    }

    /// WriteFeatures after the request checks; also how the catalog feed
    /// consumer writes item rows.
    func write(_ rows: [Platform_Featurestore_V1_FeatureRow], to viewName: String, tenant: TenantID,
               idempotency key: IdempotencyKey?) async throws -> Platform_Featurestore_V1_WriteFeaturesResponse {
        guard let view = try await cache.registry(tenant: tenant).views[viewName] else { throw viewNotFound(viewName) }
        let types = Dictionary(view.features.map { ($0.name, $0.type) }, uniquingKeysWith: { first, _ in first })
        let now = Date()
        var errors: [Platform_Featurestore_V1_RowError] = []
        var valid: [StoredRow] = []
        for (index, row) in rows.enumerated() {
            func reject(_ field: String, _ reason: String) {
                errors.append(.with { $0.rowIndex = Int32(index); $0.field = field; $0.reason = reason })
            }
            let before = errors.count
            for key in view.entities {
                guard let value = row.entityKey[key] else { reject("entity_key.\(key)", "missing join key \(key)"); continue }
                if !FeatureValidation.isJoinKeyValue(value) { reject("entity_key.\(key)", "must be a non-null string_val or int64_val") }
            }
            for key in row.entityKey.keys.sorted() where !view.entities.contains(key) {
                reject("entity_key.\(key)", "\(key) is not a join key of \(view.name) (join keys: \(view.entities.joined(separator: ", ")))")
            }
            for (name, value) in row.values.sorted(by: { $0.key < $1.key }) {
                guard let type = types[name] else { reject("values.\(name)", "feature view \(view.name) has no feature \(name)"); continue }
                if let problem = FeatureValidation.typeProblem(value, expected: type) { reject("values.\(name)", problem) }
            }
            if !row.hasEventTime {
                reject("event_time", "is required")
            } else if row.eventTime.date.timeIntervalSince(now) > configuration.maxFutureSkew {
                reject("event_time", "is more than \(Int(configuration.maxFutureSkew / 60)) minutes in the future")
            }
            guard errors.count == before else { continue }
            // Nulls are stored as absent: a row replaces the entity's previous one whole.
            let values = row.values.filter { if case .nullVal = $0.value.val { false } else { $0.value.val != nil } }
            valid.append(StoredRow(entityKey: EntityKey.encode(view.entities.map { row.entityKey[$0]! }), values: values,
                                   eventTime: row.eventTime.date))
        }
        let rejected = errors
        let outcome: WriteOutcome
        do {
            outcome = try await storage.write(tenant: tenant, view: view.name, rows: valid, idempotency: key) { stored in
                (try? Platform_Featurestore_V1_WriteFeaturesResponse.with {
                    $0.written = Int32(stored.filter { $0 }.count)
                    $0.ignoredStale = Int32(stored.filter { !$0 }.count)
                    $0.errors = rejected
                }.serializedBytes()) ?? Data()
            }
        } catch FeatureStorageError.idempotencyConflict {
            throw key?.conflict ?? RPCError(.internal, "idempotency conflict without a key")
        }
        switch outcome {
        case .replayed(let data):
            return try Platform_Featurestore_V1_WriteFeaturesResponse(serializedBytes: data)
        case .stored(let stored):
            cache.forget(tenant: tenant, view: view.name, entityKeys: valid.map(\.entityKey))
            FeatureStoreMetrics.recordWrite(tenant: tenant, view: view.name, rows: valid, stored: stored, rejected: rejected.count)
            return .with {
                $0.written = Int32(stored.filter { $0 }.count)
                $0.ignoredStale = Int32(stored.filter { !$0 }.count)
                $0.errors = rejected
            }
        }
    }

    // MARK: Lookups

    public func getOnlineFeatures(request: Platform_Featurestore_V1_GetOnlineFeaturesRequest, context: ServerContext) async throws -> Platform_Featurestore_V1_GetOnlineFeaturesResponse {
        try await getOnlineFeatures(OnlineFeaturesQuery(request), context: context)
    }

    /// The service as hosted: the generated methods, with GetOnlineFeatures
    /// keeping its feature references encoded (`OnlineFeaturesQuery`).
    var hostedService: any RPCService {
        replacingMethods([
            .unary(Platform_Featurestore_V1_FeatureStoreService.Method.getOnlineFeatures,
                   decode: { payload throws(RPCError) in try OnlineFeaturesQuery(payload: payload) },
                   immediately: { query, context in try onlineFeaturesAtOnce(query, context: context) }) { query, context in
                try await getOnlineFeatures(query, context: context)
            },
        ])
    }

    func getOnlineFeatures(_ query: OnlineFeaturesQuery, context: ServerContext) async throws -> Platform_Featurestore_V1_GetOnlineFeaturesResponse {
        let tenant = try TenantID.from(context)
        let lookup = try prepareLookup(query, registry: try await cache.registry(tenant: tenant), tenant: tenant)
        var rows: [[String: StoredRow]] = []
        for (view, keys) in zip(lookup.plan.views, lookup.keys) {
            rows.append(try await cache.rows(tenant: tenant, layout: view, entityKeys: keys))
        }
        return try answer(lookup, rows: rows, context: context)
    }

    /// GetOnlineFeatures answered on the event loop: when the tenant's
    /// registry and every row asked for are in memory; nil otherwise.
    func onlineFeaturesAtOnce(_ query: OnlineFeaturesQuery, context: ServerContext) throws -> Platform_Featurestore_V1_GetOnlineFeaturesResponse? {
        let tenant = try TenantID.from(context)
        guard let registry = cache.loadedRegistry(tenant: tenant) else { return nil }
        let lookup = try prepareLookup(query, registry: registry, tenant: tenant)
        var rows: [[String: StoredRow]] = []
        for (view, keys) in zip(lookup.plan.views, lookup.keys) {
            guard let found = cache.rowsInMemory(tenant: tenant, layout: view, entityKeys: keys) else { return nil }
            rows.append(found)
        }
        return try answer(lookup, rows: rows, context: context)
    }

    /// A checked request with its plan, and the entity keys to read in
    /// each of the plan's views (by that view's own join keys, in row order).
    private struct Lookup {
        let request: Platform_Featurestore_V1_GetOnlineFeaturesRequest
        let tenant: TenantID
        let plan: LookupPlan
        let viewCount: Int
        let rowCount: Int
        let keys: [[String]]
    }

    private func prepareLookup(_ query: OnlineFeaturesQuery, registry: OnlineCache.Registry, tenant: TenantID) throws -> Lookup {
        let request = query.request
        let plan = try lookupPlan(query, registry: registry)
        let rowCount = try checkEntities(request, plan: plan)
        let keys = plan.views.map { view in
            (0..<rowCount).map { row in EntityKey.encode(view.entities.map { request.entities[$0]!.val[row] }) }
        }
        return Lookup(request: request, tenant: tenant, plan: plan, viewCount: registry.viewCount, rowCount: rowCount, keys: keys)
    }

    /// The response to `lookup` from the rows read for each of its views.
    private func answer(_ lookup: Lookup, rows: [[String: StoredRow]], context: ServerContext) throws -> Platform_Featurestore_V1_GetOnlineFeaturesResponse {
        let request = lookup.request
        let plan = lookup.plan
        let columns = plan.columns
        let views = plan.views
        let rowCount = lookup.rowCount
        let now = Date()

        // Each view's rows in request order, reduced once to what the
        // columns need: values by position, event time, and whether the
        // row is past the TTL.
        var slots = [Int](repeating: -1, count: lookup.viewCount)
        var lookups: [[FoundRow?]] = []
        for (index, view) in views.enumerated() {
            let found = rows[index]
            slots[view.index] = lookups.count
            lookups.append(try lookup.keys[index].map { key in try found[key].map { try FoundRow($0, layout: view, now: now) } })
        }

        // Every cell of the response once, column after column; the join
        // keys first (checkEntities made sure they are the plan's).
        // Values served per view and status are counted on the way
        // (indexed by the status's number).
        var cells: [ResultCell] = []
        cells.reserveCapacity((plan.joinKeys.count + columns.count) * rowCount)
        for key in plan.joinKeys {
            for value in request.entities[key]!.val {
                cells.append(ResultCell(value: try Self.encodedJoinKey(value), status: .present, eventTime: nil))
            }
        }
        var statusCounts = [[Int]](repeating: [Int](repeating: 0, count: FeatureStoreMetrics.statusCount), count: views.count)
        for column in columns {
            let slot = slots[column.view.index]
            for found in lookups[slot] {
                let cell = Self.cell(found, position: column.position)
                statusCounts[slot][cell.status.rawValue] += 1
                cells.append(cell)
            }
        }
        context.appendEncodedResponseFields(ResultsEncoding.encode(prefix: plan.encodedMetadata, cells: cells, rows: rowCount))
        FeatureStoreMetrics.recordLookup(tenant: lookup.tenant, views: views, counts: statusCounts)
        // Every field is in the encoded bytes.
        return Platform_Featurestore_V1_GetOnlineFeaturesResponse()
    }

    /// The request's features resolved under `registry`: from the
    /// registry's plans when this selection was seen before.
    private func lookupPlan(_ query: OnlineFeaturesQuery, registry: OnlineCache.Registry) throws -> LookupPlan {
        let request = query.request
        let selection: LookupPlans.Selection
        switch request.kind {
        case .featureService(let name): selection = .service(name)
        case .features(let list): selection = query.encodedReferences.map { .encodedReferences($0) } ?? .references(list.val)
        case nil: throw RPCError.invalidArgument(violations: [FieldViolation("kind", "set either feature_service or features")])
        }
        let key = LookupPlans.Key(selection: selection, fullFeatureNames: request.fullFeatureNames)
        return try registry.plans.plan(for: key) {
            let columns = try resolveFeatures(selection, fullFeatureNames: request.fullFeatureNames, registry: registry)
            let views = Self.distinctViews(columns, viewCount: registry.viewCount)
            return LookupPlan(
                columns: columns, views: views,
                names: columns.map { request.fullFeatureNames ? "\($0.view.name)__\($0.feature)" : $0.feature },
                joinKeys: Set(views.flatMap(\.entities)).sorted())
        }
    }

    private func resolveFeatures(_ selection: LookupPlans.Selection, fullFeatureNames: Bool, registry: OnlineCache.Registry) throws -> [FeatureColumn] {
        var columns: [FeatureColumn] = []
        /// References in request order, each known and asked once.
        func appendReferences(_ references: [String]) throws {
            guard (1...configuration.maxFeatureRefs).contains(references.count) else {
                throw RPCError.invalidArgument(violations: [FieldViolation("features", "needs 1 to \(configuration.maxFeatureRefs) references, got \(references.count)")])
            }
            var seen = [Bool](repeating: false, count: registry.columnCount)
            columns.reserveCapacity(references.count)
            for (index, reference) in references.enumerated() {
                // The common case: a known reference, one dictionary lookup.
                if let column = registry.references[reference] {
                    guard !seen[column.id] else {
                        throw RPCError.invalidArgument(violations: [FieldViolation("features.val[\(index)]", "\(reference) is requested twice")])
                    }
                    seen[column.id] = true
                    columns.append(column)
                    continue
                }
                let parts = reference.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 2, FeatureValidation.isName(String(parts[0])), FeatureValidation.isName(String(parts[1])) else {
                    throw RPCError.invalidArgument(violations: [FieldViolation("features.val[\(index)]", "\"\(reference)\" is not a view:feature reference")])
                }
                guard let view = registry.views[String(parts[0])] else { throw viewNotFound(String(parts[0])) }
                guard view.features.contains(where: { $0.name == parts[1] }) else {
                    throw RPCError.rich(.notFound, "feature view \(view.name) has no feature \(parts[1])",
                                        reason: "FEATURE_NOT_FOUND", metadata: ["feature_view": view.name, "feature": String(parts[1])])
                }
                throw RPCError(.internal, "reference \(reference) missing from the resolved registry")
            }
        }
        switch selection {
        case .service(let name):
            guard let service = registry.services[name] else { throw serviceNotFound(name) }
            for projection in service.projections {
                guard let view = registry.views[projection.featureViewName] else { throw viewNotFound(projection.featureViewName) }
                let names = projection.featureNames.isEmpty ? view.features.map(\.name) : projection.featureNames
                for name in names {
                    guard let column = registry.references["\(view.name):\(name)"] else { throw viewNotFound(view.name) }
                    columns.append(column)
                }
            }
        case .references(let references):
            try appendReferences(references)
        case .encodedReferences(let bytes):
            do {
                try appendReferences(Platform_Featurestore_V1_FeatureList(serializedBytes: bytes).val)
            } catch let error as RPCError {
                throw error
            } catch {
                throw RPCError(.internal, "failed to decode platform.featurestore.v1.FeatureList: \(error)")
            }
        }
        if !fullFeatureNames {
            var owners = [ResolvedView?](repeating: nil, count: registry.featureNameCount)
            for column in columns {
                if let other = owners[column.nameID], other !== column.view {
                    throw RPCError.invalidArgument(violations: [FieldViolation(
                        "full_feature_names", "views \(other.name) and \(column.view.name) both have a feature \(column.feature); set full_feature_names")])
                }
                owners[column.nameID] = column.view
            }
        }
        return columns
    }

    /// The entity rows must name exactly the join keys the views use, in
    /// columns of one length; returns that length.
    private func checkEntities(_ request: Platform_Featurestore_V1_GetOnlineFeaturesRequest, plan: LookupPlan) throws -> Int {
        // The common case, checked without building sets: the right keys,
        // one length within bounds, valid values, matching request context.
        if let key = plan.joinKeys.first, request.entities.count == plan.joinKeys.count, let first = request.entities[key] {
            let rows = first.val.count
            if (1...configuration.maxLookupRows).contains(rows),
               plan.joinKeys.allSatisfy({ request.entities[$0]?.val.count == rows }),
               request.entities.values.allSatisfy({ $0.val.allSatisfy(FeatureValidation.isJoinKeyValue) }),
               request.requestContext.values.allSatisfy({ $0.val.count == rows }) {
                return rows
            }
        }
        let needed = Set(plan.joinKeys)
        var violations: [FieldViolation] = []
        for key in needed.sorted() where request.entities[key] == nil {
            violations.append(FieldViolation("entities", "missing join key \(key)"))
        }
        for key in request.entities.keys.sorted() where !needed.contains(key) {
            violations.append(FieldViolation("entities.\(key)", "\(key) is not a join key of the requested views"))
        }
        let lengths = Set(request.entities.values.map(\.val.count))
        if lengths.count > 1 { violations.append(FieldViolation("entities", "columns have different lengths: \(lengths.sorted())")) }
        let rows = lengths.first ?? 0
        if !(1...configuration.maxLookupRows).contains(rows), lengths.count <= 1 {
            violations.append(FieldViolation("entities", "needs 1 to \(configuration.maxLookupRows) rows, got \(rows)"))
        }
        for (key, column) in request.entities.sorted(by: { $0.key < $1.key }) {
            if let bad = column.val.firstIndex(where: { !FeatureValidation.isJoinKeyValue($0) }) {
                violations.append(FieldViolation("entities.\(key)[\(bad)]", "join key values are non-null string_val or int64_val"))
            }
        }
        for (key, column) in request.requestContext where column.val.count != rows {
            violations.append(FieldViolation("request_context.\(key)", "has \(column.val.count) values for \(rows) rows"))
        }
        try check(violations)
        return rows
    }

    /// What the response says for one feature of a stored row (nil: none stored).
    private static func cell(_ found: FoundRow?, position: Int) -> ResultCell {
        guard let found else { return ResultCell(value: [], status: .notFound, eventTime: nil) }
        if found.expired { return ResultCell(value: [], status: .outsideMaxAge, eventTime: found.eventTime) }
        if let value = found.values[position] { return ResultCell(value: value, status: .present, eventTime: found.eventTime) }
        return ResultCell(value: [], status: .nullValue, eventTime: found.eventTime)
    }

    /// A join key value (checked to be a string or an int64) as Value
    /// bytes, written directly: SwiftProtobuf's generic encoding of the
    /// small oneof message cost more than the rest of a one-row lookup's
    /// join key column. Oneof members are written even when empty or zero.
    private static func encodedJoinKey(_ value: FeatureValue) throws -> [UInt8] {
        var bytes: [UInt8] = []
        switch value.val {
        case .stringVal(let text):
            bytes.reserveCapacity(text.utf8.count + 6)
            bytes.append(2 << 3 | 2)  // Value.string_val = 2
            ProtobufWire.varint(UInt64(text.utf8.count), to: &bytes)
            bytes.append(contentsOf: text.utf8)
        case .int64Val(let number):
            ProtobufWire.varintField(4, UInt64(bitPattern: number), to: &bytes)  // Value.int64_val = 4
        default:
            bytes = try value.serializedBytes()
        }
        return bytes
    }

    /// The views of `columns`, each once, in order of first use.
    private static func distinctViews(_ columns: [FeatureColumn], viewCount: Int) -> [ResolvedView] {
        var seen = [Bool](repeating: false, count: viewCount)
        return columns.compactMap { column in
            guard !seen[column.view.index] else { return nil }
            seen[column.view.index] = true
            return column.view
        }
    }

    // MARK: Helpers

    private func modifyRegistry(tenant: TenantID, key: IdempotencyKey?,
                                decide: @escaping @Sendable ([String: FeatureView], [String: FeatureService]) throws -> RegistryWrite) async throws -> Data {
        do {
            switch try await storage.modifyRegistry(tenant: tenant, idempotency: key, decide: decide) {
            case .answered(let data): return data
            }
        } catch FeatureStorageError.idempotencyConflict {
            throw key?.conflict ?? RPCError(.internal, "idempotency conflict without a key")
        }
    }

    /// One page of a name-ordered registry map.
    private func paged<Item>(_ items: [String: Item], size: Int32, token: String, kind: String) throws -> ([Item], String) {
        let pageSize = try effectivePageSize(size)
        let cursor = token.isEmpty ? nil : try tokens.decode(token, requestFingerprint: kind)
        let names = items.keys.sorted().filter { cursor == nil || $0 > cursor!.id }
        let page = names.prefix(pageSize)
        let next = names.count > pageSize ? tokens.encode(PageCursor(value: page.last!, id: page.last!), requestFingerprint: kind) : ""
        return (page.map { items[$0]! }, next)
    }

    private func check(_ violations: [FieldViolation]) throws {
        if !violations.isEmpty { throw RPCError.invalidArgument(violations: violations) }
    }
}

/// A view as lookups need it, shared by all its columns.
final class ResolvedView: Sendable {
    let name: String
    /// Position among the registry's views, by name.
    let index: Int
    let entities: [String]
    /// The view's features in order: `FeatureColumn.position` indexes it.
    let features: [String]
    /// Seconds; 0 means values never expire.
    let ttl: TimeInterval

    init(_ view: FeatureView, index: Int) {
        name = view.name
        self.index = index
        entities = view.entities
        features = view.features.map(\.name)
        ttl = view.hasTtl ? view.ttl.timeInterval : 0
    }
}

/// A requested feature column: its view and feature name.
/// A stored row as a lookup uses it: its values encoded in the view's
/// feature order, its event time as Timestamp fields, and whether it is
/// older than the view's TTL.
struct FoundRow {
    let values: [[UInt8]?]
    let eventTime: (seconds: Int64, nanos: Int32)
    let expired: Bool

    init(_ row: StoredRow, layout: ResolvedView, now: Date) throws {
        // Re-encoded when the row was cached under another registry load
        // (a lookup racing a registry change).
        values = try row.encodedValues(for: layout)
        eventTime = row.eventSeconds
        expired = layout.ttl > 0 && now.timeIntervalSince(row.eventTime) > layout.ttl
    }
}

struct FeatureColumn: Sendable {
    let view: ResolvedView
    let feature: String
    /// Where the feature is in its view (`ResolvedView.features`).
    let position: Int
    /// Unique among the registry's columns.
    let id: Int
    /// The same for every column of this feature name, whatever its view.
    let nameID: Int
}

private func viewNotFound(_ name: String) -> RPCError {
    RPCError.rich(.notFound, "feature view \(name) not found", reason: "FEATURE_VIEW_NOT_FOUND", metadata: ["feature_view": name])
}

private func serviceNotFound(_ name: String) -> RPCError {
    RPCError.rich(.notFound, "feature service \(name) not found", reason: "FEATURE_SERVICE_NOT_FOUND", metadata: ["feature_service": name])
}

extension Google_Protobuf_Duration {
    var timeInterval: TimeInterval { Double(seconds) + Double(nanos) / 1e9 }
}
