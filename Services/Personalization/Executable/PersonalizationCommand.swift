import ArgumentParser
import PersonalizationServer
import ServiceKit

/// `personalization`: Recommendations orchestrating catalog, features, inference and experiments.
@main
struct PersonalizationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "personalization",
        abstract: "Recommendations orchestrating catalog, features, inference and experiments.",
        discussion: "Flags override the environment (PERSONALIZATION_PORT, ...), which overrides the defaults. SIGTERM drains calls in flight, then exits.")

    @OptionGroup var options: ServiceOptions

    @Option(name: .customLong("catalog-address"), help: "host:port of the catalog service (env PERSONALIZATION_CATALOG_ADDRESS).")
    var catalogAddress: String?

    @Option(name: .customLong("feature-store-address"), help: "host:port of the feature-store service (env PERSONALIZATION_FEATURE_STORE_ADDRESS).")
    var featureStoreAddress: String?

    @Option(name: .customLong("inference-address"), help: "host:port of the inference service (env PERSONALIZATION_INFERENCE_ADDRESS).")
    var inferenceAddress: String?

    @Option(name: .customLong("experimentation-address"), help: "host:port of the experimentation service (env PERSONALIZATION_EXPERIMENTATION_ADDRESS).")
    var experimentationAddress: String?

    func run() async throws {
        let configuration = try options.configuration(service: "personalization", dependencies: ["catalog": catalogAddress, "feature-store": featureStoreAddress, "inference": inferenceAddress, "experimentation": experimentationAddress])
        let metrics = Observability.bootstrap(service: "personalization", level: configuration.logLevel)
        let host = try await buildService(configuration: configuration, metricsExporter: metrics)
        try await host.run()
    }
}
