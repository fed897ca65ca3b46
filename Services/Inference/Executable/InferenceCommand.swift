import ArgumentParser
import Foundation
import InferenceServer
import ServiceKit

/// `inference`: Model serving over the Open Inference Protocol (Triton-compatible gRPC).
@main
struct InferenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inference",
        abstract: "Model serving over the Open Inference Protocol (Triton-compatible gRPC).",
        discussion: "Flags override the environment (INFERENCE_PORT, INFERENCE_MODEL_REPOSITORY, ...), which overrides the defaults. SIGTERM drains calls in flight, then exits.")

    @OptionGroup var options: ServiceOptions

    @Option(name: .customLong("model-repository"), help: "Model repository folder, Triton's layout (env INFERENCE_MODEL_REPOSITORY; default deploy/models).")
    var repository: String?

    @Option(name: .customLong("model-control-mode"), help: "none (load all at start), explicit (load on request) or poll (load all, rescan) (env INFERENCE_MODEL_CONTROL_MODE; default none).")
    var controlMode: String?

    @Option(name: .customLong("load-model"), help: "Model to load at start in explicit mode; repeatable (env INFERENCE_LOAD_MODELS, comma-separated).")
    var loadModels: [String] = []

    @Option(name: .customLong("repository-poll-seconds"), help: "Rescan interval in poll mode (env INFERENCE_REPOSITORY_POLL_SECONDS; default 15).")
    var pollSeconds: Double?

    @Option(name: .customLong("response-cache-mb"), help: "Response cache size for models that enable it (env INFERENCE_RESPONSE_CACHE_MB; default 64).")
    var cacheMegabytes: Int?

    func run() async throws {
        let configuration = try options.configuration(service: "inference", dependencies: [:])
        let environment = ProcessInfo.processInfo.environment
        func env(_ key: String) -> String? { environment["INFERENCE_" + key].flatMap { $0.isEmpty ? nil : $0 } }
        var settings = InferenceSettings.defaults
        settings.repository = repository ?? env("MODEL_REPOSITORY") ?? settings.repository
        let mode = controlMode ?? env("MODEL_CONTROL_MODE") ?? settings.controlMode.rawValue
        guard let parsedMode = ModelRepository.ControlMode(rawValue: mode) else {
            throw ValidationError("--model-control-mode must be none, explicit or poll, not \(mode)")
        }
        settings.controlMode = parsedMode
        settings.startupModels = loadModels.isEmpty ? (env("LOAD_MODELS")?.split(separator: ",").map(String.init) ?? []) : loadModels
        if let seconds = pollSeconds ?? env("REPOSITORY_POLL_SECONDS").flatMap(Double.init) {
            guard seconds > 0 else { throw ValidationError("--repository-poll-seconds must be positive") }
            settings.pollInterval = .milliseconds(Int64(seconds * 1000))
        }
        if let megabytes = cacheMegabytes ?? env("RESPONSE_CACHE_MB").flatMap(Int.init) {
            guard megabytes >= 0 else { throw ValidationError("--response-cache-mb must not be negative") }
            settings.responseCacheBytes = megabytes << 20
        }
        ProcessCPUs.sizeEventLoopsToAffinity()
        let metrics = Observability.bootstrap(service: "inference", level: configuration.logLevel)
        let host = try await buildService(configuration: configuration, settings: settings, metricsExporter: metrics)
        try await host.run()
    }
}
