import Contracts
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MeridianRPC
import Testing

/// The shipped executable's /metrics (the only place the metrics system is
/// bootstrapped) reports writes and lookups per view.
@Suite struct FeatureStoreMetricsTests {
    @Test func writesAndLookupsShowOnTheAdminPort() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feature-store-metrics-\(UUID().uuidString)").path
        let service = try ServiceProcess("feature-store", arguments: ["--data-dir", directory], admin: true)
        defer { service.killNine() }
        let channel = try RPCChannel(host: "127.0.0.1", port: service.port)
        let client = Platform_Featurestore_V1_FeatureStoreServiceClient(channel: channel)
        var applied = false
        for _ in 0..<100 where !applied {
            applied = (try? await client.applyFeatureView(.with { $0.featureView = FeatureStoreFixture.userStats(ttl: 60) }, options: FeatureStoreFixture.options)) != nil
            if !applied { try await Task.sleep(for: .milliseconds(100)) }
        }
        try #require(applied)
        _ = try await client.writeFeatures(.with {
            $0.featureView = "user_stats"
            $0.rows = [FeatureStoreFixture.row(user: "u1", time: Date(timeIntervalSince1970: 1_800_000_000 - 86_400 * 365), ["purchases": int64(1)]),
                       FeatureStoreFixture.row(user: "u2", time: Date(), ["purchases": int64(2)])]
        }, options: FeatureStoreFixture.options)
        _ = try await client.getOnlineFeatures(.with {
            $0.features = .with { $0.val = ["user_stats:purchases"] }
            $0.entities = ["user_id": .with { $0.val = ["u1", "u2", "u3"].map { user in .with { $0.stringVal = user } } }]
        }, options: FeatureStoreFixture.options)
        await channel.close()

        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(service.adminPort!)/metrics")!)
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n").filter { !$0.hasPrefix("#") }
        func value(_ name: String, _ labels: [String]) -> Double? {
            lines.first { line in line.hasPrefix(name + "{") && labels.allSatisfy { line.contains($0) } }
                .flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        #expect(value("feature_store_rows_written_total", [#"view="user_stats""#, #"outcome="written""#]) == 2, "\(text)")
        #expect(value("feature_store_lookup_values_total", [#"status="PRESENT""#]) == 1)
        #expect(value("feature_store_lookup_values_total", [#"status="OUTSIDE_MAX_AGE""#]) == 1)
        #expect(value("feature_store_lookup_values_total", [#"status="NOT_FOUND""#]) == 1)
        let newest = try #require(value("feature_store_newest_event_timestamp_seconds", [#"view="user_stats""#]))
        #expect(abs(newest - Date().timeIntervalSince1970) < 120)
    }
}
