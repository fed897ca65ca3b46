import Foundation
import Logging
import MeridianRPC
import ServiceKit

/// What the inference service serves and how, beyond the common service configuration.
public struct InferenceSettings: Sendable {
    /// The model repository folder (Triton's layout).
    public var repository: String
    public var controlMode: ModelRepository.ControlMode
    /// Models loaded at start in explicit mode.
    public var startupModels: [String]
    /// Poll mode's rescan interval.
    public var pollInterval: Duration
    /// Size limit of the response cache shared by models that enable it.
    public var responseCacheBytes: Int

    public static var defaults: InferenceSettings {
        InferenceSettings(repository: "deploy/models", controlMode: .none, startupModels: [],
                          pollInterval: .seconds(15), responseCacheBytes: 64 << 20)
    }
}

/// Builds the inference service: what the executable runs and what tests
/// start in-process. Models are loaded (and warmed) before it returns, so a
/// started service serves them at once.
public func buildService(
    configuration: ServiceConfiguration,
    settings: InferenceSettings = .defaults,
    logger: Logger = Logger(label: "inference"),
    metricsExporter: (@Sendable () -> [UInt8])? = nil
) async throws -> ServiceHost {
    let root = URL(fileURLWithPath: settings.repository, isDirectory: true)
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw InferenceStartupError("model repository \(root.path) is not a folder")
    }
    let repository = ModelRepository(root: root, mode: settings.controlMode, logger: logger)
    switch settings.controlMode {
    case .none, .poll:
        await repository.loadAll()
    case .explicit:
        for name in settings.startupModels {
            if let problem = await repository.load(name), repository.servingModel(name) == nil {
                throw InferenceStartupError("model '\(name)' named at start did not load: \(problem)")
            }
        }
    }
    let cache = ResponseCache(capacityBytes: settings.responseCacheBytes)
    let handler = InferenceHandler(repository: repository, cache: cache, logger: logger)
    let polling: Task<Void, Never>? = settings.controlMode == .poll ? Task {
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.pollInterval)
            if Task.isCancelled { break }
            await repository.loadAll()
        }
    } : nil
    return ServiceHost(
        configuration: configuration, services: [handler], logger: logger, metricsExporter: metricsExporter,
        onShutdown: { polling?.cancel() })
}

public struct InferenceStartupError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
