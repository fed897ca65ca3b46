import Contracts
import Foundation
import Logging
import MeridianRPC
import ServiceKit
import StandardServices
import SwiftProtobuf

/// `platform.personalization.v1.PersonalizationService`: checks requests,
/// replays answers to retried idempotency keys, and runs the pipeline
/// within the caller's deadline.
struct PersonalizationHandler: Platform_Personalization_V1_PersonalizationServiceHandler {
    static let maxResults = 500
    static let maxCategories = 20
    static let maxExcluded = 1000
    static let maxRankedItems = 500

    let pipeline: RecommendationPipeline
    let answers: AnswerLog
    let settings: PersonalizationSettings

    func recommend(request: Platform_Personalization_V1_RecommendRequest, context: ServerContext) async throws -> Platform_Personalization_V1_RecommendResponse {
        let tenant = try TenantID.from(context)
        var violations = Self.userViolations(request.userID) + Self.contextViolations(request.context)
        if request.numResults < 0 || request.numResults > Self.maxResults {
            violations.append(FieldViolation("num_results", "must be between 0 and \(Self.maxResults), got \(request.numResults)"))
        }
        if request.categories.count > Self.maxCategories {
            violations.append(FieldViolation("categories", "at most \(Self.maxCategories) categories, got \(request.categories.count)"))
        }
        for (index, category) in request.categories.enumerated() where category.isEmpty || category.contains("\"") || category.contains("\\") {
            violations.append(FieldViolation("categories[\(index)]", "must be a non-empty category path without quotes or backslashes"))
        }
        if request.excludeIds.count > Self.maxExcluded {
            violations.append(FieldViolation("exclude_ids", "at most \(Self.maxExcluded) ids, got \(request.excludeIds.count)"))
        }
        var filter = CandidateFilter(categories: Set(request.categories))
        if request.hasPriceRange {
            let range = request.priceRange
            let minimum = range.hasMin ? range.min : nil
            let maximum = range.hasMax ? range.max : nil
            if let minimum, let maximum, minimum.currencyCode != maximum.currencyCode {
                violations.append(FieldViolation("price_range", "min and max must have the same currency, got \(minimum.currencyCode) and \(maximum.currencyCode)"))
            }
            for (name, bound) in [("price_range.min", minimum), ("price_range.max", maximum)] {
                if let bound, bound.currencyCode.count != 3 {
                    violations.append(FieldViolation("\(name).currency_code", "must be a 3-letter ISO 4217 code"))
                }
            }
            filter.minimumPrice = minimum.map(Self.amount)
            filter.maximumPrice = maximum.map(Self.amount)
            filter.currency = (minimum ?? maximum)?.currencyCode
            if let low = filter.minimumPrice, let high = filter.maximumPrice, low > high {
                violations.append(FieldViolation("price_range", "min \(low) is above max \(high)"))
            }
        }
        try check(violations)
        let results = request.numResults == 0 ? settings.defaultResults : Int(request.numResults)
        return try await idempotent(request, requestID: request.requestID, method: "Recommend", tenant: tenant, context: context) {
            try await pipeline.recommend(user: request.userID, numResults: results, context: request.context, filter: filter,
                                         exclude: Set(request.excludeIds), tenant: tenant, budget: budget(context))
        }
    }

    func rankItems(request: Platform_Personalization_V1_RankItemsRequest, context: ServerContext) async throws -> Platform_Personalization_V1_RankItemsResponse {
        let tenant = try TenantID.from(context)
        var violations = Self.userViolations(request.userID) + Self.contextViolations(request.context)
        if request.productIds.count > Self.maxRankedItems {
            violations.append(FieldViolation("product_ids", "at most \(Self.maxRankedItems) products, got \(request.productIds.count)"))
        }
        if let index = request.productIds.firstIndex(where: \.isEmpty) {
            violations.append(FieldViolation("product_ids[\(index)]", "must not be empty"))
        }
        try check(violations)
        var seen = Set<String>()
        let ids = request.productIds.filter { seen.insert($0).inserted }
        return try await idempotent(request, requestID: request.requestID, method: "RankItems", tenant: tenant, context: context) {
            guard !ids.isEmpty else {
                return .with { $0.metadata.recommendationID = UUID().uuidString.lowercased() }
            }
            return await pipeline.rankItems(user: request.userID, productIDs: ids, context: request.context, tenant: tenant, budget: budget(context))
        }
    }

    // MARK: Helpers

    private func budget(_ context: ServerContext) -> RequestBudget {
        RequestBudget(callerTimeRemaining: context.timeRemaining.map { .nanoseconds($0.nanoseconds) }, default: settings.requestBudget)
    }

    /// Replays the first answer to a reused key; runs `body` and keeps its
    /// answer otherwise.
    private func idempotent<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ request: Request, requestID: String, method: String, tenant: TenantID, context: ServerContext,
        _ body: () async throws -> Response
    ) async throws -> Response {
        guard let key = try IdempotencyKey.of(request, requestID: requestID, method: method, context: context) else {
            return try await body()
        }
        switch try await answers.lookup(key, tenant: tenant) {
        case .replay(let data): return try Response(serializedBytes: data)
        case .conflict: throw key.conflict
        case .unused: break
        }
        let response = try await body()
        try await answers.store(try response.serializedBytes(), for: key, tenant: tenant)
        return response
    }

    private func check(_ violations: [FieldViolation]) throws {
        if !violations.isEmpty { throw RPCError.invalidArgument(violations: violations) }
    }

    static func userViolations(_ user: String) -> [FieldViolation] {
        if user.isEmpty { return [FieldViolation("user_id", "is required")] }
        if user.count > 256 { return [FieldViolation("user_id", "must be at most 256 characters")] }
        return []
    }

    static func contextViolations(_ context: [String: String]) -> [FieldViolation] {
        var violations: [FieldViolation] = []
        if context.count > 20 { violations.append(FieldViolation("context", "at most 20 entries, got \(context.count)")) }
        for (key, value) in context.sorted(by: { $0.key < $1.key }) {
            if key.isEmpty || key.count > 64 { violations.append(FieldViolation("context[\(key)]", "keys must be 1 to 64 characters")) }
            if value.count > 256 { violations.append(FieldViolation("context[\(key)]", "values must be at most 256 characters")) }
        }
        return violations
    }

    static func amount(_ money: Platform_Common_V1_Money) -> Double {
        Double(money.units) + Double(money.nanos) / 1e9
    }
}
