import ArgumentParser
import FeatureStoreClient
import FeatureStoreServer
import Foundation
import MeridianRPC
import ServiceKit
import Contracts
import SwiftProtobuf

/// `feature-store`: serves online features (the default), or ingests a file.
@main
struct FeatureStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feature-store",
        abstract: "Online feature store with Feast semantics over gRPC.",
        subcommands: [Serve.self, Apply.self, Ingest.self],
        defaultSubcommand: Serve.self)
}

/// `feature-store serve` (or just `feature-store`).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serves online features.",
        discussion: "Flags override the environment (FEATURE_STORE_PORT, ...), which overrides the defaults. SIGTERM drains calls in flight, then exits.")

    @OptionGroup var options: ServiceOptions

    @Option(name: .customLong("catalog-address"), help: "host:port of the catalog (env FEATURE_STORE_CATALOG_ADDRESS).")
    var catalogAddress: String?

    @Option(name: .customLong("catalog-tenants"),
            help: "Comma-separated tenants whose item features follow the catalog's change feed (env FEATURE_STORE_CATALOG_TENANTS; with --demo-data, default demo).")
    var catalogTenants: String?

    func run() async throws {
        let configuration = try options.configuration(service: "feature-store", dependencies: ["catalog": catalogAddress])
        ProcessCPUs.sizeEventLoopsToAffinity()
        let metrics = Observability.bootstrap(service: "feature-store", level: configuration.logLevel)
        let tenants = (catalogTenants ?? ProcessInfo.processInfo.environment["FEATURE_STORE_CATALOG_TENANTS"]
            ?? (configuration.seedDemoData ? "demo" : "")).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let host = try await buildService(configuration: configuration, catalogTenants: tenants, metricsExporter: metrics)
        try await host.run()
    }
}

/// `feature-store ingest --view V FILE`: loads a CSV or JSON Lines file.
struct Ingest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Writes feature rows from a CSV or JSON Lines file into one feature view.",
        discussion: """
            CSV: a header with the view's join keys, features and event_time (RFC 3339 or epoch seconds); \
            empty cells are null, lists are JSON arrays, bytes base64. JSON Lines (.jsonl): one object per line. \
            A failed run resumes from FILE.ingest-checkpoint; replayed batches are not written twice.
            """)

    @Argument(help: "The .csv or .jsonl file.")
    var file: String

    @Option(help: "The feature view to write.")
    var view: String

    @Option(help: "Tenant to write for.")
    var tenant: String

    @Option(help: "A running feature store's host:port.")
    var address = "127.0.0.1:7102"

    @Option(name: .customLong("batch-size"), help: "Rows per WriteFeatures call (at most 10,000).")
    var batchSize = 1000

    @Flag(name: .customLong("integer-keys"), help: "CSV join key cells that are integers are int64 keys (JSON Lines keeps JSON's types).")
    var integerKeys = false

    func run() async throws {
        let channel = try RPCChannel(target: address)
        let bar = TerminalProgress()
        let ingester = FeatureFileIngester(channel: channel, tenant: tenant, view: view, batchSize: batchSize, integerKeys: integerKeys)
        do {
            let summary = try await ingester.ingest(path: file) { done, total in bar.update(done, of: total) }
            bar.finish()
            print(summary)
            await channel.close()
            if summary.rejected > 0 { throw ExitCode(2) }
        } catch let error as RPCError {
            bar.finish()
            await channel.close()
            throw ValidationError("ingest stopped: \(error.status); run the same command again to resume")
        }
    }
}

/// `feature-store apply FILE.jsonl`: applies definitions, like `feast apply`.
struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Applies feature views and feature services from a JSON Lines file.",
        discussion: """
            One definition per line, in proto3 JSON: {"feature_view": {...}} or {"feature_service": {...}}, \
            applied in file order (views before the services that use them). Unchanged definitions stay as they are.
            """)

    @Argument(help: "The .jsonl file.")
    var file: String

    @Option(help: "Tenant to apply for.")
    var tenant: String

    @Option(help: "A running feature store's host:port.")
    var address = "127.0.0.1:7102"

    func run() async throws {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file)") }
        let channel = try RPCChannel(target: address)
        let client = Platform_Featurestore_V1_FeatureStoreServiceClient(channel: channel)
        var options = CallOptions(timeout: .seconds(30))
        options.metadata.add("x-tenant-id", tenant)
        var failed = 0
        for (number, line) in text.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            do {
                let definition = try Google_Protobuf_Struct(jsonString: String(line))
                if let view = definition.fields["feature_view"] {
                    let parsed = try FeatureView(jsonString: view.jsonString())
                    let response = try await client.applyFeatureView(.with { $0.featureView = parsed }, options: options)
                    print("feature view \(response.featureView.name): \(response.created ? "created" : response.changed ? "changed" : "unchanged"), version \(response.featureView.version)")
                } else if let service = definition.fields["feature_service"] {
                    let parsed = try FeatureService(jsonString: service.jsonString())
                    let response = try await client.applyFeatureService(.with { $0.featureService = parsed }, options: options)
                    print("feature service \(response.featureService.name): \(response.created ? "created" : response.changed ? "changed" : "unchanged"), version \(response.featureService.version)")
                } else {
                    throw ValidationError("expected feature_view or feature_service")
                }
            } catch let error as RPCError {
                failed += 1
                print("line \(number + 1): \(error.code): \(error.message)")
            } catch {
                failed += 1
                print("line \(number + 1): \(error)")
            }
        }
        await channel.close()
        if failed > 0 { throw ExitCode(2) }
    }
}
