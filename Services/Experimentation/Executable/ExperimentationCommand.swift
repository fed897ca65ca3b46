import ArgumentParser
import ExperimentationServer
import ServiceKit

/// `experimentation`: A/B assignment, exposures and results over gRPC.
@main
struct ExperimentationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experimentation",
        abstract: "A/B assignment, exposures and results over gRPC.",
        discussion: "Flags override the environment (EXPERIMENTATION_PORT, ...), which overrides the defaults. SIGTERM drains calls in flight, then exits.")

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let configuration = try options.configuration(service: "experimentation", dependencies: [:])
        let metrics = Observability.bootstrap(service: "experimentation", level: configuration.logLevel)
        let host = try await buildService(configuration: configuration, metricsExporter: metrics)
        try await host.run()
    }
}
