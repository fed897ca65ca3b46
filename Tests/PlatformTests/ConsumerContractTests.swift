import Contracts
import Foundation
import PersonalizationServer
import SwiftProtobuf
import Testing

/// The consumers' side of the contracts: what personalization (and the
/// feature store, as a follower of the catalog's feed) send their providers
/// and rely on in the answers. The requests come from the consumers' own
/// request builders, so a change there changes the contract. This test
/// fails when a committed contract file differs from what it writes;
/// `RECORD_CONTRACTS=1 swift test --filter ConsumerContractTests` rewrites
/// them, and `ProviderContractTests` then proves the providers keep them.
@Suite struct ConsumerContractTests {
    typealias I = ContractFiles.Interaction
    static let settings = PersonalizationSettings.defaults
    static let catalogService = "/platform.catalog.v1.CatalogService/"

    static var personalizationToCatalog: ContractFiles.Contract {
        let rule = ContractFiles.rule
        let kitchen = CandidateFilter(categories: ["home/kitchen"]).catalogFilter(category: "home/kitchen")
        let priced = CandidateFilter(categories: ["home/kitchen"], minimumPrice: 10, maximumPrice: 150, currency: "EUR").catalogFilter(category: "home/kitchen")
        return .init(consumer: "personalization", provider: "catalog", state: "the demo tenant holds demo products sku-00000 to sku-00299", interactions: [
            I(description: "candidates of one category: in stock, of that category, newest first, at most page_size",
              method: catalogService + "ListProducts", request: ProviderRequests.candidates(filter: kitchen, pageSize: 20), rules: [
                rule("products[].product_id", ["present": true, "minCount": 1, "maxCount": 20]),
                rule("products[].availability", ["equals": "AVAILABILITY_IN_STOCK"]),
                rule("products[].categories", ["eachContains": "home/kitchen"]),
                rule("products[].update_time", ["present": true, "order": "descending"]),
                rule("products[].price.currency_code", ["present": true]),
                rule("products[].attributes.\(settings.popularityAttribute)", ["present": true, "atLeast": 0]),
              ]),
            I(description: "candidates within a price range in one currency",
              method: catalogService + "ListProducts", request: ProviderRequests.candidates(filter: priced, pageSize: 50), rules: [
                rule("products[].product_id", ["minCount": 1]),
                rule("products[].price.currency_code", ["equals": "EUR"]),
                rule("products[].price.units", ["atLeast": 10, "atMost": 150]),
              ]),
            I(description: "the products RankItems was given: found ones in request order, missing ones named",
              method: catalogService + "BatchGetProducts", request: ProviderRequests.products(["sku-00003", "nope", "sku-00001"]), rules: [
                rule("products[].product_id", ["minCount": 2, "maxCount": 2]),
                rule("products[].product_id", ["anyEquals": "sku-00003"]),
                rule("missing_product_ids[]", ["equals": "nope"]),
              ]),
            I(description: "the mirror's first page of the whole catalog: at most 1000, last page without a token",
              method: catalogService + "ListProducts", request: ProviderRequests.catalogPage(token: ""), rules: [
                rule("products[].product_id", ["minCount": 300, "maxCount": 1000]),
                rule("products[].update_time", ["present": true]),
                rule("next_page_token", ["absent": true]),
              ]),
            I(description: "another tenant sees none of the demo tenant's products",
              method: catalogService + "ListProducts", tenant: "contract-empty-tenant", request: ProviderRequests.catalogPage(token: ""), rules: [
                rule("products[].product_id", ["maxCount": 0]),
              ]),
        ])
    }

    static var personalizationToFeatureStore: ContractFiles.Contract {
        let rule = ContractFiles.rule
        let user = (settings.userFeatures + [settings.affinityFeature]).map { "\(settings.userFeatureView):\($0)" }
        let items = settings.itemFeatures.map { "\(settings.itemFeatureView):\($0)" }
        let service = "/platform.featurestore.v1.FeatureStoreService/"
        return .init(consumer: "personalization", provider: "feature-store",
                     state: "demo user features (user_stats for u1..u1000) and catalog_items following a catalog with sku-00000 to sku-00299",
                     interactions: [
            I(description: "a known user's features: join key first, then the features in request order, PRESENT",
              method: service + "GetOnlineFeatures", request: ProviderRequests.features(user, joinKey: "user_id", ids: ["u2"]), rules: [
                rule("metadata.feature_names.val", ["equals": ["user_id"] + user.map { String($0.split(separator: ":")[1]) }]),
                rule("results[].statuses", ["equals": ["PRESENT"]]),
                rule("results[].values", ["maxCount": 4, "minCount": 4]),
              ]),
            I(description: "an unknown user is NOT_FOUND per feature, never an error",
              method: service + "GetOnlineFeatures", request: ProviderRequests.features(user, joinKey: "user_id", ids: ["nobody"]), rules: [
                rule("results[].statuses", ["minCount": 4]),
                rule("results[].statuses", ["anyEquals": ["NOT_FOUND"]]),
              ]),
            I(description: "item features for a batch of candidates: one value per row in request order, unknown items NOT_FOUND",
              method: service + "GetOnlineFeatures", request: ProviderRequests.features(items, joinKey: "item_id", ids: ["sku-00001", "sku-00002", "nope"]), rules: [
                rule("results[].statuses", ["present": true, "minCount": 4]),
                rule("results[].values", ["minCount": 4]),
              ]),
        ])
    }

    static var personalizationToInference: ContractFiles.Contract {
        let rule = ContractFiles.rule
        let service = "/inference.GRPCInferenceService/"
        let rows: [Float] = [3, 180, 49.99, 1, 20, .nan, .nan, 12.99, 0, 0]
        func scores(_ version: String?) -> Inference_ModelInferRequest {
            ProviderRequests.scores(model: settings.modelName, version: version, input: settings.modelInputName, output: settings.modelOutputName,
                                    rows: 2, features: rows, routingKey: "u2", requestID: "contract")
        }
        return .init(consumer: "personalization", provider: "inference", state: "the demo model repository (deploy/models: ranker versions 1 and 2)", interactions: [
            I(description: "the control's version scores a batch: FP32 score output in raw_output_contents, the version named",
              method: service + "ModelInfer", request: scores("1"), rules: [
                rule("model_version", ["equals": "1"]),
                rule("outputs[].name", ["equals": settings.modelOutputName]),
                rule("outputs[].datatype", ["equals": "FP32"]),
                rule("raw_output_contents[]", ["minCount": 1, "maxCount": 1]),
              ]),
            I(description: "no version named: the model's routing picks one and says which",
              method: service + "ModelInfer", request: scores(nil), rules: [
                rule("model_version", ["present": true]),
                rule("raw_output_contents[]", ["minCount": 1]),
              ]),
        ])
    }

    static var personalizationToExperimentation: ContractFiles.Contract {
        let rule = ContractFiles.rule
        let service = "/platform.experimentation.v1.ExperimentationService/"
        let exposure = Platform_Experimentation_V1_Exposure.with {
            $0.experimentKey = settings.rankingExperiment
            $0.variationKey = "treatment"
            $0.unitID = "u7"
            $0.exposureID = "contract-recommendation/\(settings.rankingExperiment)"
        }
        return .init(consumer: "personalization", provider: "experimentation", state: "the demo experiments (ranker-v2 running, 50/50)", interactions: [
            I(description: "a user's assignments: the ranking experiment with its variation's model version",
              method: service + "GetAssignments", request: ProviderRequests.assignments(user: "u7", context: ["page": "home"]), rules: [
                rule("assignments[].experiment_key", ["anyEquals": settings.rankingExperiment]),
                rule("assignments[].variation_key", ["present": true]),
                rule("assignments[].value.\(settings.modelVersionKey)", ["present": true]),
                rule("assignments[].in_experiment", ["equals": true]),
              ]),
            I(description: "exposures of an answer are accepted",
              method: service + "LogExposures", request: ProviderRequests.exposures([exposure]), rules: [
                rule("accepted", ["atLeast": 0]),
              ]),
            I(description: "the same exposure again is a duplicate, not a second exposure (retries are safe)",
              method: service + "LogExposures", request: ProviderRequests.exposures([exposure]), rules: [
                rule("duplicates", ["equals": 1]),
              ]),
        ])
    }

    static var featureStoreToCatalog: ContractFiles.Contract {
        let rule = ContractFiles.rule
        return .init(consumer: "feature-store", provider: "catalog", state: "the demo tenant holds demo products sku-00000 to sku-00299", interactions: [
            I(description: "backfill: pages of 1000 with what item features need",
              method: catalogService + "ListProducts", request: Platform_Catalog_V1_ListProductsRequest.with { $0.pageSize = 1000 }, rules: [
                rule("products[].product_id", ["minCount": 300]),
                rule("products[].update_time", ["present": true]),
                rule("products[].price.units", ["present": true]),
                rule("products[].categories", ["present": true]),
                rule("products[].availability", ["present": true]),
                rule("next_page_token", ["absent": true]),
              ]),
            I(description: "a malformed resume token is INVALID_ARGUMENT (the follower then starts over), not a silent restart",
              method: catalogService + "WatchProducts", request: Platform_Catalog_V1_WatchProductsRequest.with { $0.resumeToken = "not-a-token" },
              status: "INVALID_ARGUMENT"),
        ])
    }

    static var all: [ContractFiles.Contract] {
        [personalizationToCatalog, personalizationToFeatureStore, personalizationToInference, personalizationToExperimentation, featureStoreToCatalog]
    }

    @Test func contractFilesAreCurrent() throws {
        let record = ProcessInfo.processInfo.environment["RECORD_CONTRACTS"] == "1"
        for contract in Self.all {
            let url = ContractFiles.directory.appendingPathComponent(contract.fileName)
            let data = try contract.encoded()
            if record {
                try FileManager.default.createDirectory(at: ContractFiles.directory, withIntermediateDirectories: true)
                try data.write(to: url)
                continue
            }
            let committed = try? Data(contentsOf: url)
            #expect(committed == data, "Tests/Contract/consumers/\(contract.fileName) is not what the consumer's tests write; run RECORD_CONTRACTS=1 swift test --filter ConsumerContractTests and commit it")
        }
        // No contract file without a consumer test behind it.
        let names = Set(Self.all.map(\.fileName))
        let files = try FileManager.default.contentsOfDirectory(atPath: ContractFiles.directory.path).filter { $0.hasSuffix(".json") }
        #expect(Set(files) == names, "contract files nobody writes: \(Set(files).subtracting(names))")
    }
}
