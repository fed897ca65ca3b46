import CatalogServer
import Contracts
import ExperimentationServer
import FeatureStoreServer
import Foundation
import InferenceServer
import MeridianRPC
import PersonalizationServer
import ServiceKit
import StandardProtos
import StandardServices
import Testing

/// All five services started from their own `buildService`, on loopback,
/// with the demo tenant's experiment, user features and ranker, and a small
/// demo catalog; the feature store reaches the catalog directly, while
/// personalization reaches the feature store through a proxy that can slow
/// it down. Services can be stopped and started again on their ports.
final class PlatformFixture: @unchecked Sendable {
    static let tenant = "demo"
    static let productCount = 300
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../deploy/models").standardized.path

    var catalog: ServiceHost
    var featureStore: ServiceHost
    var inference: ServiceHost?
    var experimentation: ServiceHost?
    var personalization: ServiceHost
    let proxy: DelayProxy
    let ports: [String: Int]
    let configurations: [String: ServiceConfiguration]
    let channel: RPCChannel
    let client: Platform_Personalization_V1_PersonalizationServiceClient
    let catalogChannel: RPCChannel
    let experimentationChannel: RPCChannel

    init(settings: PersonalizationSettings) async throws {
        var configurations: [String: ServiceConfiguration] = [:]
        var ports: [String: Int] = [:]
        func configuration(_ name: String) -> ServiceConfiguration {
            var configuration = ServiceConfiguration.forTesting(name: name)
            configuration.seedDemoData = true
            return configuration
        }
        // The catalog without its 10,000 demo products (slow to seed in a
        // debug build): the first few hundred, imported like any client would.
        configurations["catalog"] = .forTesting(name: "catalog")
        catalog = try await CatalogServer.buildService(configuration: configurations["catalog"]!)
        ports["catalog"] = try await catalog.start()
        catalogChannel = try RPCChannel(host: "127.0.0.1", port: ports["catalog"]!)
        let response = try await Platform_Catalog_V1_CatalogServiceClient(channel: catalogChannel).importProducts(options: Self.options()) { writer in
            try await writer.write(.with { $0.products = (0..<Self.productCount).map(DemoCatalog.product) })
        }
        #expect(response.created == Int32(Self.productCount))

        configurations["feature-store"] = configuration("feature-store")
        configurations["feature-store"]!.dependencies["catalog"] = "127.0.0.1:\(ports["catalog"]!)"
        featureStore = try await FeatureStoreServer.buildService(configuration: configurations["feature-store"]!, catalogTenants: [Self.tenant])
        ports["feature-store"] = try await featureStore.start()
        proxy = try await DelayProxy(upstreamPort: ports["feature-store"]!)

        configurations["inference"] = .forTesting(name: "inference")
        inference = try await Self.startInference(configurations["inference"]!)
        ports["inference"] = inference!.port!
        configurations["inference"]!.port = ports["inference"]!

        configurations["experimentation"] = configuration("experimentation")
        experimentation = try await ExperimentationServer.buildService(configuration: configurations["experimentation"]!)
        ports["experimentation"] = try await experimentation!.start()
        configurations["experimentation"]!.port = ports["experimentation"]!
        experimentationChannel = try RPCChannel(host: "127.0.0.1", port: ports["experimentation"]!)

        var personalizationConfiguration = ServiceConfiguration.forTesting(name: "personalization")
        personalizationConfiguration.dependencies = [
            "catalog": "127.0.0.1:\(ports["catalog"]!)", "feature-store": "127.0.0.1:\(proxy.port)",
            "inference": "127.0.0.1:\(ports["inference"]!)", "experimentation": "127.0.0.1:\(ports["experimentation"]!)",
        ]
        personalization = try await PersonalizationServer.buildService(configuration: personalizationConfiguration, settings: settings)
        ports["personalization"] = try await personalization.start()
        channel = try RPCChannel(host: "127.0.0.1", port: ports["personalization"]!)
        client = Platform_Personalization_V1_PersonalizationServiceClient(channel: channel)
        self.ports = ports
        self.configurations = configurations
        try await Self.waitUntilServing(channel)
    }

    /// Until health says SERVING, as a deployment's readiness probe waits:
    /// personalization is ready once its preloaded tenants are mirrored.
    static func waitUntilServing(_ channel: RPCChannel) async throws {
        let health = Grpc_Health_V1_HealthClient(channel: channel)
        let deadline = ContinuousClock.now + .seconds(30)
        while try await health.check(.with { $0.service = "" }).status != .serving {
            guard ContinuousClock.now < deadline else { throw RPCError(.deadlineExceeded, "personalization never became ready") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    static func startInference(_ configuration: ServiceConfiguration) async throws -> ServiceHost {
        var settings = InferenceSettings.defaults
        settings.repository = repository
        let host = try await InferenceServer.buildService(configuration: configuration, settings: settings)
        _ = try await host.start()
        return host
    }

    /// Settings for a busy two-core test machine: timeouts far above a
    /// healthy call, breakers that recover within a test.
    static var testSettings: PersonalizationSettings {
        var settings = PersonalizationSettings.defaults
        settings.timeouts.catalog = .seconds(3)
        settings.timeouts.featureStore = .seconds(3)
        settings.timeouts.inference = .seconds(3)
        settings.timeouts.experimentation = .seconds(3)
        settings.requestBudget = .seconds(15)
        settings.circuitBreaker = .init(failureThreshold: 3, openDuration: .milliseconds(300))
        settings.userFeatureCacheTTL = .milliseconds(1)
        // Mirrored before the tests ask: popularity candidates are complete.
        settings.preloadTenants = [tenant]
        return settings
    }

    static func options(tenant: String = tenant, timeout: Duration = .seconds(20), idempotencyKey: String? = nil) -> CallOptions {
        var options = CallOptions(timeout: timeout)
        options.metadata.add("x-tenant-id", tenant)
        if let idempotencyKey { options.metadata.add("idempotency-key", idempotencyKey) }
        return options
    }

    func recommend(_ request: Platform_Personalization_V1_RecommendRequest, tenant: String = tenant) async throws -> Platform_Personalization_V1_RecommendResponse {
        try await client.recommend(request, options: Self.options(tenant: tenant))
    }

    func products(_ ids: [String]) async throws -> [String: Platform_Catalog_V1_Product] {
        let response = try await Platform_Catalog_V1_CatalogServiceClient(channel: catalogChannel)
            .batchGetProducts(.with { $0.productIds = ids }, options: Self.options())
        return Dictionary(response.products.map { ($0.productID, $0) }, uniquingKeysWith: { a, _ in a })
    }

    func variation(of user: String) async throws -> String {
        let response = try await Platform_Experimentation_V1_ExperimentationServiceClient(channel: experimentationChannel).getAssignments(.with {
            $0.attributes.fields["id"] = .init(stringValue: user)
            $0.experimentKeys = ["ranker-v2"]
        }, options: Self.options())
        return response.assignments.first?.variationKey ?? ""
    }

    func stopInference() async { await inference?.shutdown(); inference = nil }
    func startInference() async throws { inference = try await Self.startInference(configurations["inference"]!) }
    func stopExperimentation() async { await experimentation?.shutdown(); experimentation = nil }
    func startExperimentation() async throws {
        experimentation = try await ExperimentationServer.buildService(configuration: configurations["experimentation"]!)
        _ = try await experimentation!.start()
    }

    func stop() async {
        await channel.close()
        await catalogChannel.close()
        await experimentationChannel.close()
        await personalization.shutdown()
        await proxy.close()
        await inference?.shutdown()
        await experimentation?.shutdown()
        await featureStore.shutdown()
        await catalog.shutdown()
    }
}

/// Polls `check` every 100 ms until it holds, failing after `seconds`.
func eventually(_ what: String, seconds: Int = 30, _ check: () async throws -> Bool) async throws {
    for _ in 0..<(seconds * 10) {
        if (try? await check()) == true { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    Issue.record("timed out waiting for: \(what)")
}

@Suite(.serialized) struct PersonalizationTests {
    @Test func recommendationsAcrossTheFiveServices() async throws {
        let platform = try await PlatformFixture(settings: PlatformFixture.testSettings)
        // Item features reach the feature store through the catalog's feed.
        try await eventually("item features backfilled") {
            let response = try await platform.recommend(.with { $0.userID = "u1"; $0.numResults = 5 })
            return !response.metadata.degraded && response.items.count == 5 && response.items.allSatisfy { $0.score != 0 }
        }

        // Filters, exclusions, availability, no duplicates.
        let kitchen = try await platform.recommend(.with {
            $0.userID = "u2"
            $0.numResults = 10
            $0.categories = ["home/kitchen", "books/fiction"]
            $0.priceRange = .with { $0.min = .with { $0.currencyCode = "EUR"; $0.units = 10 }; $0.max = .with { $0.currencyCode = "EUR"; $0.units = 150 } }
        })
        #expect(!kitchen.items.isEmpty && kitchen.items.count <= 10)
        #expect(!kitchen.metadata.degraded, "\(kitchen.metadata.degradationReasons)")
        let excluded = Set(kitchen.items.prefix(3).map(\.productID))
        let again = try await platform.recommend(.with {
            $0.userID = "u2"
            $0.numResults = 10
            $0.categories = ["home/kitchen", "books/fiction"]
            $0.priceRange = .with { $0.min = .with { $0.currencyCode = "EUR"; $0.units = 10 }; $0.max = .with { $0.currencyCode = "EUR"; $0.units = 150 } }
            $0.excludeIds = Array(excluded)
        })
        for response in [kitchen, again] {
            let products = try await platform.products(response.items.map(\.productID))
            #expect(Set(response.items.map(\.productID)).count == response.items.count, "duplicates")
            for item in response.items {
                let product = try #require(products[item.productID])
                #expect(product.availability == .inStock)
                #expect(product.categories.contains("home/kitchen") || product.categories.contains("books/fiction"))
                let price = Double(product.price.units) + Double(product.price.nanos) / 1e9
                #expect(price >= 10 && price <= 150)
                #expect(item.category == product.categories.last)
            }
        }
        #expect(excluded.isDisjoint(with: again.items.map(\.productID)))

        // Diversity: no more than 5 of one category in a 20-item answer.
        let broad = try await platform.recommend(.with { $0.userID = "u3"; $0.numResults = 20 })
        #expect(broad.items.count == 20)
        #expect(Dictionary(grouping: broad.items, by: \.category).values.allSatisfy { $0.count <= 5 })

        // The two arms of ranker-v2 get the two model versions.
        var seen: [String: String] = [:]
        for index in 1...40 where seen.count < 2 {
            let user = "u\(index)"
            let variation = try await platform.variation(of: user)
            guard seen[variation] == nil else { continue }
            let response = try await platform.recommend(.with { $0.userID = user; $0.numResults = 5 })
            #expect(response.metadata.modelName == "ranker")
            #expect(response.metadata.variations.contains { $0.experimentKey == "ranker-v2" && $0.variationKey == variation })
            seen[variation] = response.metadata.modelVersion
        }
        #expect(seen == ["control": "1", "treatment": "2"])

        // Exposures arrive in experimentation.
        try await eventually("exposures logged") {
            let results = try await Platform_Experimentation_V1_ExperimentationServiceClient(channel: platform.experimentationChannel)
                .getResults(.with { $0.experimentKey = "ranker-v2"; $0.metricKey = "purchase" }, options: PlatformFixture.options())
            return results.totalExposures >= 3
        }

        // RankItems: known products best first, unknown ones named.
        let ranked = try await platform.client.rankItems(.with {
            $0.userID = "u4"
            $0.productIds = ["sku-00003", "sku-00001", "nope", "sku-00002", "sku-00001"]
        }, options: PlatformFixture.options())
        #expect(Set(ranked.items.map(\.productID)) == ["sku-00001", "sku-00002", "sku-00003"])
        #expect(ranked.unknownProductIds == ["nope"])
        #expect(zip(ranked.items, ranked.items.dropFirst()).allSatisfy { $0.score >= $1.score })

        // Idempotency: the same key replays the same answer; another request with it is refused.
        var keyed = Platform_Personalization_V1_RecommendRequest.with { $0.userID = "u5"; $0.numResults = 3; $0.requestID = "req-1" }
        let first = try await platform.recommend(keyed)
        let replay = try await platform.recommend(keyed)
        #expect(first.metadata.recommendationID == replay.metadata.recommendationID)
        keyed.numResults = 4
        await expectStatus(.invalidArgument, mentioning: "req-1") { _ = try await platform.recommend(keyed) }

        // Bad input: clear statuses naming the field.
        await expectStatus(.invalidArgument, mentioning: "user_id") { _ = try await platform.recommend(.with { $0.numResults = 3 }) }
        for bad in [Platform_Personalization_V1_RecommendRequest.with { $0.userID = "u1"; $0.numResults = 501 },
                    .with { $0.userID = "u1"; $0.priceRange = .with { $0.min = .with { $0.currencyCode = "EUR"; $0.units = 9 }; $0.max = .with { $0.currencyCode = "EUR"; $0.units = 5 } } },
                    .with { $0.userID = "u1"; $0.categories = ["bad\"quote"] }] {
            do {
                _ = try await platform.recommend(bad)
                Issue.record("expected INVALID_ARGUMENT for \(bad)")
            } catch let error as RPCError {
                #expect(error.code == .invalidArgument)
                #expect(!error.status.fieldViolations.isEmpty)
            }
        }
        await expectStatus(.unauthenticated) {
            _ = try await platform.client.recommend(.with { $0.userID = "u1" }, options: CallOptions(timeout: .seconds(5)))
        }
        await platform.stop()
    }

    @Test func degradesWhenDependenciesFailAndRecovers() async throws {
        var settings = PlatformFixture.testSettings
        settings.timeouts.featureStore = .milliseconds(400)
        let platform = try await PlatformFixture(settings: settings)
        try await eventually("a healthy answer") {
            let response = try await platform.recommend(.with { $0.userID = "u1"; $0.numResults = 5 })
            return !response.metadata.degraded && response.items.allSatisfy { $0.score != 0 }
        }
        func reasons(_ response: Platform_Personalization_V1_RecommendResponse) -> [String: Platform_Personalization_V1_DegradationReason.Fallback] {
            Dictionary(response.metadata.degradationReasons.map { ($0.dependency, $0.fallback) }, uniquingKeysWith: { a, _ in a })
        }

        // Inference down: popularity ranking (most sold first), no model.
        await platform.stopInference()
        let popular = try await platform.recommend(.with { $0.userID = "u1"; $0.numResults = 10; $0.categories = ["home/kitchen"] })
        #expect(popular.metadata.degraded)
        #expect(reasons(popular) == ["inference": .popularityRanking])
        #expect(popular.metadata.modelName.isEmpty && popular.metadata.modelVersion.isEmpty)
        let sales = try await platform.products(popular.items.map(\.productID)).mapValues { Double($0.attributes[DemoCatalog.salesAttribute] ?? "0")! }
        #expect(popular.items.map { sales[$0.productID]! } == popular.items.map(\.score))
        #expect(zip(popular.items, popular.items.dropFirst()).allSatisfy { $0.score >= $1.score })

        // The feature store slower than its deadline, experimentation down:
        // default features, the control variation; still an answer.
        platform.proxy.setDelay(.seconds(1))
        await platform.stopExperimentation()
        let degraded = try await platform.recommend(.with { $0.userID = "u2"; $0.numResults = 10 })
        #expect(degraded.items.count == 10)
        #expect(reasons(degraded) == ["inference": .popularityRanking, "feature-store": .defaultFeatures, "experimentation": .controlVariation])
        #expect(degraded.metadata.variations.isEmpty)
        // Repeated failures open the breakers: answers stop waiting for the slow dependency.
        for _ in 0..<3 { _ = try await platform.recommend(.with { $0.userID = "u2"; $0.numResults = 3 }) }
        let fast = try await platform.recommend(.with { $0.userID = "u2"; $0.numResults = 3 })
        #expect(fast.metadata.degradationReasons.contains { $0.reason.contains("circuit open") })

        // Everything back: answers recover once the breakers close.
        platform.proxy.setDelay(.zero)
        try await platform.startInference()
        try await platform.startExperimentation()
        try await eventually("recovery") {
            let response = try await platform.recommend(.with { $0.userID = "u2"; $0.numResults = 5 })
            return !response.metadata.degraded && response.metadata.modelName == "ranker" && !response.metadata.variations.isEmpty
        }

        // The catalog down: candidates from the mirror of its feed, marked stale.
        await platform.catalog.shutdown()
        let stale = try await platform.recommend(.with { $0.userID = "u3"; $0.numResults = 5; $0.categories = ["toys/games"] })
        #expect(reasons(stale)["catalog"] == .staleCache)
        #expect(stale.items.count == 5 && stale.items.allSatisfy { $0.category == "toys/games" })
        // A tenant never mirrored has no candidates at all: UNAVAILABLE.
        await expectStatus(.unavailable, mentioning: "no candidates") {
            _ = try await platform.recommend(.with { $0.userID = "u3" }, tenant: "other")
        }
        await platform.stop()
    }
}
