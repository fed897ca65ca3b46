import ArgumentParser
import FeatureStoreServer
import ServiceKit

/// `feature-store`: Online feature store with Feast semantics over gRPC.
@main
struct FeatureStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feature-store",
        abstract: "Online feature store with Feast semantics over gRPC.",
        discussion: "Flags override the environment (FEATURE_STORE_PORT, ...), which overrides the defaults. SIGTERM drains calls in flight, then exits.")

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let configuration = try options.configuration(service: "feature-store", dependencies: [:])
        let metrics = Observability.bootstrap(service: "feature-store", level: configuration.logLevel)
        let host = try await buildService(configuration: configuration, metricsExporter: metrics)
        try await host.run()
    }
}
