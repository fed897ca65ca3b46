import Contracts
import Foundation
import Logging
import MeridianRPC
import Metrics
import StandardServices
import Synchronization

/// `inference.GRPCInferenceService`: the Open Inference Protocol with
/// Triton's extensions (model repository, statistics), so `tritonclient`
/// and other KServe v2 clients work unchanged.
public struct InferenceHandler: Inference_GRPCInferenceServiceHandler {
    public struct Configuration: Sendable {
        /// Shadow requests running at once; beyond this they are skipped, so
        /// a slow candidate version can never pile up work behind live traffic.
        public var maxShadowInFlight = 64
        public static var defaults: Configuration { Configuration() }
    }

    public static let serverName = "meridian-inference"
    public static let serverVersion = "1.0.0"

    let repository: ModelRepository
    let cache: ResponseCache
    let configuration: Configuration
    let logger: Logger
    private let shadowSlots: ShadowSlots

    init(repository: ModelRepository, cache: ResponseCache, configuration: Configuration = .defaults, logger: Logger) {
        self.repository = repository
        self.cache = cache
        self.configuration = configuration
        self.logger = logger
        self.shadowSlots = ShadowSlots(limit: configuration.maxShadowInFlight)
    }

    // MARK: Health and metadata

    public func serverLive(request: Inference_ServerLiveRequest, context: ServerContext) async throws -> Inference_ServerLiveResponse {
        .with { $0.live = true }
    }

    public func serverReady(request: Inference_ServerReadyRequest, context: ServerContext) async throws -> Inference_ServerReadyResponse {
        .with { $0.ready = true }
    }

    public func modelReady(request: Inference_ModelReadyRequest, context: ServerContext) async throws -> Inference_ModelReadyResponse {
        guard let model = repository.servingModel(request.name) else { return .with { $0.ready = false } }
        if request.version.isEmpty { return .with { $0.ready = !model.versions.isEmpty } }
        guard let version = Int64(request.version) else { return .with { $0.ready = false } }
        return .with { $0.ready = model.versions[version] != nil }
    }

    public func serverMetadata(request: Inference_ServerMetadataRequest, context: ServerContext) async throws -> Inference_ServerMetadataResponse {
        .with {
            $0.name = Self.serverName
            $0.version = Self.serverVersion
            $0.extensions = ["model_repository", "model_configuration", "statistics", "response_cache", "dynamic_batching"]
        }
    }

    public func modelMetadata(request: Inference_ModelMetadataRequest, context: ServerContext) async throws -> Inference_ModelMetadataResponse {
        let model = try servingModel(request.name)
        if !request.version.isEmpty { _ = try version(request.version, of: model) }
        let definition = model.definition
        return .with {
            $0.name = definition.name
            $0.versions = model.versions.keys.sorted().map(String.init)
            $0.platform = definition.backend == .xgboost ? "xgboost" : "onnxruntime_onnx"
            $0.inputs = definition.inputs.map { spec in
                .with { $0.name = spec.name; $0.datatype = spec.dataType.rawValue; $0.shape = definition.wireShape(spec).map(Int64.init) }
            }
            $0.outputs = definition.outputs.map { spec in
                .with { $0.name = spec.name; $0.datatype = spec.dataType.rawValue; $0.shape = definition.wireShape(spec).map(Int64.init) }
            }
        }
    }

    public func modelConfig(request: Inference_ModelConfigRequest, context: ServerContext) async throws -> Inference_ModelConfigResponse {
        let model = try servingModel(request.name)
        if !request.version.isEmpty { _ = try version(request.version, of: model) }
        return .with { $0.config = model.definition.config }
    }

    // MARK: Inference

    public func modelInfer(request: Inference_ModelInferRequest, context: ServerContext) async throws -> Inference_ModelInferResponse {
        try await infer(request, receivedAt: context.receivedAt.uptimeNanoseconds, deadline: context.deadline?.uptimeNanoseconds)
    }

    public func modelStreamInfer(
        requests: RPCRequestStream<Inference_ModelInferRequest>,
        responses: RPCResponseWriter<Inference_ModelStreamInferResponse>,
        context: ServerContext
    ) async throws {
        // Each request is answered in order; a failed one gives an error
        // message in its place and the stream goes on, as in Triton.
        for try await request in requests {
            do {
                let response = try await infer(request, receivedAt: DispatchTime.now().uptimeNanoseconds, deadline: context.deadline?.uptimeNanoseconds)
                try await responses.write(.with { $0.inferResponse = response })
            } catch let error as RPCError {
                try await responses.write(.with {
                    $0.errorMessage = error.status.message
                    $0.inferResponse = .with { $0.id = request.id; $0.modelName = request.modelName }
                })
            }
        }
    }

    /// Statistics time a request from `receivedAt` (uptime nanoseconds): for
    /// a unary call, when its headers were read off the connection, so the
    /// time in the runtime (HTTP/2, decoding, scheduling the handler) counts
    /// as the service's, as Triton counts a request's time from its arrival.
    func infer(_ request: Inference_ModelInferRequest, receivedAt start: UInt64, deadline: UInt64?) async throws -> Inference_ModelInferResponse {
        let model = try servingModel(request.modelName)
        let served: ServedVersion
        if request.modelVersion.isEmpty {
            let routingKey = request.parameters["routing_key"].flatMap { parameter -> String? in
                switch parameter.parameterChoice {
                case .stringParam(let key)?: key
                case .int64Param(let key)?: String(key)
                case .uint64Param(let key)?: String(key)
                default: nil
                }
            }
            guard let chosen = VersionRouter.choose(model, routingKey: routingKey) else {
                throw RPCError(.unavailable, "model '\(request.modelName)' has no ready version")
            }
            served = chosen
        } else {
            served = try version(request.modelVersion, of: model)
        }
        let decoded: DecodedInferRequest
        do {
            decoded = try InferRequestDecoder.decode(request, definition: served.definition)
        } catch {
            served.statistics.recordFailure(total: DispatchTime.now().uptimeNanoseconds - start)
            throw error
        }

        var outputs: [Tensor]
        var queueNanoseconds: UInt64 = 0
        var cacheKey: ResponseCache.Key?
        var fromCache = false
        if served.definition.cacheResponses {
            let key = ResponseCache.key(model: served.definition.name, version: served.version, instance: served.instance, inputs: decoded.inputs, outputs: decoded.outputs)
            let lookupStart = DispatchTime.now().uptimeNanoseconds
            let hit = cache.lookup(key)
            served.statistics.recordCache(hit: hit != nil, lookup: DispatchTime.now().uptimeNanoseconds - lookupStart)
            if let hit {
                outputs = hit
                fromCache = true
            } else {
                outputs = []
                cacheKey = key
            }
        } else {
            outputs = []
        }
        if !fromCache {
            do {
                (outputs, queueNanoseconds) = try await served.infer(decoded.inputs, rows: decoded.rows, deadline: deadline)
            } catch {
                served.statistics.recordFailure(total: DispatchTime.now().uptimeNanoseconds - start)
                throw Self.rpcError(error, model: served.definition.name, version: served.version)
            }
            if let cacheKey { cache.store(cacheKey, outputs: outputs) }
        }

        var response = Inference_ModelInferResponse()
        response.modelName = request.modelName
        response.modelVersion = String(served.version)
        response.id = request.id
        for name in decoded.outputs {
            guard var tensor = outputs.first(where: { $0.name == name }) else { continue }
            if served.definition.maxBatchSize == 0, tensor.shape.first == 1, let spec = served.definition.outputs.first(where: { $0.name == name }), spec.dims.count < tensor.shape.count {
                tensor.shape.removeFirst()
            }
            response.outputs.append(.with {
                $0.name = tensor.name
                $0.datatype = tensor.dataType.rawValue
                $0.shape = tensor.shape.map(Int64.init)
            })
            response.rawOutputContents.append(tensor.raw)
        }
        served.statistics.recordSuccess(rows: decoded.rows, total: DispatchTime.now().uptimeNanoseconds - start,
                                        queue: queueNanoseconds, fromCache: fromCache)
        if let shadow = served.definition.shadowVersion, shadow != served.version, let candidate = model.versions[shadow] {
            startShadow(candidate, inputs: decoded, answered: served.version, outputs: outputs)
        }
        return response
    }

    /// Runs the same inputs on the shadow version in the background and logs
    /// how its outputs compare. Its answer is never returned.
    private func startShadow(_ candidate: ServedVersion, inputs: DecodedInferRequest, answered: Int64, outputs: [Tensor]) {
        guard shadowSlots.take() else {
            Counter(label: "inference_shadow_total", dimensions: [("model", candidate.definition.name), ("version", String(candidate.version)), ("outcome", "skipped")]).increment()
            return
        }
        let logger = logger
        Task.detached { [shadowSlots] in
            defer { shadowSlots.give() }
            let name = candidate.definition.name
            let outcome: String
            do {
                let (shadowOutputs, _) = try await candidate.infer(inputs.inputs, rows: inputs.rows, deadline: nil)
                let difference = ShadowComparison.maxRelativeDifference(outputs, shadowOutputs, names: inputs.outputs)
                outcome = difference.map { $0 <= 1e-6 ? "same" : "different" } ?? "incomparable"
                logger.debug("shadow inference compared", metadata: [
                    "model": "\(name)", "answered": "\(answered)", "shadow": "\(candidate.version)",
                    "max_relative_difference": "\(difference.map { String($0) } ?? "n/a")"])
                if let difference {
                    Recorder(label: "inference_shadow_max_relative_difference", dimensions: [("model", name), ("version", String(candidate.version))]).record(difference)
                }
            } catch {
                outcome = "error"
                logger.warning("shadow inference failed", metadata: ["model": "\(name)", "shadow": "\(candidate.version)", "error": "\(error)"])
            }
            Counter(label: "inference_shadow_total", dimensions: [("model", name), ("version", String(candidate.version)), ("outcome", outcome)]).increment()
        }
    }

    static func rpcError(_ error: any Error, model: String, version: Int64) -> any Error {
        switch error {
        case DynamicBatcher.Rejection.queueFull(let size):
            return RPCError.rich(.unavailable, "model '\(model)' version \(version): queue is full (\(size) requests waiting); retry later",
                                 reason: "QUEUE_FULL", metadata: ["model": model, "version": String(version)])
        case DynamicBatcher.Rejection.timedOut(let waited):
            return RPCError.rich(.unavailable, "model '\(model)' version \(version): request timed out after \(waited.wholeNanoseconds / 1000) µs in the queue",
                                 reason: "QUEUE_TIMEOUT", metadata: ["model": model, "version": String(version)])
        case let error as BackendError:
            return RPCError(.internal, "model '\(model)' version \(version) failed: \(error.description)")
        case is CancellationError:
            return RPCError(.cancelled, "request cancelled")
        default:
            return error
        }
    }

    // MARK: Statistics

    public func modelStatistics(request: Inference_ModelStatisticsRequest, context: ServerContext) async throws -> Inference_ModelStatisticsResponse {
        var stats: [Inference_ModelStatistics] = []
        if request.name.isEmpty {
            for (name, model) in repository.servingModels.sorted(by: { $0.key < $1.key }) {
                for (version, served) in model.versions.sorted(by: { $0.key < $1.key }) {
                    stats.append(served.statistics.proto(name: name, version: version))
                }
            }
        } else {
            let model = try servingModel(request.name)
            let versions = request.version.isEmpty ? model.versions.values.sorted { $0.version < $1.version } : [try version(request.version, of: model)]
            stats = versions.map { $0.statistics.proto(name: request.name, version: $0.version) }
        }
        return .with { $0.modelStats = stats }
    }

    // MARK: Repository

    public func repositoryIndex(request: Inference_RepositoryIndexRequest, context: ServerContext) async throws -> Inference_RepositoryIndexResponse {
        let models = await repository.index(readyOnly: request.ready)
        return .with { $0.models = models }
    }

    public func repositoryModelLoad(request: Inference_RepositoryModelLoadRequest, context: ServerContext) async throws -> Inference_RepositoryModelLoadResponse {
        try checkExplicitMode("load")
        guard !request.modelName.isEmpty else {
            throw RPCError.invalidArgument(violations: [FieldViolation("model_name", "name the model to load")])
        }
        guard repository.modelFolders().contains(request.modelName) else {
            throw RPCError.notFound("no model folder '\(request.modelName)' in the repository")
        }
        let problem = await repository.load(request.modelName)
        if repository.servingModel(request.modelName) == nil {
            throw RPCError.invalidArgument("failed to load model '\(request.modelName)': \(problem ?? "no version could be loaded (see RepositoryIndex)")")
        }
        cache.invalidate(model: request.modelName)
        return .init()
    }

    public func repositoryModelUnload(request: Inference_RepositoryModelUnloadRequest, context: ServerContext) async throws -> Inference_RepositoryModelUnloadResponse {
        try checkExplicitMode("unload")
        guard !request.modelName.isEmpty else {
            throw RPCError.invalidArgument(violations: [FieldViolation("model_name", "name the model to unload")])
        }
        guard await repository.isKnown(request.modelName) else {
            throw RPCError.notFound("no model '\(request.modelName)' in the repository")
        }
        await repository.unload(request.modelName)
        cache.invalidate(model: request.modelName)
        return .init()
    }

    private func checkExplicitMode(_ action: String) throws {
        guard repository.mode == .explicit else {
            throw RPCError(.failedPrecondition, "explicit model \(action) is not allowed: the server runs with --model-control-mode \(repository.mode.rawValue) (use explicit)")
        }
    }

    // MARK: Not offered

    public func systemSharedMemoryStatus(request: Inference_SystemSharedMemoryStatusRequest, context: ServerContext) async throws -> Inference_SystemSharedMemoryStatusResponse {
        throw Self.noSharedMemory
    }
    public func systemSharedMemoryRegister(request: Inference_SystemSharedMemoryRegisterRequest, context: ServerContext) async throws -> Inference_SystemSharedMemoryRegisterResponse {
        throw Self.noSharedMemory
    }
    public func systemSharedMemoryUnregister(request: Inference_SystemSharedMemoryUnregisterRequest, context: ServerContext) async throws -> Inference_SystemSharedMemoryUnregisterResponse {
        throw Self.noSharedMemory
    }
    public func cudaSharedMemoryStatus(request: Inference_CudaSharedMemoryStatusRequest, context: ServerContext) async throws -> Inference_CudaSharedMemoryStatusResponse {
        throw Self.noSharedMemory
    }
    public func cudaSharedMemoryRegister(request: Inference_CudaSharedMemoryRegisterRequest, context: ServerContext) async throws -> Inference_CudaSharedMemoryRegisterResponse {
        throw Self.noSharedMemory
    }
    public func cudaSharedMemoryUnregister(request: Inference_CudaSharedMemoryUnregisterRequest, context: ServerContext) async throws -> Inference_CudaSharedMemoryUnregisterResponse {
        throw Self.noSharedMemory
    }
    public func traceSetting(request: Inference_TraceSettingRequest, context: ServerContext) async throws -> Inference_TraceSettingResponse {
        throw RPCError(.unimplemented, "trace settings are not offered; traces follow the platform's tracing configuration")
    }
    public func logSettings(request: Inference_LogSettingsRequest, context: ServerContext) async throws -> Inference_LogSettingsResponse {
        throw RPCError(.unimplemented, "log settings are not offered; use --log-level")
    }

    private static let noSharedMemory = RPCError(.unimplemented, "shared-memory tensors are not offered: send tensors in the request (raw_input_contents)")

    // MARK: Helpers

    private func servingModel(_ name: String) throws -> ModelRepository.ServingModel {
        guard !name.isEmpty else { throw RPCError.invalidArgument(violations: [FieldViolation("model_name", "name the model")]) }
        guard let model = repository.servingModel(name) else {
            if repository.modelFolders().contains(name) {
                throw RPCError(.unavailable, "model '\(name)' is not loaded (RepositoryIndex tells why)")
            }
            throw RPCError.notFound("no model '\(name)' in the repository")
        }
        return model
    }

    private func version(_ text: String, of model: ModelRepository.ServingModel) throws -> ServedVersion {
        guard let number = Int64(text), number > 0 else {
            throw RPCError.invalidArgument(violations: [FieldViolation("model_version", "'\(text)' is not a version number")])
        }
        guard let served = model.versions[number] else {
            throw RPCError.notFound("version \(number) of model '\(model.definition.name)' is not loaded (ready: \(model.versions.keys.sorted().map(String.init).joined(separator: ", ")))")
        }
        return served
    }
}

/// Bounds shadow work in flight.
final class ShadowSlots: Sendable {
    private let used = Mutex(0)
    let limit: Int
    init(limit: Int) { self.limit = limit }
    func take() -> Bool { used.withLock { guard $0 < limit else { return false }; $0 += 1; return true } }
    func give() { used.withLock { $0 -= 1 } }
}

/// How far a shadow version's outputs are from the answered ones.
enum ShadowComparison {
    static func maxRelativeDifference(_ answered: [Tensor], _ shadow: [Tensor], names: [String]) -> Double? {
        var worst = 0.0
        for name in names {
            guard let a = answered.first(where: { $0.name == name }), let b = shadow.first(where: { $0.name == name }),
                  a.dataType == .fp32, b.dataType == .fp32, a.shape == b.shape else { return nil }
            for (x, y) in zip(a.float32Values, b.float32Values) {
                let scale = max(abs(Double(x)), abs(Double(y)), 1e-12)
                worst = max(worst, abs(Double(x) - Double(y)) / scale)
            }
        }
        return worst
    }
}
