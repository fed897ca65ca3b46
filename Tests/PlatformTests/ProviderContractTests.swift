import Contracts
import Foundation
import MeridianRPC
import SwiftProtobuf
import Testing

/// The providers' side of the contracts: every file in
/// `Tests/Contract/consumers/` is replayed against the real provider
/// service over loopback (all started as `PlatformFixture` does, in the
/// provider state the files name), and each broken expectation is reported
/// with the consumer, the interaction, and what differs.
@Suite struct ProviderContractTests {
    /// Request and response types of the methods contracts use.
    static let methods: [String: (any SwiftProtobuf.Message.Type, any SwiftProtobuf.Message.Type, streaming: Bool)] = [
        "/platform.catalog.v1.CatalogService/ListProducts": (Platform_Catalog_V1_ListProductsRequest.self, Platform_Catalog_V1_ListProductsResponse.self, false),
        "/platform.catalog.v1.CatalogService/BatchGetProducts": (Platform_Catalog_V1_BatchGetProductsRequest.self, Platform_Catalog_V1_BatchGetProductsResponse.self, false),
        "/platform.catalog.v1.CatalogService/WatchProducts": (Platform_Catalog_V1_WatchProductsRequest.self, Platform_Catalog_V1_ProductChange.self, true),
        "/platform.featurestore.v1.FeatureStoreService/GetOnlineFeatures": (Platform_Featurestore_V1_GetOnlineFeaturesRequest.self, Platform_Featurestore_V1_GetOnlineFeaturesResponse.self, false),
        "/inference.GRPCInferenceService/ModelInfer": (Inference_ModelInferRequest.self, Inference_ModelInferResponse.self, false),
        "/platform.experimentation.v1.ExperimentationService/GetAssignments": (Platform_Experimentation_V1_GetAssignmentsRequest.self, Platform_Experimentation_V1_GetAssignmentsResponse.self, false),
        "/platform.experimentation.v1.ExperimentationService/LogExposures": (Platform_Experimentation_V1_LogExposuresRequest.self, Platform_Experimentation_V1_LogExposuresResponse.self, false),
    ]

    struct Outcome {
        var status: RPCStatus.Code
        var message: String
        var answer: Any
    }

    static func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _: Request.Type, _: Response.Type, streaming: Bool, channel: RPCChannel, path: String, request json: Data, options: CallOptions
    ) async throws -> Outcome {
        let request = try Request(jsonUTF8Data: json)
        var encoding = JSONEncodingOptions()
        encoding.preserveProtoFieldNames = true
        do {
            let response: Response
            if streaming {
                // Contracts on streams are about how they start: the first message or the failure.
                var messages = channel.serverStreaming(path: path, request: request, options: options).makeAsyncIterator() as RPCResponseStream<Response>.AsyncIterator
                guard let first = try await messages.next() else { return Outcome(status: .ok, message: "", answer: [String: Any]()) }
                response = first
            } else {
                response = try await channel.unary(path: path, request: request, options: options).message
            }
            let text = try response.jsonUTF8Data(options: encoding)
            return Outcome(status: .ok, message: "", answer: try JSONSerialization.jsonObject(with: text))
        } catch let error as RPCError {
            return Outcome(status: error.code, message: error.message, answer: [String: Any]())
        }
    }

    static func contracts() throws -> [(name: String, document: [String: Any])] {
        try FileManager.default.contentsOfDirectory(atPath: ContractFiles.directory.path).filter { $0.hasSuffix(".json") }.sorted().map { name in
            let data = try Data(contentsOf: ContractFiles.directory.appendingPathComponent(name))
            return (name, try #require(JSONSerialization.jsonObject(with: data) as? [String: Any]))
        }
    }

    /// The problems of one interaction against a provider at `address`.
    static func verify(_ interaction: [String: Any], address: String) async throws -> [String] {
        let method = interaction["method"] as? String ?? ""
        guard let types = methods[method] else { return ["no verifier knows method \(method); add it to ProviderContractTests.methods"] }
        var options = CallOptions(timeout: .seconds(10))
        for (key, value) in interaction["metadata"] as? [String: String] ?? [:] { options.metadata.add(key, value) }
        let requestJSON = try JSONSerialization.data(withJSONObject: interaction["request"] ?? [:])
        let channel = try RPCChannel(target: address)
        defer { Task { await channel.close() } }
        func open<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(_ request: Request.Type, _ response: Response.Type) async throws -> Outcome {
            try await call(request, response, streaming: types.streaming, channel: channel, path: method, request: requestJSON, options: options)
        }
        let outcome = try await open(types.0, types.1)
        let expect = interaction["expect"] as? [String: Any] ?? [:]
        let status = expect["status"] as? String ?? "OK"
        if "\(outcome.status)" != status {
            return ["status: expected \(status), got \(outcome.status) \(outcome.message)"]
        }
        var problems: [String] = []
        if let text = expect["message_contains"] as? String, !outcome.message.contains(text) {
            problems.append("message: expected it to mention \(text), got \(outcome.message)")
        }
        for rule in expect["rules"] as? [[String: Any]] ?? [] {
            problems += ContractFiles.violations(of: rule, in: outcome.answer)
        }
        return problems
    }

    @Test func providersKeepTheirConsumersContracts() async throws {
        let contracts = try Self.contracts()
        #expect(contracts.count >= 5)
        let platform = try await PlatformFixture(settings: PlatformFixture.testSettings)
        // Provider state: the feature store has caught up with the catalog.
        try await eventually("item features backfilled") {
            let response = try await platform.recommend(.with { $0.userID = "u1"; $0.numResults = 3 })
            return !response.metadata.degraded && response.items.allSatisfy { $0.score != 0 }
        }
        for (name, document) in contracts {
            let consumer = document["consumer"] as? String ?? "?"
            let provider = document["provider"] as? String ?? "?"
            let port = try #require(platform.ports[provider], "\(name): no such provider \(provider)")
            for interaction in document["interactions"] as? [[String: Any]] ?? [] {
                let problems = try await Self.verify(interaction, address: "127.0.0.1:\(port)")
                if !problems.isEmpty {
                    Issue.record("""
                        \(provider) breaks the contract of \(consumer) (\(name)): \(interaction["description"] ?? "")
                        \(problems.map { "  - " + $0 }.joined(separator: "\n"))
                        """)
                }
            }
        }
        await platform.stop()
    }

    /// The rules catch what they should, so a provider that breaks a
    /// contract cannot pass unnoticed.
    @Test func rulesCatchBrokenAnswers() throws {
        let answer = try JSONSerialization.jsonObject(with: Data("""
            {"products": [{"product_id": "a", "availability": "AVAILABILITY_IN_STOCK", "categories": ["x"], "update_time": "2026-01-02T00:00:00Z", "price": {"units": "12"}},
                          {"product_id": "b", "availability": "AVAILABILITY_OUT_OF_STOCK", "categories": ["y"], "update_time": "2026-01-03T00:00:00.5Z", "price": {"units": "200"}}]}
            """.utf8))
        let broken: [[String: Any]] = [
            ContractFiles.rule("products[].availability", ["equals": "AVAILABILITY_IN_STOCK"]),
            ContractFiles.rule("products[].categories", ["eachContains": "x"]),
            ContractFiles.rule("products[].update_time", ["order": "descending"]),
            ContractFiles.rule("products[].price.units", ["atMost": 150]),
            ContractFiles.rule("products[].product_id", ["maxCount": 1]),
            ContractFiles.rule("products[].brand", ["present": true]),
            ContractFiles.rule("next_page_token", ["present": true]),
            ContractFiles.rule("products[].product_id", ["anyEquals": "c"]),
        ]
        for rule in broken {
            #expect(!ContractFiles.violations(of: rule, in: answer).isEmpty, "\(rule) should be broken")
        }
        let kept: [[String: Any]] = [
            ContractFiles.rule("products[].update_time", ["order": "ascending"]),
            ContractFiles.rule("products[].price.units", ["atLeast": 12]),
            ContractFiles.rule("products[].product_id", ["present": true, "minCount": 2, "anyEquals": "b"]),
            ContractFiles.rule("next_page_token", ["absent": true]),
        ]
        for rule in kept {
            #expect(ContractFiles.violations(of: rule, in: answer).isEmpty, "\(rule) should hold")
        }
    }
}
