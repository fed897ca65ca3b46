import ArgumentParser
import Foundation
import InteropTesting
import MeridianRPC

/// `interop-client`: runs gRPC interop test cases with our client against
/// any gRPC server.
@main
struct InteropClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interop-client",
        abstract: "Runs gRPC interop test cases against a server with the Meridian client.")

    @Option(name: .customLong("server-host"), help: "Server address.")
    var serverHost = "127.0.0.1"

    @Option(name: .customLong("server-port"), help: "Server port.")
    var serverPort: Int

    @Option(name: .customLong("test-case"), help: "A case name, or all.")
    var testCase = "all"

    func run() async throws {
        let channel = try RPCChannel(host: serverHost, port: serverPort)
        let cases = testCase == "all" ? InteropCases.all : [testCase]
        var failed = 0
        for name in cases {
            do {
                try await InteropCases.run(name, channel: channel)
                print("PASS \(name)")
            } catch {
                failed += 1
                FileHandle.standardError.write(Data("FAIL \(name): \(error)\n".utf8))
            }
        }
        await channel.close()
        if failed > 0 { throw ExitCode(1) }
    }
}
