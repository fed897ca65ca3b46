import Contracts
import FeatureStoreClient
import Foundation
import MeridianRPC
import Testing

/// `feature-store ingest`: CSV and JSON Lines into a view, bad lines
/// reported, and a run that stopped halfway resumed from its checkpoint.
@Suite struct FeatureIngestTests {
    static func file(_ name: String, _ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ingest-\(UUID().uuidString)-\(name)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func theCommandLineIngestsCSV() async throws {
        let store = try await FeatureStoreFixture()
        _ = try await store.apply(FeatureStoreFixture.userStats())
        let path = try Self.file("users.csv", """
            user_id,purchases,spend,segment,event_time
            u1,3,29.5,"gold, early",2026-11-01T10:00:00Z
            u2,,12,silver,1793527200
            u3,many,1,bronze,2026-11-01T10:00:00Z
            u4,1,2,bronze,yesterday

            """)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let bin = ProcessInfo.processInfo.environment["MERIDIAN_BIN_DIR"].map { URL(fileURLWithPath: $0) } ?? root.appendingPathComponent(".build/debug")
        let process = Process()
        process.executableURL = bin.appendingPathComponent("feature-store")
        process.arguments = ["ingest", path, "--view", "user_stats", "--tenant", "acme", "--address", "127.0.0.1:\(store.host.port ?? 0)"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // Read before waiting, so a full pipe can never block the process.
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 2, "bad lines: exit 2\n\(text)")
        #expect(text.contains("4 lines: 2 written, 0 older than stored, 2 rejected"), "\(text)")
        #expect(text.contains("line 4: values.purchases") || text.contains("line 4: purchases"), "\(text)")
        #expect(text.contains("line 5: event_time"), "\(text)")

        let read = try await store.lookup(["user_stats:purchases", "user_stats:spend", "user_stats:segment"], users: ["u1", "u2"])
        #expect(read.results[1].values[0].int64Val == 3)
        #expect(read.results[1].statuses[1] == .nullValue, "an empty cell is null")
        #expect(read.results[2].values.map(\.doubleVal) == [29.5, 12])
        #expect(read.results[3].values[0].stringVal == "gold, early")
        #expect(read.results[1].eventTimestamps[1].seconds == 1_793_527_200)
        await store.stop()
    }

    @Test func jsonLinesResumeFromTheCheckpoint() async throws {
        let store = try await FeatureStoreFixture()
        _ = try await store.apply(FeatureStoreFixture.userStats())
        let lines = (1...10).map { #"{"user_id": "u\#($0)", "purchases": \#($0), "event_time": 1793527200}"# }
        let path = try Self.file("users.jsonl", lines.joined(separator: "\n") + "\n")
        // A previous run acknowledged lines 1-4, then stopped.
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let digest = FeatureFileIngester.digest(of: data)
        try "\(digest) 4\n".write(toFile: FeatureFileIngester.checkpointPath(for: path), atomically: true, encoding: .utf8)

        let ingester = FeatureFileIngester(channel: store.channel, tenant: "acme", view: "user_stats", batchSize: 3)
        let summary = try await ingester.ingest(path: path)
        #expect(summary.resumed == 4)
        #expect(summary.written == 6)
        #expect(!FileManager.default.fileExists(atPath: FeatureFileIngester.checkpointPath(for: path)), "a finished run removes its checkpoint")
        let read = try await store.lookup(["user_stats:purchases"], users: ["u4", "u5", "u10"])
        #expect(read.results[1].statuses == [.notFound, .present, .present], "lines the checkpoint covers are not sent again")

        // Running it again writes the same rows again: same event time, same state.
        let again = try await ingester.ingest(path: path)
        #expect(again.written == 10 && again.rejected == 0)
        await store.stop()
    }
}
