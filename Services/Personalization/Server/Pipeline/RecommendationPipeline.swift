import Contracts
import Foundation
import Logging
import MeridianRPC
import Metrics
import ServiceKit
import StandardServices
import SwiftProtobuf

typealias ScoredItem = Platform_Personalization_V1_ScoredItem
typealias RankingMetadata = Platform_Personalization_V1_RankingMetadata

/// The two-stage recommender: assignment and user features (concurrently),
/// candidates from the catalog and the popularity list, item features in
/// one batched lookup, one batched model call, then ordering and
/// diversity. Each dependency that fails is replaced by its fallback and
/// named in the answer; only a catalog that yields no candidate at all
/// fails the request.
final class RecommendationPipeline: Sendable {
    private struct CandidateKey: Hashable, Sendable {
        var tenant: TenantID
        var filter: CandidateFilter
        var categories: [String?]
    }

    private struct UserKey: Hashable, Sendable {
        var tenant: TenantID
        var user: String
    }


    let settings: PersonalizationSettings
    let steps: DependencySteps
    let mirror: CatalogMirror
    let exposures: ExposureBatcher
    private let userCache: ExpiringCache<UserKey, UserFeatures>
    private let candidateCache: ExpiringCache<CandidateKey, [CatalogItem]>
    private let itemCache: ItemFeatureCache
    /// Requests built from the same pool miss the same items together (a
    /// cold or just-invalidated cache): one lookup serves them all.
    private let itemFetches = SingleFlight<ItemFetchKey, Result<[[Float]], DependencyFailure>>()

    private struct ItemFetchKey: Hashable, Sendable {
        var tenant: TenantID
        var ids: [String]
    }
    private let poolFetches = SingleFlight<CandidateKey, ([CatalogItem], DependencyFailure?)>()
    let logger: Logger

    init(settings: PersonalizationSettings, steps: DependencySteps, mirror: CatalogMirror, exposures: ExposureBatcher, logger: Logger) {
        self.settings = settings
        self.exposures = exposures
        self.steps = steps
        self.mirror = mirror
        self.userCache = ExpiringCache(timeToLive: settings.userFeatureCacheTTL, capacity: settings.cacheCapacity)
        self.candidateCache = ExpiringCache(timeToLive: settings.candidateCacheTTL, capacity: settings.cacheCapacity)
        self.itemCache = ItemFeatureCache(timeToLive: settings.itemFeatureCacheTTL, capacity: settings.cacheCapacity)
        self.logger = logger
    }

    // MARK: Recommend

    func recommend(user: String, numResults: Int, context: [String: String], filter: CandidateFilter, exclude: Set<String>,
                   tenant: TenantID, budget: RequestBudget) async throws -> Platform_Personalization_V1_RecommendResponse {
        let recommendationID = UUID().uuidString.lowercased()
        mirror.follow(tenant)
        var degradation = Degradation()
        async let assignmentResult = Self.timed("assignment") { await self.steps.assignments(user: user, context: context, tenant: tenant, budget: budget) }
        let features = await userFeatures(user: user, tenant: tenant, budget: budget, degradation: &degradation)

        let affinity = filter.categories.isEmpty ? features.favoriteCategory : nil
        let retrieval = await Self.timed("candidates") {
            await self.candidates(filter: filter, affinity: affinity, exclude: exclude, tenant: tenant, budget: budget)
        }
        if let failure = retrieval.failure {
            guard !retrieval.items.isEmpty else {
                throw RPCError(.unavailable, "no candidates: the catalog cannot be asked (\(failure.reason)) and no copy of it is at hand",
                               details: StatusDetails.retryInfo(delayMilliseconds: 1000, reason: "CATALOG_UNAVAILABLE", code: .unavailable,
                                                                message: "catalog unavailable"))
            }
            degradation.record(failure, fallback: .staleCache)
        }
        let assignment = await resolve(assignmentResult, degradation: &degradation)
        let ranked = await rank(retrieval.items, user: user, features: features, assignment: assignment,
                                recommendationID: recommendationID, tenant: tenant, budget: budget, degradation: &degradation)
        let chosen = diversify(ranked.items, count: numResults, maxPerCategory: settings.maxPerCategory) { $0.item.category }
        logExposures(assignment, recommendationID: recommendationID, modelVersion: ranked.version, tenant: tenant)
        return .with {
            $0.items = chosen.map { scored in .with { $0.productID = scored.item.productID; $0.score = scored.score; $0.category = scored.item.category } }
            $0.metadata = metadata(recommendationID, ranked: ranked, assignment: assignment, degradation: degradation)
        }
    }

    // MARK: RankItems

    func rankItems(user: String, productIDs: [String], context: [String: String], tenant: TenantID,
                   budget: RequestBudget) async -> Platform_Personalization_V1_RankItemsResponse {
        let recommendationID = UUID().uuidString.lowercased()
        mirror.follow(tenant)
        var degradation = Degradation()
        async let assignmentResult = Self.timed("assignment") { await self.steps.assignments(user: user, context: context, tenant: tenant, budget: budget) }
        async let productsResult = Self.timed("candidates") { await self.products(productIDs, tenant: tenant, budget: budget) }
        let features = await userFeatures(user: user, tenant: tenant, budget: budget, degradation: &degradation)
        let items: [CatalogItem]
        var unknown: [String] = []
        switch await productsResult {
        case .success(let found):
            items = productIDs.compactMap { found[$0] }
            unknown = productIDs.filter { found[$0] == nil }
        case .failure(let failure):
            degradation.record(failure, fallback: .staleCache)
            let mirrored = mirror.items(tenant, ids: productIDs)
            items = productIDs.map { mirrored[$0] ?? CatalogItem(unknownProductID: $0) }
        }
        let assignment = await resolve(assignmentResult, degradation: &degradation)
        let ranked = await rank(items, user: user, features: features, assignment: assignment,
                                recommendationID: recommendationID, tenant: tenant, budget: budget, degradation: &degradation)
        logExposures(assignment, recommendationID: recommendationID, modelVersion: ranked.version, tenant: tenant)
        return .with {
            $0.items = ranked.items.map { scored in .with { $0.productID = scored.item.productID; $0.score = scored.score; $0.category = scored.item.category } }
            $0.unknownProductIds = unknown
            $0.metadata = metadata(recommendationID, ranked: ranked, assignment: assignment, degradation: degradation)
        }
    }

    // MARK: Steps

    private func userFeatures(user: String, tenant: TenantID, budget: RequestBudget, degradation: inout Degradation) async -> UserFeatures {
        let key = UserKey(tenant: tenant, user: user)
        if let cached = userCache.value(for: key) { return cached }
        switch await Self.timed("user_features", { await self.steps.userFeatures(user: user, tenant: tenant, budget: budget) }) {
        case .success(let features):
            userCache.store(features, for: key)
            return features
        case .failure(let failure):
            degradation.record(failure, fallback: .defaultFeatures)
            return .missing(count: settings.userFeatures.count)
        }
    }

    /// Item features from the cache, the misses in one batched lookup. A
    /// cached row is dropped when it expires or the tenant's catalog changes
    /// (the feature store derives these features from it).
    private func itemFeatures(_ items: [CatalogItem], tenant: TenantID, budget: RequestBudget,
                              degradation: inout Degradation) async -> [[Float]] {
        let generation = mirror.generation(tenant)
        var rows = itemCache.rows(items.map(\.productID), tenant: tenant, generation: generation)
        let missing = rows.indices.filter { rows[$0] == nil }
        guard !missing.isEmpty else { return rows.map { $0! } }
        let ids = missing.map { items[$0].productID }
        let fetched = await itemFetches.run(key: ItemFetchKey(tenant: tenant, ids: ids)) {
            await Self.timed("item_features") { await self.steps.itemFeatures(items: ids, tenant: tenant, budget: budget) }
        }
        switch fetched {
        case .success(let fetched):
            var complete: [(id: String, row: [Float])] = []
            for (index, row) in zip(missing, fetched) {
                rows[index] = row
                // Rows still missing values (an item the feature store has
                // not caught up with) are asked for again next time.
                if !row.contains(where: \.isNaN) { complete.append((items[index].productID, row)) }
            }
            itemCache.store(complete, tenant: tenant, generation: generation)
        case .failure(let failure):
            degradation.record(failure, fallback: .defaultFeatures)
        }
        let empty = Array(repeating: Float.nan, count: settings.itemFeatures.count)
        return rows.map { $0 ?? empty }
    }

    private func resolve(_ result: Result<UserAssignments, DependencyFailure>, degradation: inout Degradation) -> UserAssignments {
        switch result {
        case .success(let assignment):
            return assignment
        case .failure(let failure):
            degradation.record(failure, fallback: .controlVariation)
            return UserAssignments(modelVersion: settings.controlModelVersion)
        }
    }

    /// Candidates: products of the requested categories (else of the user's
    /// favourite one, else any) from the catalog, newest first, up to their
    /// share; then the most sold products the filter admits. The pool is
    /// over-fetched so exclusions can be dropped per request, and shared:
    /// reused until the tenant's catalog changes, refreshed in the
    /// background once expired, and fetched once however many requests miss
    /// it at the same time.
    private func candidates(filter: CandidateFilter, affinity: String?, exclude: Set<String>, tenant: TenantID,
                            budget: RequestBudget) async -> (items: [CatalogItem], failure: DependencyFailure?) {
        let categories: [String?] = filter.categories.isEmpty ? [affinity] : filter.categories.sorted().map(Optional.some)
        let key = CandidateKey(tenant: tenant, filter: filter, categories: categories)
        let generation = mirror.generation(tenant)
        var pool: [CatalogItem]
        var failure: DependencyFailure?
        if let cached = candidateCache.lookup(key, generation: generation) {
            pool = cached.value
            if !cached.isFresh {
                // Expired but unchanged: answer from it while one refresh runs
                // outside this request (a catalog change drops it instead).
                let budget = RequestBudget(callerTimeRemaining: nil, default: settings.timeouts.catalog)
                Task.detached { [self] in
                    _ = await poolFetches.run(key: key) {
                        await self.fetchPool(key: key, filter: filter, generation: generation, tenant: tenant, budget: budget)
                    }
                }
            }
        } else {
            (pool, failure) = await poolFetches.run(key: key) {
                await self.fetchPool(key: key, filter: filter, generation: generation, tenant: tenant, budget: budget)
            }
        }
        var items: [CatalogItem] = []
        items.reserveCapacity(settings.candidateCount)
        for item in pool where !exclude.contains(item.productID) {
            items.append(item)
            if items.count == settings.candidateCount { break }
        }
        return (items, failure)
    }

    /// Over-fetch beyond the candidates scored, for exclusions.
    static let overFetch = 100

    private func fetchPool(key: CandidateKey, filter: CandidateFilter, generation: UInt64, tenant: TenantID,
                           budget: RequestBudget) async -> ([CatalogItem], DependencyFailure?) {
        let total = settings.candidateCount + Self.overFetch
        let quota = filter.categories.isEmpty ? Int(Double(settings.candidateCount) * settings.affinityShare) : settings.candidateCount / 2
        let pageSize = Int32(min(1000, quota / key.categories.count + Self.overFetch / key.categories.count + 1))
        let attribute = settings.popularityAttribute
        let client = Platform_Catalog_V1_CatalogServiceClient(channel: steps.catalog.channel)
        var fromCatalog: [CatalogItem] = []
        var failure: DependencyFailure?
        await withTaskGroup(of: Result<[CatalogItem], DependencyFailure>.self) { group in
            for category in key.categories {
                let request = ProviderRequests.candidates(filter: filter.catalogFilter(category: category), pageSize: pageSize)
                group.addTask {
                    await self.steps.catalog.call("candidates", budget: budget, tenant: tenant) { options in
                        try await client.listProducts(request, options: options).products.map { CatalogItem($0, popularityAttribute: attribute) }
                    }
                }
            }
            for await result in group {
                switch result {
                case .success(let items): fromCatalog += items
                case .failure(let error): failure = error
                }
            }
        }
        var seen = Set<String>()
        var pool: [CatalogItem] = []
        pool.reserveCapacity(total)
        for item in fromCatalog where pool.count < quota + Self.overFetch && filter.admits(item) && seen.insert(item.productID).inserted {
            pool.append(item)
        }
        for item in mirror.popular(key.tenant, filter: filter, limit: total, excluding: seen) where pool.count < total {
            pool.append(item)
        }
        // A pool made without the catalog is not kept: the next request asks again.
        if failure == nil { candidateCache.store(pool, for: key, generation: generation) }
        return (pool, failure)
    }

    private func products(_ ids: [String], tenant: TenantID, budget: RequestBudget) async -> Result<[String: CatalogItem], DependencyFailure> {
        let client = Platform_Catalog_V1_CatalogServiceClient(channel: steps.catalog.channel)
        let attribute = settings.popularityAttribute
        return await steps.catalog.call("products", budget: budget, tenant: tenant) { options in
            let response = try await client.batchGetProducts(ProviderRequests.products(ids), options: options)
            return Dictionary(response.products.map { ($0.productID, CatalogItem($0, popularityAttribute: attribute)) }, uniquingKeysWith: { first, _ in first })
        }
    }

    struct Ranked: Sendable {
        var items: [(item: CatalogItem, score: Double)]
        var model: String
        var version: String
    }

    /// Scores the items with the model, best first; by popularity when the
    /// model cannot be asked.
    private func rank(_ items: [CatalogItem], user: String, features: UserFeatures, assignment: UserAssignments,
                      recommendationID: String, tenant: TenantID, budget: RequestBudget, degradation: inout Degradation) async -> Ranked {
        guard !items.isEmpty else { return Ranked(items: [], model: "", version: "") }
        let itemColumns = settings.itemFeatures.count
        let itemRows = await itemFeatures(items, tenant: tenant, budget: budget, degradation: &degradation)
        var matrix: [Float] = []
        matrix.reserveCapacity(items.count * (features.modelValues.count + itemColumns))
        for row in itemRows {
            matrix += features.modelValues
            matrix += row
        }
        let scored = await Self.timed("inference") {
            await self.steps.scores(rows: items.count, features: matrix, modelVersion: assignment.modelVersion, user: user,
                                    requestID: recommendationID, tenant: tenant, budget: budget)
        }
        switch scored {
        case .success(let answer):
            let pairs = zip(items, answer.scores).map { (item: $0, score: Double($1)) }
            return Ranked(items: pairs.sorted(by: Self.better), model: settings.modelName, version: answer.version)
        case .failure(let failure):
            degradation.record(failure, fallback: .popularityRanking)
            return Ranked(items: items.map { (item: $0, score: $0.popularity) }.sorted(by: Self.better), model: "", version: "")
        }
    }

    private static func better(_ a: (item: CatalogItem, score: Double), _ b: (item: CatalogItem, score: Double)) -> Bool {
        if a.score != b.score { return a.score > b.score }
        if a.item.popularity != b.item.popularity { return a.item.popularity > b.item.popularity }
        return a.item.productID < b.item.productID
    }

    private func metadata(_ id: String, ranked: Ranked, assignment: UserAssignments, degradation: Degradation) -> RankingMetadata {
        Counter(label: "personalization_answers_total", dimensions: [("degraded", degradation.reasons.isEmpty ? "false" : "true")]).increment()
        return .with {
            $0.recommendationID = id
            $0.modelName = ranked.model
            $0.modelVersion = ranked.version
            $0.variations = assignment.variations
            $0.degraded = !degradation.reasons.isEmpty
            $0.degradationReasons = degradation.reasons
        }
    }

    /// Exposures go to experimentation after the answer, batched, off the
    /// request's path; their ids make a retried log harmless.
    private func logExposures(_ assignment: UserAssignments, recommendationID: String, modelVersion: String, tenant: TenantID) {
        guard !assignment.exposures.isEmpty else { return }
        let now = Google_Protobuf_Timestamp(date: Date())
        let batch = assignment.exposures.map { exposure in
            var exposure = exposure
            exposure.time = now
            exposure.exposureID = "\(recommendationID)/\(exposure.experimentKey)"
            exposure.attributes = ["recommendation_id": recommendationID, "model_version": modelVersion]
            return exposure
        }
        exposures.add(batch, tenant: tenant)
    }

    private static func timed<T>(_ step: String, _ body: () async -> T) async -> T {
        let start = ContinuousClock.now
        let result = await body()
        Timer(label: "personalization_step_seconds", dimensions: [("step", step)]).recordNanoseconds((ContinuousClock.now - start).nanosecondsCount)
        return result
    }
}
