import ArgumentParser
import CatalogClient
import CatalogServer
import Foundation
import MeridianRPC
import ServiceKit

/// `catalog`: serves the catalog (the default), or imports a product file.
@main
struct CatalogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog",
        abstract: "Product catalog over gRPC, on SQLite (embedded) or PostgreSQL.",
        subcommands: [Serve.self, Import.self],
        defaultSubcommand: Serve.self)
}

/// `catalog serve` (or just `catalog`).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serves the catalog.",
        discussion: "Flags override the environment (CATALOG_PORT, ...), which overrides the defaults. SIGTERM drains calls in flight, then exits.")

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let configuration = try options.configuration(service: "catalog")
        ProcessCPUs.sizeEventLoopsToAffinity()
        let metrics = Observability.bootstrap(service: "catalog", level: configuration.logLevel)
        let host = try await buildService(configuration: configuration, metricsExporter: metrics)
        try await host.run()
    }
}

/// `catalog import FILE.jsonl`: loads products into a running catalog, or
/// straight into a data directory through an in-process catalog.
struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Imports products from a JSON Lines file (one Product in proto3 JSON per line).",
        discussion: """
            Without --data-dir or --database-url the products go to the catalog at --address. \
            With one of them, a catalog runs in-process on that storage for the import. \
            Invalid products are reported with their line numbers and never stop the valid ones.
            """)

    @Argument(help: "The .jsonl file.")
    var file: String

    @Option(help: "Tenant to import for.")
    var tenant: String

    @Option(help: "A running catalog's host:port.")
    var address = "127.0.0.1:7101"

    @Option(name: .customLong("data-dir"), help: "Import into this embedded store instead of a running catalog.")
    var dataDirectory: String?

    @Option(name: .customLong("database-url"), help: "Import into this PostgreSQL database instead of a running catalog.")
    var databaseURL: String?

    @Option(name: .customLong("batch-size"), help: "Products per message (at most 1000).")
    var batchSize = 500

    func run() async throws {
        var local: ServiceHost?
        var target = address
        if dataDirectory != nil || databaseURL != nil {
            var configuration = ServiceConfiguration(name: "catalog", host: "127.0.0.1", port: 0, adminPort: nil,
                                                     dataDirectory: dataDirectory, databaseURL: databaseURL, logLevel: .warning)
            configuration.rpc.shutdownGracePeriod = .seconds(1)
            let host = try await buildService(configuration: configuration)
            target = "127.0.0.1:\(try await host.start())"
            local = host
        }
        let channel = try RPCChannel(target: target)
        let bar = TerminalProgress()
        let importer = ProductFileImporter(channel: channel, tenant: tenant, batchSize: batchSize)
        do {
            let summary = try await importer.importFile(atPath: file) { sent, total in bar.update(sent, of: total) }
            bar.finish()
            print(summary)
            await channel.close()
            await local?.shutdown()
            if summary.rejected + summary.unreadable > 0 { throw ExitCode(2) }
        } catch let error as RPCError {
            await channel.close()
            await local?.shutdown()
            throw ValidationError("import failed: \(error.status)")
        }
    }
}
