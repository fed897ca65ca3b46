import Foundation
import ONNXExecutor
import Testing

/// The ONNX executor against ONNX Runtime's answers for the same models and
/// inputs (scripts/generate-onnx-fixtures.py), and its load and feed errors.
@Suite struct ONNXExecutorTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/onnx")

    static let matchingModels = ["mlp_ranker", "mlp_ranker_f64", "mlp_classifier", "all_ops_opset11", "all_ops_opset18", "edge_ops",
                                 "string_ops"]

    static func fixture(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent("\(name).json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func model(_ name: String) throws -> ONNXModel {
        try ONNXModel(contentsOf: directory.appendingPathComponent("\(name).onnx"))
    }

    static func tensor(_ object: [String: Any]) throws -> ONNXTensor {
        let shape = try #require(object["shape"] as? [Int])
        let data = try #require(object["data"] as? [Any])
        let numbers = data.map { ($0 as? NSNumber)?.doubleValue ?? .nan }
        switch object["type"] as? String {
        case "float32": return ONNXTensor(shape: shape, float32: numbers.map { Float($0) })
        case "float64": return ONNXTensor(shape: shape, float64: numbers)
        case "int32": return ONNXTensor(shape: shape, int32: data.map { ($0 as? NSNumber)?.int32Value ?? 0 })
        case "int64": return ONNXTensor(shape: shape, int64: data.map { ($0 as? NSNumber)?.int64Value ?? 0 })
        case "bool": return ONNXTensor(shape: shape, bool: data.map { ($0 as? NSNumber)?.boolValue ?? false })
        case "string":
            // Base64 per element, so the JSON holds any bytes.
            return ONNXTensor(shape: shape, strings: try data.map { try #require(Data(base64Encoded: $0 as? String ?? "")) })
        case let other: throw ONNXError.unsupportedModel("fixture type \(other ?? "none")")
        }
    }

    /// Within 1e-5 relative, or 1e-6 absolute for values near zero.
    static func close(_ actual: Double, _ expected: Double) -> Bool {
        abs(actual - expected) <= 1e-5 * abs(expected) + 1e-6
    }

    @Test(arguments: matchingModels)
    func matchesOnnxRuntime(_ name: String) throws {
        let fixture = try Self.fixture(name)
        let model = try Self.model(name)

        // Inputs and outputs as declared in the file, dynamic dimensions as -1.
        let declaredInputs = try #require(fixture["inputs"] as? [[String: Any]])
        #expect(model.inputs.map(\.name) == declaredInputs.map { $0["name"] as? String ?? "" })
        #expect(model.inputs.map(\.elementType.rawValue) == declaredInputs.map { $0["type"] as? String ?? "" })
        #expect(model.inputs.map(\.shape) == declaredInputs.map { $0["shape"] as? [Int] })
        let declaredOutputs = try #require(fixture["outputs"] as? [[String: Any]])
        #expect(model.outputs.map(\.name) == declaredOutputs.map { $0["name"] as? String ?? "" })
        #expect(model.outputs.map(\.elementType.rawValue) == declaredOutputs.map { $0["type"] as? String ?? "" })

        let cases = try #require(fixture["cases"] as? [[String: Any]])
        #expect(cases.count >= 2)
        for reference in cases {
            let caseName = "\(name), \(reference["name"] as? String ?? "?")"
            let feeds = try (try #require(reference["inputs"] as? [String: [String: Any]])).mapValues(Self.tensor)
            let expected = try (try #require(reference["outputs"] as? [String: [String: Any]])).mapValues(Self.tensor)
            let results = try model.run(feeds)
            #expect(Set(results.keys) == Set(expected.keys), "\(caseName): outputs")
            // Kernels write in place only into buffers nobody else holds: weights and feeds stay intact.
            #expect(try model.run(feeds) == results, "\(caseName): a second run differs")
            for (output, want) in expected {
                let got = try #require(results[output], "\(caseName): no output \(output)")
                #expect(got.shape == want.shape, "\(caseName): \(output) shape")
                #expect(got.elementType == want.elementType, "\(caseName): \(output) type")
                if want.elementType == .string {
                    #expect(got.stringValues == want.stringValues, "\(caseName): \(output)")
                    continue
                }
                let actual = got.doubleValues, reference = want.doubleValues
                #expect(actual.count == reference.count, "\(caseName): \(output) count")
                if want.elementType == .float32 || want.elementType == .float64 {
                    let wrong = actual.indices.first { $0 >= reference.count || !Self.close(actual[$0], reference[$0]) }
                    #expect(wrong == nil, "\(caseName): \(output)[\(wrong ?? -1)] = \(wrong.map { actual[$0] } ?? 0), expected \(wrong.map { $0 < reference.count ? reference[$0] : .nan } ?? 0)")
                } else {
                    #expect(actual == reference, "\(caseName): \(output)")
                }
            }
        }
    }

    @Test func unsupportedOperatorFailsAtLoad() throws {
        let fixture = try Self.fixture("unsupported_topk")
        let error = try #require(fixture["error"] as? [String: Any])
        #expect(error["op_type"] as? String == "TopK")
        #expect(throws: ONNXError.unsupportedOperator(node: "top_items", opType: "TopK")) {
            try Self.model("unsupported_topk")
        }
        #expect(String(describing: ONNXError.unsupportedOperator(node: "top_items", opType: "TopK")).contains("TopK"))
    }

    /// Strings only move: a node computing on them fails the load, saying so.
    @Test(arguments: ["unsupported_string_add", "unsupported_string_cast"])
    func computingOnStringsFailsAtLoad(_ name: String) throws {
        let expected = try #require(try Self.fixture(name)["error"] as? [String: Any])
        let node = try #require(expected["node"] as? String)
        do {
            _ = try Self.model(name)
            Issue.record("\(name) loaded")
        } catch let error as ONNXError {
            guard case .unsupportedModel(let message) = error else {
                Issue.record("\(name): unexpected error \(error)")
                return
            }
            #expect(message.contains(node), "\(message)")
            #expect(message.contains("string"), "\(message)")
        }
    }

    /// ONNX STRING elements are bytes: anything, not only UTF-8, passes
    /// through unchanged (ONNX Runtime's Python API cannot feed such bytes,
    /// so the fixture cases are UTF-8).
    @Test func stringsAreArbitraryBytes() throws {
        let model = try Self.model("string_ops")
        #expect(model.inputs.map(\.elementType) == [.string])
        #expect(model.outputs.allSatisfy { $0.elementType == .string })
        let elements = [Data([0xff, 0x00, 0xfe]), Data(), Data([0xc3]), Data("plain".utf8)]
        let text = ONNXTensor(shape: [2, 2], strings: elements)
        let results = try model.run(["text": text])
        #expect(results["copy"] == text)
        #expect(results["swapped"]?.stringValues == [elements[1], elements[0], elements[3], elements[2]])
        #expect(results["last_row"] == ONNXTensor(shape: [2], strings: [elements[2], elements[3]]))
        // The header row comes from a string initializer.
        #expect(results["with_header"]?.shape == [3, 2])
        #expect(results["with_header"]?.stringValues?.dropFirst(2).map { $0 } == elements)
        #expect(results["with_header"]?.stringValues?.first == Data("id".utf8))
        #expect(results["all_tags"]?.stringValues == [Data("tag-a".utf8), Data(), Data("tag-b".utf8)])
        // Strings are not numbers.
        #expect(throws: ONNXError.inputTypeMismatch(input: "text", expected: .string, actual: .float32)) {
            try model.run(["text": ONNXTensor(shape: [1, 2], float32: [1, 2])])
        }
        #expect(throws: ONNXError.self) {
            try model.run(["text": ONNXTensor(shape: [2, 2], strings: [Data()])])
        }
    }

    @Test func otherDomainsFailAtLoad() throws {
        let fixture = try Self.fixture("unsupported_ml_domain")
        let expected = try #require(fixture["error"] as? [String: Any])
        do {
            _ = try Self.model("unsupported_ml_domain")
            Issue.record("a model with ai.onnx.ml operators loaded")
        } catch let error as ONNXError {
            guard case .unsupportedDomain(_, let opType, let domain) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(domain == "ai.onnx.ml")
            #expect(opType == expected["op_type"] as? String)
            #expect(error.description.contains("ai.onnx.ml"))
        }
    }

    @Test func truncatedAndGarbageFilesFail() throws {
        let bytes = try Data(contentsOf: Self.directory.appendingPathComponent("mlp_ranker.onnx"))
        for (what, data) in [("truncated", bytes.prefix(bytes.count / 2)), ("garbage", Data("this is not an ONNX model".utf8)),
                             ("empty", Data())] {
            do {
                _ = try ONNXModel(serialized: Data(data))
                Issue.record("\(what) file loaded")
            } catch let error as ONNXError {
                guard case .invalidModel(let message) = error else {
                    Issue.record("\(what): unexpected error \(error)")
                    continue
                }
                #expect(!message.isEmpty, "\(what)")
            }
        }
    }

    @Test func feedErrorsNameTheInput() throws {
        let model = try Self.model("mlp_ranker")
        let good = ONNXTensor(shape: [2, 12], float32: [Float](repeating: 0.5, count: 24))
        #expect(try model.run(["X": good])["variable"]?.shape == [2, 1])
        #expect(throws: ONNXError.missingInput("X")) { try model.run([:]) }
        #expect(throws: ONNXError.unknownInput("Y")) { try model.run(["X": good, "Y": good]) }
        #expect(throws: ONNXError.inputTypeMismatch(input: "X", expected: .float32, actual: .float64)) {
            try model.run(["X": ONNXTensor(shape: [2, 12], float64: [Double](repeating: 0.5, count: 24))])
        }
        do {
            _ = try model.run(["X": ONNXTensor(shape: [2, 11], float32: [Float](repeating: 0.5, count: 22))])
            Issue.record("a [2, 11] feed ran")
        } catch let error as ONNXError {
            guard case .inputShapeMismatch(let input, _, let actual) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(input == "X" && actual == [2, 11])
            #expect(error.description.contains("X"))
        }
        // A shape that does not match the data given.
        #expect(throws: ONNXError.self) {
            try model.run(["X": ONNXTensor(shape: [3, 12], float32: [Float](repeating: 0.5, count: 24))])
        }
    }

    @Test func indexOutOfRangeNamesTheNode() throws {
        let model = try Self.model("all_ops_opset18")
        let feeds = [
            "item_ids": ONNXTensor(shape: [1, 5], int64: [0, 1, 2, 3, 20]),
            "category": ONNXTensor(shape: [1], int32: [0]),
            "dense": ONNXTensor(shape: [1, 6], float32: [0, 0, 0, 0, 0, 0]),
        ]
        do {
            _ = try model.run(feeds)
            Issue.record("an out-of-range embedding index ran")
        } catch let error as ONNXError {
            guard case .runFailed(let node, let opType, let message) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(node == "history" && opType == "Gather")
            #expect(message.contains("20"))
        }
    }

    @Test func concurrentRunsAgree() async throws {
        let model = try Self.model("mlp_ranker")
        let reference = try #require(try Self.fixture("mlp_ranker")["cases"] as? [[String: Any]]).last
        let feeds = try (try #require(reference?["inputs"] as? [String: [String: Any]])).mapValues(Self.tensor)
        let expected = try model.run(feeds)
        try await withThrowingTaskGroup(of: [String: ONNXTensor].self) { group in
            for _ in 0..<8 {
                group.addTask { try model.run(feeds) }
            }
            for try await result in group {
                #expect(result == expected)
            }
        }
    }
}
