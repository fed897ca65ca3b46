import ArgumentParser
import CatalogServer
import ServiceKit

/// `catalog`: Product catalog over gRPC, on SQLite (embedded) or PostgreSQL.
@main
struct CatalogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog",
        abstract: "Product catalog over gRPC, on SQLite (embedded) or PostgreSQL.",
        discussion: "Flags override the environment (CATALOG_PORT, ...), which overrides the defaults. SIGTERM drains calls in flight, then exits.")

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let configuration = try options.configuration(service: "catalog", dependencies: [:])
        let metrics = Observability.bootstrap(service: "catalog", level: configuration.logLevel)
        let host = try await buildService(configuration: configuration, metricsExporter: metrics)
        try await host.run()
    }
}
