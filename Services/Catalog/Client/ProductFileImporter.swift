import Contracts
import Foundation
import MeridianRPC
import SwiftProtobuf

/// Loads a JSON Lines file of products (one `platform.catalog.v1.Product` in
/// proto3 JSON per line) into a catalog through ImportProducts. Lines that
/// are not valid JSON are reported by line number; the catalog reports the
/// products it rejects.
public struct ProductFileImporter: Sendable {
    public struct Summary: Sendable, CustomStringConvertible {
        public var lines = 0
        public var created = 0
        public var updated = 0
        /// Rejected by the catalog (invalid products).
        public var rejected = 0
        /// Lines that did not parse.
        public var unreadable = 0
        /// A few reasons, with line numbers.
        public var problems: [String] = []

        public var description: String {
            var text = "\(lines) lines: \(created) created, \(updated) updated, \(rejected) rejected, \(unreadable) unreadable"
            for problem in problems.prefix(10) { text += "\n  \(problem)" }
            if problems.count > 10 { text += "\n  ... and \(problems.count - 10) more" }
            return text
        }
    }

    let client: Platform_Catalog_V1_CatalogServiceClient
    let tenant: String
    let batchSize: Int

    public init(channel: RPCChannel, tenant: String, batchSize: Int = 500) {
        self.client = Platform_Catalog_V1_CatalogServiceClient(channel: channel)
        self.tenant = tenant
        self.batchSize = max(1, min(batchSize, 1000))
    }

    /// Imports `path`; `progress` gets (lines sent, total lines) after each batch.
    public func importFile(atPath path: String, progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }) async throws -> Summary {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RPCError(.notFound, "cannot read \(path)")
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .enumerated().filter { !$0.element.trimmingCharacters(in: .whitespaces).isEmpty }
        var summary = Summary()
        summary.lines = lines.count
        var products: [(line: Int, product: Platform_Catalog_V1_Product)] = []
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = false
        for (index, line) in lines {
            do {
                products.append((index + 1, try Platform_Catalog_V1_Product(jsonString: String(line), options: options)))
            } catch {
                summary.unreadable += 1
                summary.problems.append("line \(index + 1): not a Product in JSON: \(error)")
            }
        }
        var callOptions = CallOptions(timeout: .seconds(600))
        callOptions.metadata.add("x-tenant-id", tenant)
        let batches = stride(from: 0, to: products.count, by: batchSize).map { Array(products[$0..<min($0 + batchSize, products.count)]) }
        let total = lines.count
        let unreadable = summary.unreadable
        let response = try await client.importProducts(options: callOptions) { requests in
            var sent = unreadable
            for batch in batches {
                try await requests.write(.with { $0.products = batch.map(\.product) })
                sent += batch.count
                progress(sent, total)
            }
        }
        summary.created = Int(response.created)
        summary.updated = Int(response.updated)
        summary.rejected = Int(response.failed)
        for error in response.errors {
            let line = Int(error.index) < products.count ? products[Int(error.index)].line : -1
            summary.problems.append("line \(line) (\(error.productID)): \(error.status.message)")
        }
        return summary
    }
}
