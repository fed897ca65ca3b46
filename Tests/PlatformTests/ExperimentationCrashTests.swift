import Contracts
import ExperimentationServer
import Foundation
import MeridianRPC
import ServiceKit
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The shipped `experimentation` executable, killed with SIGKILL in the
/// middle of a stream of writes: everything it acknowledged is there after a
/// restart.
@Suite struct ExperimentationCrashTests {
    @Test func killNineMidBurstLosesNothingAcknowledged() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let bin = ProcessInfo.processInfo.environment["MERIDIAN_BIN_DIR"].map { URL(fileURLWithPath: $0) }
            ?? root.appendingPathComponent(".build/debug")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("experimentation-crash-\(UUID().uuidString)").path
        let port = try freePort()
        let process = Process()
        process.executableURL = bin.appendingPathComponent("experimentation")
        process.arguments = ["--port", "\(port)", "--admin-port", "0", "--data-dir", directory, "--log-level", "warning", "--host", "127.0.0.1"]
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        let channel = try RPCChannel(host: "127.0.0.1", port: port)
        let client = Platform_Experimentation_V1_ExperimentationServiceClient(channel: channel)
        let options = ExperimentationFixture.options()
        // Wait until it serves.
        var created = false
        for _ in 0..<100 where !created {
            do {
                _ = try await client.createExperiment(.with { $0.experiment = ExperimentationFixture.experiment("crash") }, options: options)
                created = true
            } catch {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        try #require(created, "the service did not start")

        // Four writers stream batches; the process is killed while they run.
        let acknowledged = await withTaskGroup(of: [Platform_Experimentation_V1_Exposure].self) { group in
            for writer in 0..<4 {
                group.addTask {
                    var stored: [Platform_Experimentation_V1_Exposure] = []
                    for batch in 0..<1_000 {
                        let exposures = (0..<50).map { index in
                            Platform_Experimentation_V1_Exposure.with {
                                $0.experimentKey = "crash"
                                $0.variationKey = "treatment1"
                                $0.unitID = "w\(writer)-b\(batch)-u\(index)"
                            }
                        }
                        guard (try? await client.logExposures(.with { $0.exposures = exposures }, options: options)) != nil else { break }
                        stored += exposures
                    }
                    return stored
                }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(700))
                kill(process.processIdentifier, SIGKILL)
                return []
            }
            var all: [Platform_Experimentation_V1_Exposure] = []
            for await part in group { all += part }
            return all
        }
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)
        await channel.close()
        #expect(acknowledged.count > 0, "some writes were acknowledged before the kill")

        // Restarted on the same data: sending every acknowledged exposure
        // again finds each one already stored.
        let restarted = try await ExperimentationFixture(dataDirectory: directory)
        var duplicates = 0
        for start in stride(from: 0, to: acknowledged.count, by: 5_000) {
            let chunk = Array(acknowledged[start..<min(start + 5_000, acknowledged.count)])
            let response = try await restarted.client.logExposures(.with { $0.exposures = chunk }, options: options)
            #expect(response.accepted == 0, "acknowledged exposures were lost")
            duplicates += Int(response.duplicates)
        }
        #expect(duplicates == acknowledged.count)
        await restarted.stop()
    }

    /// A port nobody listens on: bind to 0, read it back, release it.
    private func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ConformanceError("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
