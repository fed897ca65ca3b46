import Contracts
import Foundation
import InferenceServer
import MeridianRPC
import ServiceKit
import Synchronization
import Testing

/// A model repository in a temporary folder, built from the committed
/// fixtures, and the inference service started on it from its `buildService`.
final class InferenceFixture: Sendable {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/xgboost")

    let repository: URL
    nonisolated(unsafe) var host: ServiceHost?  // set once in start()
    nonisolated(unsafe) var channel: RPCChannel?
    var client: Inference_GRPCInferenceServiceClient { Inference_GRPCInferenceServiceClient(channel: channel!) }

    init() throws {
        repository = FileManager.default.temporaryDirectory.appendingPathComponent("inference-repo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: repository, withIntermediateDirectories: true)
    }

    /// A model folder with `config` and, per version, a copy of a fixture artifact.
    func addModel(_ name: String, config: String, versions: [Int: String]) throws {
        let folder = repository.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try config.write(to: folder.appendingPathComponent("config.pbtxt"), atomically: true, encoding: .utf8)
        for (version, artifact) in versions { try addVersion(name, version: version, artifact: artifact) }
    }

    func addVersion(_ name: String, version: Int, artifact: String) throws {
        let folder = repository.appendingPathComponent(name).appendingPathComponent(String(version))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let target = folder.appendingPathComponent(artifact.hasSuffix(".ubj") ? "model.ubj" : "model.json")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(artifact), to: target)
    }

    func start(mode: ModelRepository.ControlMode = .none, startupModels: [String] = [], poll: Duration = .seconds(15)) async throws {
        var settings = InferenceSettings.defaults
        settings.repository = repository.path
        settings.controlMode = mode
        settings.startupModels = startupModels
        settings.pollInterval = poll
        let host = try await InferenceServer.buildService(configuration: .forTesting(name: "inference"), settings: settings)
        let port = try await host.start()
        self.host = host
        channel = try RPCChannel(host: "127.0.0.1", port: port)
    }

    func stop() async {
        await channel?.close()
        await host?.shutdown()
        try? FileManager.default.removeItem(at: repository)
    }

    /// The classifier fixture: rows, and what xgboost 1.7 itself predicted for them.
    struct Expected {
        var features: Int
        var rows: [[Float]]
        var probability: [Double]
        var margin: [Double]
    }

    static let classifier: Expected = {
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("classifier.expected.json"))
        let json = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        // NaN marks a missing value; JSON has no NaN, so the fixture writes null.
        let rows = (json["inputs"] as! [[Any]]).map { row in row.map { ($0 as? NSNumber)?.floatValue ?? .nan } }
        return Expected(features: json["features"] as! Int, rows: rows,
                        probability: (json["probability"] as! [NSNumber]).map(\.doubleValue),
                        margin: (json["margin"] as! [NSNumber]).map(\.doubleValue))
    }()

    static func config(_ name: String, filename: String = "model.json", output: String = "probability", extra: String = "") -> String {
        """
        name: "\(name)"
        backend: "xgboost"
        max_batch_size: 1000
        default_model_filename: "\(filename)"
        input [ { name: "features" data_type: TYPE_FP32 dims: [ \(classifier.features) ] } ]
        output [ { name: "score" data_type: TYPE_FP32 dims: [ 1 ] } ]
        parameters { key: "output" value { string_value: "\(output)" } }
        \(extra)
        """
    }

    /// A ModelInfer request for `rows` of the classifier fixture, as raw bytes.
    static func request(_ model: String, rows: ArraySlice<[Float]>, version: String = "", routingKey: String? = nil) -> Inference_ModelInferRequest {
        .with {
            $0.modelName = model
            $0.modelVersion = version
            $0.id = "req-\(rows.startIndex)"
            $0.inputs = [.with { $0.name = "features"; $0.datatype = "FP32"; $0.shape = [Int64(rows.count), Int64(classifier.features)] }]
            $0.rawInputContents = [rows.flatMap { $0 }.withUnsafeBytes { Data($0) }]
            if let routingKey { $0.parameters["routing_key"] = .with { $0.stringParam = routingKey } }
        }
    }

    static func scores(_ response: Inference_ModelInferResponse) -> [Float] {
        var values = [Float](repeating: 0, count: response.rawOutputContents[0].count / 4)
        values.withUnsafeMutableBytes { _ = response.rawOutputContents[0].copyBytes(to: $0) }
        return values
    }

    static func close(_ a: Double, _ b: Double) -> Bool {
        abs(a - b) <= 1e-5 * max(abs(a), abs(b)) + 1e-6
    }
}

@Suite(.serialized) struct InferenceTests {
    @Test func xgboostMatchesTheReferenceRuntimeInBothFormats() async throws {
        let fixture = try InferenceFixture()
        try fixture.addModel("classifier", config: InferenceFixture.config("classifier"), versions: [1: "classifier.json"])
        try fixture.addModel("classifier_ubj", config: InferenceFixture.config("classifier_ubj", filename: "model.ubj"), versions: [1: "classifier.ubj"])
        try fixture.addModel("classifier_margin", config: InferenceFixture.config("classifier_margin", output: "margin"), versions: [1: "classifier.json"])
        // The same trees walked natively (the default for plain ensembles) and by libxgboost.
        let native = #"parameters { key: "predictor" value { string_value: "native" } }"#
        let library = #"parameters { key: "predictor" value { string_value: "library" } }"#
        try fixture.addModel("native", config: InferenceFixture.config("native", extra: native), versions: [1: "classifier.ubj"])
        try fixture.addModel("native_margin", config: InferenceFixture.config("native_margin", output: "margin", extra: native), versions: [1: "classifier.json"])
        try fixture.addModel("library", config: InferenceFixture.config("library", extra: library), versions: [1: "classifier.json"])
        try fixture.addModel("library_margin", config: InferenceFixture.config("library_margin", output: "margin", extra: library), versions: [1: "classifier.ubj"])
        try await fixture.start()
        let expected = InferenceFixture.classifier
        for (model, reference) in [("classifier", expected.probability), ("classifier_ubj", expected.probability), ("classifier_margin", expected.margin),
                                   ("native", expected.probability), ("native_margin", expected.margin),
                                   ("library", expected.probability), ("library_margin", expected.margin)] {
            let response = try await fixture.client.modelInfer(InferenceFixture.request(model, rows: expected.rows[...]))
            #expect(response.modelVersion == "1")
            #expect(response.outputs.map(\.name) == ["score"])
            #expect(response.outputs[0].shape == [Int64(expected.rows.count), 1])
            #expect(response.outputs[0].datatype == "FP32")
            let scores = InferenceFixture.scores(response)
            #expect(scores.count == reference.count)
            for (ours, theirs) in zip(scores, reference) {
                #expect(InferenceFixture.close(Double(ours), theirs), "\(model): \(ours) vs \(theirs)")
            }
            // One row at a time gives the same numbers as the batch, and so
            // do a few rows (the native walk takes several trees at once)
            // and many (it goes through rows in blocks).
            let single = try await fixture.client.modelInfer(InferenceFixture.request(model, rows: expected.rows[3...3]))
            #expect(InferenceFixture.scores(single) == [scores[3]])
            let few = try await fixture.client.modelInfer(InferenceFixture.request(model, rows: expected.rows[5..<8]))
            #expect(InferenceFixture.scores(few) == Array(scores[5..<8]))
            let many = try await fixture.client.modelInfer(InferenceFixture.request(model, rows: (expected.rows + expected.rows + expected.rows)[...]))
            #expect(InferenceFixture.scores(many) == scores + scores + scores)
        }
        await fixture.stop()
    }

    /// Several outputs per row: trees add to their class, softmax across them.
    @Test func xgboostMultiClassMatchesTheReferenceRuntime() async throws {
        let fixture = try InferenceFixture()
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: InferenceFixture.fixtures.appendingPathComponent("multiclass.expected.json"))) as! [String: Any]
        let rows = (json["inputs"] as! [[Any]]).map { row in row.map { ($0 as? NSNumber)?.floatValue ?? .nan } }
        let reference = ["probability": (json["probability"] as! [NSNumber]).map(\.doubleValue),
                         "margin": (json["margin"] as! [NSNumber]).map(\.doubleValue)]
        for predictor in ["native", "library"] {
            for output in ["probability", "margin"] {
                try fixture.addModel("\(predictor)_\(output)", config: """
                    name: "\(predictor)_\(output)"
                    backend: "xgboost"
                    max_batch_size: 1000
                    default_model_filename: "model.ubj"
                    input [ { name: "features" data_type: TYPE_FP32 dims: [ 5 ] } ]
                    output [ { name: "score" data_type: TYPE_FP32 dims: [ 3 ] } ]
                    parameters { key: "output" value { string_value: "\(output)" } }
                    parameters { key: "predictor" value { string_value: "\(predictor)" } }
                    """, versions: [1: "multiclass.ubj"])
            }
        }
        try await fixture.start()
        func scores(_ model: String, _ slice: ArraySlice<[Float]>) async throws -> [Float] {
            let response = try await fixture.client.modelInfer(.with {
                $0.modelName = model
                $0.inputs = [.with { $0.name = "features"; $0.datatype = "FP32"; $0.shape = [Int64(slice.count), 5] }]
                $0.rawInputContents = [slice.flatMap { $0 }.withUnsafeBytes { Data($0) }]
            })
            #expect(response.outputs[0].shape == [Int64(slice.count), 3])
            return InferenceFixture.scores(response)
        }
        for predictor in ["native", "library"] {
            for output in ["probability", "margin"] {
                let model = "\(predictor)_\(output)"
                let all = try await scores(model, rows[...])
                #expect(all.count == reference[output]!.count)
                for (ours, theirs) in zip(all, reference[output]!) {
                    #expect(InferenceFixture.close(Double(ours), theirs), "\(model): \(ours) vs \(theirs)")
                }
                #expect(try await scores(model, rows[7...7]) == Array(all[21..<24]))
                #expect(try await scores(model, rows[4..<6]) == Array(all[12..<18]))
                #expect(try await scores(model, (rows + rows)[...]) == all + all)
            }
        }
        await fixture.stop()
    }

    @Test func typedContentsGiveTheSameAnswerAsRawBytes() async throws {
        let fixture = try InferenceFixture()
        try fixture.addModel("classifier", config: InferenceFixture.config("classifier"), versions: [1: "classifier.json"])
        try await fixture.start()
        let rows = InferenceFixture.classifier.rows[0..<5]
        let raw = try await fixture.client.modelInfer(InferenceFixture.request("classifier", rows: rows))
        var typed = InferenceFixture.request("classifier", rows: rows)
        typed.rawInputContents = []
        typed.inputs[0].contents = .with { $0.fp32Contents = rows.flatMap { $0 } }
        let answer = try await fixture.client.modelInfer(typed)
        #expect(answer.rawOutputContents == raw.rawOutputContents)
        await fixture.stop()
    }

    @Test func badRequestsNameWhatIsWrong() async throws {
        let fixture = try InferenceFixture()
        try fixture.addModel("classifier", config: InferenceFixture.config("classifier"), versions: [1: "classifier.json"])
        try await fixture.start()
        let good = InferenceFixture.request("classifier", rows: InferenceFixture.classifier.rows[0..<2])
        func failure(_ mutate: (inout Inference_ModelInferRequest) -> Void) async -> RPCStatus? {
            var request = good
            mutate(&request)
            do {
                _ = try await fixture.client.modelInfer(request)
                return nil
            } catch let error as RPCError {
                return error.status
            } catch {
                return nil
            }
        }
        let wrongType = await failure { $0.inputs[0].datatype = "FP64" }
        #expect(wrongType?.code == .invalidArgument)
        #expect(wrongType?.message.contains("'features'") == true && wrongType?.message.contains("FP32") == true)
        let wrongShape = await failure { $0.inputs[0].shape = [2, 3] }
        #expect(wrongShape?.code == .invalidArgument)
        #expect(wrongShape?.message.contains("'features'") == true)
        let shortBytes = await failure { $0.rawInputContents[0] = $0.rawInputContents[0].prefix(12) }
        #expect(shortBytes?.code == .invalidArgument)
        let unknownInput = await failure { $0.inputs[0].name = "extra" }
        #expect(unknownInput?.code == .invalidArgument)
        #expect(unknownInput?.message.contains("'extra'") == true)
        let unknownOutput = await failure { $0.outputs = [.with { $0.name = "nope" }] }
        #expect(unknownOutput?.code == .invalidArgument)
        #expect(unknownOutput?.message.contains("'nope'") == true)
        let tooBig = await failure { $0.inputs[0].shape[0] = 1001 }
        #expect(tooBig?.code == .invalidArgument)
        let unknownModel = await failure { $0.modelName = "missing" }
        #expect(unknownModel?.code == .notFound)
        #expect(unknownModel?.message.contains("'missing'") == true)
        let unknownVersion = await failure { $0.modelVersion = "7" }
        #expect(unknownVersion?.code == .notFound)
        // The server still answers after all that.
        _ = try await fixture.client.modelInfer(good)
        await fixture.stop()
    }

    @Test func aBrokenArtifactIsReportedAndNeverTakesDownWhatServes() async throws {
        let fixture = try InferenceFixture()
        try fixture.addModel("classifier", config: InferenceFixture.config("classifier", extra: "version_policy { all { } }"),
                             versions: [1: "classifier.json", 2: "broken.json"])
        try fixture.addModel("unsupported", config: #"name: "unsupported" backend: "tensorflow" input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ] output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]"#,
                             versions: [:])
        try await fixture.start()
        let index = try await fixture.client.repositoryIndex(.init()).models
        let one = index.first { $0.name == "classifier" && $0.version == "1" }
        let two = index.first { $0.name == "classifier" && $0.version == "2" }
        #expect(one?.state == "READY")
        #expect(two?.state == "UNAVAILABLE")
        #expect(two?.reason.contains("model.json") == true, "\(two?.reason ?? "")")
        let unsupported = index.first { $0.name == "unsupported" }
        #expect(unsupported?.state == "UNAVAILABLE")
        #expect(unsupported?.reason.contains("tensorflow") == true)
        let response = try await fixture.client.modelInfer(InferenceFixture.request("classifier", rows: InferenceFixture.classifier.rows[0..<1]))
        #expect(response.modelVersion == "1")
        let ready = try await fixture.client.repositoryIndex(.with { $0.ready = true }).models
        #expect(ready.map(\.name) == ["classifier"])
        await fixture.stop()
    }

    @Test func explicitLoadAndUnload() async throws {
        let fixture = try InferenceFixture()
        try fixture.addModel("classifier", config: InferenceFixture.config("classifier"), versions: [1: "classifier.json"])
        try fixture.addModel("other", config: InferenceFixture.config("other"), versions: [1: "classifier.json"])
        try await fixture.start(mode: .explicit, startupModels: ["classifier"])
        #expect(try await fixture.client.modelReady(.with { $0.name = "classifier" }).ready)
        #expect(try await !fixture.client.modelReady(.with { $0.name = "other" }).ready)
        _ = try await fixture.client.repositoryModelLoad(.with { $0.modelName = "other" })
        #expect(try await fixture.client.modelReady(.with { $0.name = "other" }).ready)
        _ = try await fixture.client.repositoryModelUnload(.with { $0.modelName = "classifier" })
        #expect(try await !fixture.client.modelReady(.with { $0.name = "classifier" }).ready)
        let index = try await fixture.client.repositoryIndex(.init()).models
        #expect(index.first { $0.name == "classifier" }?.state == "UNAVAILABLE")
        await #expect(throws: RPCError.self) { _ = try await fixture.client.repositoryModelLoad(.with { $0.modelName = "ghost" }) }
        await fixture.stop()
    }

    @Test func aNewVersionIsPickedUpUnderLoadWithoutAFailedRequest() async throws {
        let fixture = try InferenceFixture()
        try fixture.addModel("classifier", config: InferenceFixture.config("classifier"), versions: [1: "classifier.json"])
        try await fixture.start(mode: .poll, poll: .milliseconds(100))
        let client = fixture.client
        let rows = InferenceFixture.classifier.rows[0..<4]
        let stop = StopFlag()
        // Four callers keep requests flowing while version 2 appears and replaces version 1.
        let results = try await withThrowingTaskGroup(of: (failures: Int, versions: Set<String>).self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var failures = 0
                    var versions: Set<String> = []
                    while !stop.isSet {
                        do {
                            versions.insert(try await client.modelInfer(InferenceFixture.request("classifier", rows: rows)).modelVersion)
                        } catch {
                            failures += 1
                        }
                    }
                    return (failures, versions)
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            try fixture.addVersion("classifier", version: 2, artifact: "classifier.ubj")
            var switched = false
            for _ in 0..<100 where !switched {
                try await Task.sleep(for: .milliseconds(50))
                switched = try await client.modelInfer(InferenceFixture.request("classifier", rows: rows)).modelVersion == "2"
            }
            try await Task.sleep(for: .milliseconds(300))
            stop.set()
            return try await group.reduce(into: [(failures: Int, versions: Set<String>)]()) { $0.append($1) }
        }
        #expect(results.map(\.failures).reduce(0, +) == 0)
        #expect(results.reduce(Set<String>()) { $0.union($1.versions) } == ["1", "2"])
        let index = try await fixture.client.repositoryIndex(.init()).models
        #expect(index.filter { $0.name == "classifier" }.map(\.version) == ["2"])
        await fixture.stop()
    }

    @Test func dynamicBatchingFormsBatchesAndHonoursTheDelay() async throws {
        let fixture = try InferenceFixture()
        try fixture.addModel("batched", config: InferenceFixture.config("batched", extra: "dynamic_batching { max_queue_delay_microseconds: 20000 }"),
                             versions: [1: "classifier.json"])
        try await fixture.start()
        let client = fixture.client
        let rows = InferenceFixture.classifier.rows
        let single = try await client.modelInfer(InferenceFixture.request("batched", rows: rows[0..<1]))
        let before = try await client.modelStatistics(.with { $0.name = "batched" }).modelStats[0]
        // Alone in the queue, a request waits out the delay (20 ms) before it runs.
        #expect(before.inferenceStats.queue.ns >= 15_000_000, "\(before.inferenceStats.queue)")
        let answers = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for index in 0..<16 {
                group.addTask { (index, InferenceFixture.scores(try await client.modelInfer(InferenceFixture.request("batched", rows: rows[index..<index + 1])))) }
            }
            return try await group.reduce(into: [Int: [Float]]()) { $0[$1.0] = $1.1 }
        }
        // Each caller got its own row's answer back out of the batch.
        #expect(answers[0] == InferenceFixture.scores(single))
        for index in 0..<16 {
            #expect(InferenceFixture.close(Double(answers[index]![0]), InferenceFixture.classifier.probability[index]))
        }
        let after = try await client.modelStatistics(.with { $0.name = "batched" }).modelStats[0]
        #expect(after.inferenceCount == 17)
        #expect(after.executionCount < 17, "16 concurrent requests should share executions: \(after.executionCount)")
        #expect(after.batchStats.contains { $0.batchSize > 1 })
        await fixture.stop()
    }

    @Test func aFullQueueAnswersUnavailableAtOnce() async throws {
        let fixture = try InferenceFixture()
        try fixture.addModel("narrow", config: InferenceFixture.config("narrow", extra: """
            dynamic_batching { max_queue_delay_microseconds: 2000000 default_queue_policy { max_queue_size: 1 } }
            """), versions: [1: "classifier.json"])
        try await fixture.start()
        let client = fixture.client
        let rows = InferenceFixture.classifier.rows[0..<1]
        let firstDone = StopFlag()
        let first = Task {
            defer { firstDone.set() }
            return try await client.modelInfer(InferenceFixture.request("narrow", rows: rows))
        }
        try await Task.sleep(for: .milliseconds(100))
        do {
            _ = try await client.modelInfer(InferenceFixture.request("narrow", rows: rows))
            Issue.record("a second request should not fit in a queue of one")
        } catch let error as RPCError {
            #expect(error.status.code == .unavailable)
            #expect(error.status.message.contains("queue is full"))
            // Rejected at once: the first request is still waiting out its 2 s delay.
            #expect(!firstDone.isSet)
        }
        _ = try await first.value
        await fixture.stop()
    }

    @Test func cachedResponsesAreIdenticalAndCounted() async throws {
        let fixture = try InferenceFixture()
        try fixture.addModel("cached", config: InferenceFixture.config("cached", extra: "response_cache { enable: true }"), versions: [1: "classifier.json"])
        try await fixture.start()
        let request = InferenceFixture.request("cached", rows: InferenceFixture.classifier.rows[0..<10])
        let first = try await fixture.client.modelInfer(request)
        let second = try await fixture.client.modelInfer(request)
        #expect(first.rawOutputContents == second.rawOutputContents)
        #expect(first.outputs == second.outputs)
        var other = request
        other.rawInputContents = [InferenceFixture.request("cached", rows: InferenceFixture.classifier.rows[10..<20]).rawInputContents[0]]
        _ = try await fixture.client.modelInfer(other)
        let stats = try await fixture.client.modelStatistics(.with { $0.name = "cached" }).modelStats[0].inferenceStats
        #expect(stats.cacheHit.count == 1)
        #expect(stats.cacheMiss.count == 2)
        #expect(stats.success.count == 3)
        await fixture.stop()
    }

    @Test func routingSplitsTrafficStickyByKeyAndNamesTheVersion() async throws {
        let fixture = try InferenceFixture()
        try fixture.addModel("ranker", config: InferenceFixture.config("ranker", extra: """
            version_policy { all { } }
            parameters { key: "routing" value { string_value: "1:50,2:50" } }
            parameters { key: "shadow_version" value { string_value: "2" } }
            """), versions: [1: "classifier.json", 2: "classifier.ubj"])
        try await fixture.start()
        let rows = InferenceFixture.classifier.rows[0..<1]
        var byKey: [String: Set<String>] = [:]
        for user in 0..<40 {
            for _ in 0..<3 {
                let response = try await fixture.client.modelInfer(InferenceFixture.request("ranker", rows: rows, routingKey: "user-\(user)"))
                byKey["user-\(user)", default: []].insert(response.modelVersion)
            }
        }
        #expect(byKey.values.allSatisfy { $0.count == 1 }, "the same key always gets the same version")
        let versions = byKey.values.reduce(Set<String>()) { $0.union($1) }
        #expect(versions == ["1", "2"], "both versions get traffic")
        // Naming a version bypasses routing.
        let pinned = try await fixture.client.modelInfer(InferenceFixture.request("ranker", rows: rows, version: "1"))
        #expect(pinned.modelVersion == "1")
        await fixture.stop()
    }

    @Test func metadataConfigAndStatisticsDescribeTheModel() async throws {
        let fixture = try InferenceFixture()
        try fixture.addModel("classifier", config: InferenceFixture.config("classifier"), versions: [1: "classifier.json"])
        try await fixture.start()
        let metadata = try await fixture.client.modelMetadata(.with { $0.name = "classifier" })
        #expect(metadata.versions == ["1"])
        #expect(metadata.platform == "xgboost")
        #expect(metadata.inputs.map(\.name) == ["features"])
        #expect(metadata.inputs[0].shape == [-1, Int64(InferenceFixture.classifier.features)])
        #expect(metadata.outputs[0].datatype == "FP32")
        let config = try await fixture.client.modelConfig(.with { $0.name = "classifier" }).config
        #expect(config.maxBatchSize == 1000)
        #expect(config.backend == "xgboost")
        let server = try await fixture.client.serverMetadata(.init())
        #expect(!server.name.isEmpty && !server.version.isEmpty)
        _ = try await fixture.client.modelInfer(InferenceFixture.request("classifier", rows: InferenceFixture.classifier.rows[0..<7]))
        let stats = try await fixture.client.modelStatistics(.with { $0.name = "classifier" }).modelStats
        #expect(stats.count == 1)
        #expect(stats[0].inferenceCount == 7)
        #expect(stats[0].inferenceStats.success.count == 1)
        #expect(stats[0].inferenceStats.computeInfer.count == 1, "warm-up is not counted; the request ran once")
        await fixture.stop()
    }
}

/// Tells concurrent callers to stop.
final class StopFlag: Sendable {
    private let state = Mutex(false)
    var isSet: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}
