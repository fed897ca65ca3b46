import Contracts
import Foundation
import MeridianRPC
import Testing

/// The shipped `feature-store` executable, killed with SIGKILL during a
/// stream of writes: every acknowledged row is there after a restart.
@Suite struct FeatureStoreCrashTests {
    @Test func killNineDuringWritesLosesNothingAcknowledged() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feature-store-crash-\(UUID().uuidString)").path
        let service = try ServiceProcess("feature-store", arguments: ["--data-dir", directory])
        let channel = try RPCChannel(host: "127.0.0.1", port: service.port)
        let client = Platform_Featurestore_V1_FeatureStoreServiceClient(channel: channel)
        var applied = false
        for _ in 0..<100 where !applied {
            applied = (try? await client.applyFeatureView(.with { $0.featureView = FeatureStoreFixture.userStats() }, options: FeatureStoreFixture.options)) != nil
            if !applied { try await Task.sleep(for: .milliseconds(100)) }
        }
        try #require(applied, "the service did not start")

        // Each batch writes a new value for the same 50 users, so the last
        // acknowledged batch must be what the store serves afterwards.
        let acknowledged = await withTaskGroup(of: Int64.self) { group in
            group.addTask {
                var last: Int64 = -1
                for batch in Int64(0)..<10_000 {
                    let rows = (0..<50).map { user in
                        FeatureStoreFixture.row(user: "u\(user)", time: Date(timeIntervalSince1970: 1_700_000_000 + Double(batch)), ["purchases": int64(batch)])
                    }
                    guard (try? await client.writeFeatures(.with { $0.featureView = "user_stats"; $0.rows = rows }, options: FeatureStoreFixture.options)) != nil
                    else { break }
                    last = batch
                }
                return last
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(600))
                service.killNine()
                return -1
            }
            return await group.reduce(-1) { max($0, $1) }
        }
        await channel.close()
        #expect(acknowledged >= 0, "writes were acknowledged before the kill")

        let restarted = try await FeatureStoreFixture(dataDirectory: directory)
        let read = try await restarted.lookup(["user_stats:purchases"], users: (0..<50).map { "u\($0)" })
        for value in read.results[1].values {
            // The batch in flight at the kill may or may not have committed.
            #expect(value.int64Val == acknowledged || value.int64Val == acknowledged + 1)
        }
        await restarted.stop()
    }
}
