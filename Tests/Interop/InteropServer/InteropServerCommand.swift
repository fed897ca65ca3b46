import ArgumentParser
import Foundation
import InteropTesting
import Logging
import MeridianRPC
import ServiceKit
import StandardServices

/// `interop-server`: gRPC's interop TestService on our runtime, with health
/// and reflection, for interop tests and the runtime benchmark.
@main
struct InteropServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interop-server",
        abstract: "Serves grpc.testing.TestService (gRPC interop tests) on the Meridian runtime.")

    @Option(help: "Port to listen on; 0 picks a free one.")
    var port = 0

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    func run() async throws {
        var logger = Logger(label: "interop-server")
        logger.logLevel = .warning
        let testService = TestServiceProvider()
        let health = HealthService()
        health.setStatus(.serving)
        health.setStatus(.serving, for: Grpc_Testing_TestService.name)
        let reflection = ReflectionService(services: [testService, health])
        var configuration = RPCServer.Configuration.defaults
        configuration.host = host
        configuration.port = port
        let server = RPCServer(
            configuration: configuration,
            services: [testService, health, reflection, reflection.v1alpha],
            logger: logger)
        let address = try await server.start()
        FileHandle.standardOutput.write(Data("listening on \(address.port ?? 0)\n".utf8))
        await Signals.waitForTermination()
        await server.shutdown(gracePeriod: .seconds(1))
    }
}
