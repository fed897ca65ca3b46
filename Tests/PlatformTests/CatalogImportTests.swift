import CatalogClient
import CatalogServer
import Contracts
import Foundation
import MeridianRPC
import ServiceKit
import Testing

@Suite struct CatalogImportTests {
    static func writeFile(_ lines: [String]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("products-\(UUID().uuidString).jsonl").path
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let lines = [
        #"{"productId": "j1", "title": "Jug", "price": {"currencyCode": "EUR", "units": "12"}, "categories": ["home"]}"#,
        #"{"productId": "j2", "title": "", "price": {"currencyCode": "EUR", "units": "3"}}"#,
        #"not json at all"#,
        #"{"productId": "j3", "title": "Mug", "price": {"currencyCode": "EUR", "units": "4", "nanos": 500000000}}"#,
    ]

    @Test func importerLoadsGoodLinesAndReportsBadOnesByLine() async throws {
        let catalog = try await CatalogFixture()
        let importer = ProductFileImporter(channel: catalog.channel, tenant: "acme", batchSize: 2)
        let summary = try await importer.importFile(atPath: Self.writeFile(Self.lines))
        #expect(summary.lines == 4)
        #expect(summary.created == 2)
        #expect(summary.rejected == 1)
        #expect(summary.unreadable == 1)
        #expect(summary.problems.contains { $0.hasPrefix("line 2 (j2)") && $0.contains("title") })
        #expect(summary.problems.contains { $0.hasPrefix("line 3:") })
        let mug = try await catalog.client.getProduct(.with { $0.productID = "j3" }, options: CatalogFixture.options())
        #expect(mug.price.nanos == 500_000_000)
        await catalog.stop()
    }

    @Test func commandLineImportsStraightIntoADataDirectory() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let bin = ProcessInfo.processInfo.environment["MERIDIAN_BIN_DIR"].map { URL(fileURLWithPath: $0) }
            ?? root.appendingPathComponent(".build/debug")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("catalog-cli-\(UUID().uuidString)").path
        let process = Process()
        process.executableURL = bin.appendingPathComponent("catalog")
        process.arguments = ["import", try Self.writeFile(Self.lines), "--tenant", "acme", "--data-dir", directory]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 2, "some lines were bad: exit 2")
        #expect(text.contains("4 lines: 2 created, 0 updated, 1 rejected, 1 unreadable"))
        // The products are in the store a catalog on that directory serves.
        let catalog = try await CatalogFixture(dataDirectory: directory)
        let found = try await catalog.client.batchGetProducts(.with { $0.productIds = ["j1", "j3"] }, options: CatalogFixture.options())
        #expect(found.products.count == 2)
        await catalog.stop()
    }
}
