import Contracts
import Foundation
import SwiftProtobuf

/// A model's `config.pbtxt` (Triton's `ModelConfig` in protobuf text format),
/// checked and turned into what serving needs. Everything wrong with a config
/// is found here, at load, never at request time.
public struct ModelDefinition: Sendable {
    public struct TensorSpec: Sendable, Equatable {
        public var name: String
        public var dataType: TensorDataType
        /// Dimensions without the batch dimension; -1 is any size.
        public var dims: [Int]
        public var optional: Bool
    }

    public enum Backend: String, Sendable {
        case xgboost
        case onnx
    }

    /// How versions are chosen from the model's folder.
    public enum VersionPolicy: Sendable, Equatable {
        case latest(Int)
        case all
        case specific([Int64])
    }

    public struct Batching: Sendable, Equatable {
        public var maxQueueDelay: Duration
        /// Most requests waiting; a full queue answers UNAVAILABLE at once.
        public var maxQueueSize: Int
        /// How long a request may wait in the queue; nil waits for its deadline only.
        public var queueTimeout: Duration?
    }

    /// Versions that share traffic when a request names no version, by weight.
    public struct Route: Sendable, Equatable {
        public var version: Int64
        public var weight: Int
    }

    public var config: Inference_ModelConfig
    public var name: String
    public var backend: Backend
    /// 0 means the model takes no batch dimension.
    public var maxBatchSize: Int
    public var inputs: [TensorSpec]
    public var outputs: [TensorSpec]
    public var versionPolicy: VersionPolicy
    public var batching: Batching?
    public var cacheResponses: Bool
    public var defaultFilename: String
    public var routes: [Route]
    public var shadowVersion: Int64?
    /// XGBoost: probability (the objective's transform) or margin (raw scores).
    public var outputMargin: Bool

    /// XGBoost: who walks the trees. `auto` walks plain numeric ensembles
    /// natively and leaves the rest to libxgboost; `native` insists (the load
    /// fails when the model needs libxgboost); `library` always calls libxgboost.
    public enum TreePredictor: String, Sendable {
        case auto, native, library
    }
    public var treePredictor: TreePredictor

    /// Default queue bound when the config sets none: enough to absorb a burst,
    /// small enough that a stalled model answers UNAVAILABLE instead of piling up memory.
    public static let defaultMaxQueueSize = 1024

    public init(configText: String, folderName: String) throws(ModelLoadError) {
        let config: Inference_ModelConfig
        do {
            config = try Inference_ModelConfig(textFormatString: configText)
        } catch {
            throw .invalidConfig("config.pbtxt does not parse as inference.ModelConfig: \(error)")
        }
        try self.init(config: config, folderName: folderName)
    }

    public init(config original: Inference_ModelConfig, folderName: String) throws(ModelLoadError) {
        var config = original
        if config.name.isEmpty { config.name = folderName }
        guard config.name == folderName else {
            throw .invalidConfig("config.pbtxt names the model '\(config.name)' but its folder is '\(folderName)'")
        }
        self.config = config
        self.name = config.name

        switch (config.backend.lowercased(), config.platform.lowercased()) {
        case ("xgboost", _): backend = .xgboost
        case ("onnxruntime", _), ("onnx", _), (_, "onnxruntime_onnx"): backend = .onnx
        case ("", ""): throw .invalidConfig("config.pbtxt sets no backend (xgboost or onnxruntime)")
        default: throw .invalidConfig("unsupported backend '\(config.backend.isEmpty ? config.platform : config.backend)' (supported: xgboost, onnxruntime)")
        }
        guard config.maxBatchSize >= 0 else { throw .invalidConfig("max_batch_size must not be negative") }
        maxBatchSize = Int(config.maxBatchSize)

        func spec(_ name: String, _ type: Inference_DataType, _ dims: [Int64], optional: Bool, kind: String) throws(ModelLoadError) -> TensorSpec {
            guard !name.isEmpty else { throw .invalidConfig("an \(kind) has no name") }
            guard let dataType = TensorDataType(config: type) else {
                throw .invalidConfig("\(kind) '\(name)' has unsupported data_type \(type)")
            }
            guard dims.allSatisfy({ $0 == -1 || $0 > 0 }) else {
                throw .invalidConfig("\(kind) '\(name)' has invalid dims \(dims): each must be positive or -1")
            }
            return TensorSpec(name: name, dataType: dataType, dims: dims.map { Int($0) }, optional: optional)
        }
        var inputs: [TensorSpec] = []
        for input in config.input {
            inputs.append(try spec(input.name, input.dataType, input.dims, optional: input.optional, kind: "input"))
        }
        var outputs: [TensorSpec] = []
        for output in config.output {
            outputs.append(try spec(output.name, output.dataType, output.dims, optional: false, kind: "output"))
        }
        guard !inputs.isEmpty, !outputs.isEmpty else { throw .invalidConfig("config.pbtxt must declare at least one input and one output") }
        guard Set(inputs.map(\.name)).count == inputs.count, Set(outputs.map(\.name)).count == outputs.count else {
            throw .invalidConfig("tensor names must be unique")
        }
        self.inputs = inputs
        self.outputs = outputs

        switch config.versionPolicy.policyChoice {
        case .latest(let latest)?:
            guard latest.numVersions > 0 else { throw .invalidConfig("version_policy latest needs num_versions > 0") }
            versionPolicy = .latest(Int(latest.numVersions))
        case .all?: versionPolicy = .all
        case .specific(let specific)?:
            guard !specific.versions.isEmpty else { throw .invalidConfig("version_policy specific lists no versions") }
            versionPolicy = .specific(specific.versions)
        case nil: versionPolicy = .latest(1)
        }

        if case .dynamicBatching(let batching)? = config.schedulingChoice {
            guard maxBatchSize > 0 else { throw .invalidConfig("dynamic_batching needs max_batch_size > 0") }
            let policy = batching.defaultQueuePolicy
            self.batching = Batching(
                maxQueueDelay: .microseconds(Int64(batching.maxQueueDelayMicroseconds)),
                maxQueueSize: policy.maxQueueSize > 0 ? Int(policy.maxQueueSize) : Self.defaultMaxQueueSize,
                queueTimeout: policy.defaultTimeoutMicroseconds > 0 ? .microseconds(Int64(policy.defaultTimeoutMicroseconds)) : nil)
        } else {
            batching = nil
        }
        cacheResponses = config.responseCache.enable

        let parameters = config.parameters.mapValues(\.stringValue)
        defaultFilename = config.defaultModelFilename.isEmpty
            ? (backend == .xgboost ? "model.json" : "model.onnx") : config.defaultModelFilename
        switch parameters["output"] ?? "probability" {
        case "probability": outputMargin = false
        case "margin": outputMargin = true
        case let other: throw .invalidConfig("parameter output must be probability or margin, not '\(other)'")
        }
        guard let predictor = TreePredictor(rawValue: parameters["predictor"] ?? "auto") else {
            throw .invalidConfig("parameter predictor must be auto, native or library, not '\(parameters["predictor"] ?? "")'")
        }
        treePredictor = predictor
        routes = try Self.parseRoutes(parameters["routing"])
        if let shadow = parameters["shadow_version"], !shadow.isEmpty {
            guard let version = Int64(shadow), version > 0 else { throw .invalidConfig("parameter shadow_version must be a version number, not '\(shadow)'") }
            shadowVersion = version
        } else {
            shadowVersion = nil
        }
        if backend == .xgboost { try checkXGBoostShape() }
    }

    /// `"1:90,2:10"`: version 1 gets 90 parts of the traffic, version 2 gets 10.
    static func parseRoutes(_ text: String?) throws(ModelLoadError) -> [Route] {
        guard let text, !text.isEmpty else { return [] }
        var routes: [Route] = []
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
            guard pieces.count == 2, let version = Int64(pieces[0]), version > 0, let weight = Int(pieces[1]), weight >= 0 else {
                throw .invalidConfig("parameter routing must look like \"1:90,2:10\" (version:weight), got '\(text)'")
            }
            routes.append(Route(version: version, weight: weight))
        }
        guard routes.contains(where: { $0.weight > 0 }) else { throw .invalidConfig("parameter routing gives every version weight 0") }
        return routes
    }

    /// XGBoost models read one dense FP32 matrix and give one FP32 score per row (or per class).
    private func checkXGBoostShape() throws(ModelLoadError) {
        guard inputs.count == 1, inputs[0].dataType == .fp32, inputs[0].dims.count == 1, inputs[0].dims[0] > 0 else {
            throw .invalidConfig("an xgboost model takes exactly one FP32 input with dims [number of features]")
        }
        guard outputs.count == 1, outputs[0].dataType == .fp32 else {
            throw .invalidConfig("an xgboost model gives exactly one FP32 output")
        }
        guard maxBatchSize > 0 else { throw .invalidConfig("an xgboost model needs max_batch_size > 0 (rows are the batch)") }
    }

    /// The shape a request's tensor must have, batch dimension included (-1 where any size goes).
    public func wireShape(_ spec: TensorSpec) -> [Int] {
        maxBatchSize > 0 ? [-1] + spec.dims : spec.dims
    }
}

/// Why a model or version could not be loaded: shown in RepositoryIndex.
public enum ModelLoadError: Error, CustomStringConvertible, Sendable {
    case invalidConfig(String)
    case artifact(String)
    case warmup(String)

    public var description: String {
        switch self {
        case .invalidConfig(let reason): "invalid config: \(reason)"
        case .artifact(let reason): "cannot load artifact: \(reason)"
        case .warmup(let reason): "warm-up failed: \(reason)"
        }
    }
}
