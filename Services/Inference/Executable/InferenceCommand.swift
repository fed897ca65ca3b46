import ArgumentParser
import InferenceServer
import ServiceKit

/// `inference`: Model serving over the Open Inference Protocol (Triton-compatible gRPC).
@main
struct InferenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inference",
        abstract: "Model serving over the Open Inference Protocol (Triton-compatible gRPC).",
        discussion: "Flags override the environment (INFERENCE_PORT, ...), which overrides the defaults. SIGTERM drains calls in flight, then exits.")

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let configuration = try options.configuration(service: "inference", dependencies: [:])
        let metrics = Observability.bootstrap(service: "inference", level: configuration.logLevel)
        let host = try await buildService(configuration: configuration, metricsExporter: metrics)
        try await host.run()
    }
}
