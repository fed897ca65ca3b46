import ArgumentParser
import Foundation
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

    @Option(name: .customLong("preload-tenants"),
            help: "Comma-separated tenants whose catalog is mirrored from the start (env PERSONALIZATION_PRELOAD_TENANTS; with --demo-data, default demo). Others start on their first request.")
    var preloadTenants: String?

    @Option(name: .customLong("max-per-category"), help: "Diversity: most results of one category among those returned (env PERSONALIZATION_MAX_PER_CATEGORY; default 5; 0 turns it off).")
    var maxPerCategory: Int?

    func run() async throws {
        let configuration = try options.configuration(service: "personalization", dependencies: ["catalog": catalogAddress, "feature-store": featureStoreAddress, "inference": inferenceAddress, "experimentation": experimentationAddress])
        var settings = PersonalizationSettings.defaults
        let environment = ProcessInfo.processInfo.environment
        settings.preloadTenants = (preloadTenants ?? environment["PERSONALIZATION_PRELOAD_TENANTS"] ?? (configuration.seedDemoData ? "demo" : ""))
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if let text = maxPerCategory.map(String.init) ?? environment["PERSONALIZATION_MAX_PER_CATEGORY"] {
            guard let value = Int(text), value >= 0 else { throw ValidationError("max-per-category must be a non-negative integer, got \(text)") }
            settings.maxPerCategory = value
        }
        ProcessCPUs.sizeEventLoopsToAffinity()
        let metrics = Observability.bootstrap(service: "personalization", level: configuration.logLevel)
        let host = try await buildService(configuration: configuration, settings: settings, metricsExporter: metrics)
        try await host.run()
    }
}
