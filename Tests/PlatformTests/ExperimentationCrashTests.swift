import Contracts
import ExperimentationServer
import Foundation
import MeridianRPC
import ServiceKit
import Testing

/// The shipped `experimentation` executable, killed with SIGKILL in the
/// middle of a stream of writes: everything it acknowledged is there after a
/// restart.
@Suite struct ExperimentationCrashTests {
    @Test func killNineMidBurstLosesNothingAcknowledged() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("experimentation-crash-\(UUID().uuidString)").path
        let service = try ServiceProcess("experimentation", arguments: ["--data-dir", directory])
        let channel = try RPCChannel(host: "127.0.0.1", port: service.port)
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
                service.killNine()
                return []
            }
            var all: [Platform_Experimentation_V1_Exposure] = []
            for await part in group { all += part }
            return all
        }
        service.killNine()
        #expect(service.process.terminationReason == .uncaughtSignal)
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
}
