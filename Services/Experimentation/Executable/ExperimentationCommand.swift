import ArgumentParser
import Contracts
import ExperimentationServer
import Foundation
import MeridianRPC
import ServiceKit
import SwiftProtobuf

/// `experimentation`: serves A/B assignment (the default), or applies
/// experiment definitions from a file.
@main
struct ExperimentationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experimentation",
        abstract: "A/B assignment, exposures and results over gRPC.",
        subcommands: [Serve.self, Apply.self],
        defaultSubcommand: Serve.self)
}

/// `experimentation serve` (or just `experimentation`).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serves experimentation.",
        discussion: "Flags override the environment (EXPERIMENTATION_PORT, ...), which overrides the defaults. SIGTERM drains calls in flight and the ingestion queue, then exits.")

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let configuration = try options.configuration(service: "experimentation")
        ProcessCPUs.sizeEventLoopsToAffinity()
        let metrics = Observability.bootstrap(service: "experimentation", level: configuration.logLevel)
        let host = try await buildService(configuration: configuration, metricsExporter: metrics)
        try await host.run()
    }
}

/// `experimentation apply FILE.jsonl`: creates the experiments a file
/// defines (one Experiment in proto3 JSON per line) in a running service.
struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Creates experiments from a JSON Lines file (one Experiment in proto3 JSON per line).",
        discussion: "Experiments that already exist are left as they are and reported. Running it again is safe.")

    @Argument(help: "The .jsonl file.")
    var file: String

    @Option(help: "Tenant to create them for.")
    var tenant: String

    @Option(help: "A running experimentation service's host:port.")
    var address = "127.0.0.1:7104"

    func run() async throws {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file)") }
        let channel = try RPCChannel(target: address)
        let client = Platform_Experimentation_V1_ExperimentationServiceClient(channel: channel)
        var options = CallOptions(timeout: .seconds(10))
        options.metadata.add("x-tenant-id", tenant)
        var created = 0, existing = 0, failed = 0
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            do {
                let experiment = try Experiment(jsonString: String(line))
                _ = try await client.createExperiment(.with { $0.experiment = experiment }, options: options)
                created += 1
            } catch let error as RPCError where error.code == .alreadyExists {
                existing += 1
            } catch let error as RPCError {
                failed += 1
                print("line \(number + 1): \(error.code): \(error.message)")
            } catch {
                failed += 1
                print("line \(number + 1): not an Experiment in proto3 JSON: \(error)")
            }
        }
        await channel.close()
        print("\(created) created, \(existing) already existed, \(failed) failed")
        if failed > 0 { throw ExitCode(2) }
    }
}
