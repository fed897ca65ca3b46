import CatalogServer
import Contracts
import Foundation
import MeridianRPC
import ServiceKit
import StandardServices
import SwiftProtobuf
import Testing

/// Where the catalog under test stores products. Every test runs on both.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }
}

/// The catalog over real RPC on loopback, started from its `buildService`,
/// on SQLite or on a fresh PostgreSQL database.
final class CatalogFixture: Sendable {
    let host: ServiceHost
    let channel: RPCChannel
    let client: Platform_Catalog_V1_CatalogServiceClient
    let dataDirectory: String
    let databaseURL: String?

    init(_ backend: Backend = .sqlite, dataDirectory: String? = nil, databaseURL: String? = nil) async throws {
        var configuration = ServiceConfiguration.forTesting(name: "catalog")
        if let dataDirectory { configuration.dataDirectory = dataDirectory }
        if backend == .postgres {
            if let databaseURL {
                configuration.databaseURL = databaseURL
            } else {
                configuration.databaseURL = try await TestPostgres.createDatabase()
            }
        }
        self.dataDirectory = configuration.dataDirectory!
        self.databaseURL = configuration.databaseURL
        host = try await CatalogServer.buildService(configuration: configuration)
        let port = try await host.start()
        channel = try RPCChannel(host: "127.0.0.1", port: port)
        client = Platform_Catalog_V1_CatalogServiceClient(channel: channel)
    }

    func stop() async {
        await channel.close()
        await host.shutdown()
    }

    static func options(tenant: String = "acme", idempotencyKey: String? = nil) -> CallOptions {
        var options = CallOptions(timeout: .seconds(10))
        options.metadata.add("x-tenant-id", tenant)
        if let idempotencyKey { options.metadata.add("idempotency-key", idempotencyKey) }
        return options
    }

    static func product(_ id: String, title: String = "Blue Kettle", price: Int64 = 25, category: String = "home/kitchen") -> Product {
        .with {
            $0.productID = id
            $0.title = title
            $0.description_p = "A kettle that boils water quickly"
            $0.categories = [category]
            $0.brand = "Acme"
            $0.price = .with { $0.currencyCode = "EUR"; $0.units = price }
            $0.availability = .inStock
            $0.availableQuantity = 5
        }
    }

    @discardableResult
    func create(_ product: Product, tenant: String = "acme") async throws -> Product {
        try await client.createProduct(.with { $0.productID = product.productID; $0.product = product }, options: Self.options(tenant: tenant))
    }
}

@Suite struct CatalogTests {
    @Test(arguments: Backend.allCases) func createGetUpdateDeleteWithEtags(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        let created = try await catalog.create(CatalogFixture.product("p1"))
        #expect(created.etag.isEmpty == false)
        #expect(created.hasCreateTime)
        let fetched = try await catalog.client.getProduct(.with { $0.productID = "p1" }, options: CatalogFixture.options())
        #expect(fetched == created)

        var change = Product.with { $0.productID = "p1"; $0.title = "Red Kettle"; $0.etag = created.etag; $0.attributes = ["color": "red"] }
        let updated = try await catalog.client.updateProduct(.with {
            $0.product = change
            $0.updateMask = .with { $0.paths = ["title", "attributes.color"] }
        }, options: CatalogFixture.options())
        #expect(updated.title == "Red Kettle")
        #expect(updated.attributes["color"] == "red")
        #expect(updated.price == created.price, "fields outside the mask stay")
        #expect(updated.etag != created.etag)

        // The old etag is stale now.
        change.title = "Green Kettle"
        let stale = await #expect(throws: RPCError.self) {
            _ = try await catalog.client.updateProduct(.with { $0.product = change; $0.updateMask = .with { $0.paths = ["title"] } },
                                                       options: CatalogFixture.options())
        }
        #expect(stale?.code == .aborted)
        #expect(stale?.status.errorReason == "STALE_ETAG")

        let duplicate = await #expect(throws: RPCError.self) { try await catalog.create(CatalogFixture.product("p1")) }
        #expect(duplicate?.code == .alreadyExists)

        _ = try await catalog.client.deleteProduct(.with { $0.productID = "p1"; $0.etag = updated.etag }, options: CatalogFixture.options())
        let gone = await #expect(throws: RPCError.self) {
            _ = try await catalog.client.getProduct(.with { $0.productID = "p1" }, options: CatalogFixture.options())
        }
        #expect(gone?.code == .notFound)
        #expect(gone?.message.contains("p1") == true)
        await catalog.stop()
    }

    @Test(arguments: Backend.allCases) func invalidProductsNameEveryBadField(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        var bad = CatalogFixture.product("bad id!")
        bad.title = ""
        bad.price = .with { $0.currencyCode = "euro"; $0.units = 5; $0.nanos = -3 }
        bad.availableQuantity = -1
        let error = await #expect(throws: RPCError.self) { try await catalog.create(bad) }
        #expect(error?.code == .invalidArgument)
        let fields = Set(error?.status.fieldViolations.map(\.field) ?? [])
        #expect(fields.isSuperset(of: ["product_id", "product.title", "product.price.currency_code", "product.price.nanos", "product.available_quantity"]))
        await catalog.stop()
    }

    @Test(arguments: Backend.allCases) func missingTenantIsRejected(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        let error = await #expect(throws: RPCError.self) {
            _ = try await catalog.client.getProduct(.with { $0.productID = "p1" })
        }
        #expect(error?.code == .unauthenticated)
        await catalog.stop()
    }

    @Test(arguments: Backend.allCases) func tenantsNeverSeeEachOther(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        try await catalog.create(CatalogFixture.product("shared-id", title: "Acme's"), tenant: "acme")
        try await catalog.create(CatalogFixture.product("shared-id", title: "Globex's"), tenant: "globex")
        let acme = try await catalog.client.getProduct(.with { $0.productID = "shared-id" }, options: CatalogFixture.options(tenant: "acme"))
        let globex = try await catalog.client.getProduct(.with { $0.productID = "shared-id" }, options: CatalogFixture.options(tenant: "globex"))
        #expect(acme.title == "Acme's")
        #expect(globex.title == "Globex's")
        let list = try await catalog.client.listProducts(.init(), options: CatalogFixture.options(tenant: "initech"))
        #expect(list.products.isEmpty)
        await catalog.stop()
    }

    @Test(arguments: Backend.allCases) func batchGetKeepsOrderAndListsMissing(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        for id in ["a", "b", "c"] { try await catalog.create(CatalogFixture.product(id)) }
        let response = try await catalog.client.batchGetProducts(.with { $0.productIds = ["c", "x", "a", "y"] }, options: CatalogFixture.options())
        #expect(response.products.map(\.productID) == ["c", "a"])
        #expect(response.missingProductIds == ["x", "y"])
        let tooMany = await #expect(throws: RPCError.self) {
            _ = try await catalog.client.batchGetProducts(.with { $0.productIds = (0...1000).map { "id\($0)" } }, options: CatalogFixture.options())
        }
        #expect(tooMany?.code == .invalidArgument)
        await catalog.stop()
    }

    /// Reads remember missing ids too (SQLite's cache); every way of
    /// writing a product must make it readable at once.
    @Test(arguments: Backend.allCases) func productsAskedForBeforeTheyExistAreFoundOnceWritten(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        let ids = ["created", "imported", "upserted"]
        func missing() async throws -> [String] {
            try await catalog.client.batchGetProducts(.with { $0.productIds = ids }, options: CatalogFixture.options()).missingProductIds
        }
        for _ in 0..<2 { #expect(try await missing() == ids) }
        let unknown = await #expect(throws: RPCError.self) {
            _ = try await catalog.client.getProduct(.with { $0.productID = "created" }, options: CatalogFixture.options())
        }
        #expect(unknown?.code == .notFound)

        let created = try await catalog.create(CatalogFixture.product("created"))
        #expect(try await catalog.client.getProduct(.with { $0.productID = "created" }, options: CatalogFixture.options()) == created)
        _ = try await catalog.client.importProducts(options: CatalogFixture.options()) { requests in
            try await requests.write(.with { $0.products = [CatalogFixture.product("imported")] })
        }
        _ = try await catalog.client.updateProduct(.with {
            $0.product = CatalogFixture.product("upserted")
            $0.allowMissing = true
        }, options: CatalogFixture.options())
        #expect(try await missing() == [])

        _ = try await catalog.client.deleteProduct(.with { $0.productID = "created" }, options: CatalogFixture.options())
        #expect(try await missing() == ["created"])
        await catalog.stop()
    }

    @Test(arguments: Backend.allCases) func pagingCoversEveryProductOnceEvenWithConcurrentInserts(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        // Empty table: one empty page, no token.
        let empty = try await catalog.client.listProducts(.with { $0.pageSize = 10 }, options: CatalogFixture.options())
        #expect(empty.products.isEmpty && empty.nextPageToken.isEmpty)
        for i in 0..<30 { try await catalog.create(CatalogFixture.product(String(format: "p%02d", i), price: Int64(100 - i))) }
        // Exact multiple of the page size: the last page has no token.
        var seen: [String] = []
        var token = ""
        var pages = 0
        repeat {
            let page = try await catalog.client.listProducts(.with { $0.pageSize = 10; $0.pageToken = token; $0.orderBy = "price desc" },
                                                             options: CatalogFixture.options())
            seen += page.products.map(\.productID)
            token = page.nextPageToken
            pages += 1
            if pages == 1 {
                // Inserted while paging: sorts before the cursor, so it must not shift later pages.
                try await catalog.create(CatalogFixture.product("p-new", price: 1000))
            }
        } while !token.isEmpty
        #expect(pages == 3)
        #expect(seen == (0..<30).map { String(format: "p%02d", $0) })
        await catalog.stop()
    }

    @Test(arguments: Backend.allCases) func pageSizeAndTokenRules(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        for i in 0..<3 { try await catalog.create(CatalogFixture.product("p\(i)")) }
        let negative = await #expect(throws: RPCError.self) {
            _ = try await catalog.client.listProducts(.with { $0.pageSize = -1 }, options: CatalogFixture.options())
        }
        #expect(negative?.status.fieldViolations.first?.field == "page_size")
        let first = try await catalog.client.listProducts(.with { $0.pageSize = 2 }, options: CatalogFixture.options())
        #expect(first.products.count == 2 && !first.nextPageToken.isEmpty)
        #expect(first.totalSize == 3)
        let changedFilter = await #expect(throws: RPCError.self) {
            _ = try await catalog.client.listProducts(.with { $0.pageSize = 2; $0.pageToken = first.nextPageToken; $0.filter = "brand = \"Acme\"" },
                                                      options: CatalogFixture.options())
        }
        #expect(changedFilter?.code == .invalidArgument)
        let forged = await #expect(throws: RPCError.self) {
            _ = try await catalog.client.listProducts(.with { $0.pageToken = first.nextPageToken + "x" }, options: CatalogFixture.options())
        }
        #expect(forged?.code == .invalidArgument)
        let huge = try await catalog.client.listProducts(.with { $0.pageSize = 5000 }, options: CatalogFixture.options())
        #expect(huge.products.count == 3 && huge.nextPageToken.isEmpty)
        await catalog.stop()
    }

    @Test(arguments: Backend.allCases) func filtersAndSearch(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        try await catalog.create(CatalogFixture.product("k1", title: "Steel Kettle", price: 30, category: "home/kitchen"))
        try await catalog.create(CatalogFixture.product("k2", title: "Glass Teapot", price: 15, category: "home/kitchen"))
        try await catalog.create(CatalogFixture.product("s1", title: "Running Shoes", price: 90, category: "sports"))
        let kitchen = try await catalog.client.listProducts(.with { $0.filter = "category = \"home/kitchen\" AND price < 20" },
                                                            options: CatalogFixture.options())
        #expect(kitchen.products.map(\.productID) == ["k2"])
        let bad = await #expect(throws: RPCError.self) {
            _ = try await catalog.client.listProducts(.with { $0.filter = "colour = \"red\"" }, options: CatalogFixture.options())
        }
        #expect(bad?.status.fieldViolations.first?.field == "filter")
        let hits = try await catalog.client.searchProducts(.with { $0.query = "kettle" }, options: CatalogFixture.options())
        #expect(hits.results.first?.product.productID == "k1")
        await catalog.stop()
    }

    @Test(arguments: Backend.allCases) func idempotentRetriesReplayAndConflictingReuseIsRejected(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        let request = Platform_Catalog_V1_CreateProductRequest.with {
            $0.productID = "idem"
            $0.product = CatalogFixture.product("idem")
            $0.requestID = "req-1"
        }
        let first = try await catalog.client.createProduct(request, options: CatalogFixture.options())
        let retry = try await catalog.client.createProduct(request, options: CatalogFixture.options())
        #expect(retry == first, "a retry replays the first answer instead of ALREADY_EXISTS")
        var different = request
        different.product.title = "Something else"
        let reused = await #expect(throws: RPCError.self) {
            _ = try await catalog.client.createProduct(different, options: CatalogFixture.options())
        }
        #expect(reused?.code == .invalidArgument)
        #expect(reused?.status.errorReason == "IDEMPOTENCY_KEY_REUSED")
        await catalog.stop()
    }

    @Test(arguments: Backend.allCases) func concurrentUpdatersWithTheSameEtagOneWins(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        let created = try await catalog.create(CatalogFixture.product("race"))
        let results = await withTaskGroup(of: Result<Product, any Error>.self) { group in
            for title in ["first", "second"] {
                group.addTask {
                    do {
                        return .success(try await catalog.client.updateProduct(.with {
                            $0.product = .with { $0.productID = "race"; $0.title = title; $0.etag = created.etag }
                            $0.updateMask = .with { $0.paths = ["title"] }
                        }, options: CatalogFixture.options()))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let successes = results.filter { if case .success = $0 { true } else { false } }
        let aborted = results.filter { if case .failure(let error as RPCError) = $0 { error.code == .aborted } else { false } }
        #expect(successes.count == 1)
        #expect(aborted.count == 1)
        await catalog.stop()
    }

    @Test(arguments: Backend.allCases) func importKeepsGoodRowsAndReportsBadOnes(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        try await catalog.create(CatalogFixture.product("existing"))
        let response = try await catalog.client.importProducts(options: CatalogFixture.options()) { requests in
            try await requests.write(.with { $0.products = [CatalogFixture.product("n1"), CatalogFixture.product("existing")] })
            var bad = CatalogFixture.product("n2")
            bad.title = ""
            try await requests.write(.with { $0.products = [bad, CatalogFixture.product("n3")] })
        }
        #expect(response.created == 2)
        #expect(response.updated == 1)
        #expect(response.failed == 1)
        #expect(response.errors.first?.index == 2)
        #expect(response.errors.first?.productID == "n2")
        #expect(response.errors.first?.status.code == Int32(RPCStatus.Code.invalidArgument.rawValue))
        let listed = try await catalog.client.listProducts(.init(), options: CatalogFixture.options())
        #expect(listed.products.map(\.productID) == ["existing", "n1", "n3"])
        await catalog.stop()
    }

    @Test(arguments: Backend.allCases) func watchResumesWithoutGapsOrDuplicates(backend: Backend) async throws {
        let catalog = try await CatalogFixture(backend)
        // A watcher from now sees the next changes in order.
        let stream = catalog.client.watchProducts(.init(), options: CatalogFixture.options())
        var iterator = stream.makeAsyncIterator()
        _ = try await stream.headers()
        try await catalog.create(CatalogFixture.product("w1"))
        try await catalog.create(CatalogFixture.product("w2"))
        let first = try #require(try await iterator.next())
        #expect(first.productID == "w1" && first.changeType == .created)
        // The consumer disconnects after w1; more changes happen meanwhile.
        _ = consume iterator
        _ = try await catalog.client.deleteProduct(.with { $0.productID = "w1" }, options: CatalogFixture.options())
        let resumed = catalog.client.watchProducts(.with { $0.resumeToken = first.resumeToken }, options: CatalogFixture.options())
        var changes: [String] = []
        for try await change in resumed {
            changes.append("\(change.productID):\(change.changeType)")
            if changes.count == 2 { break }
        }
        #expect(changes == ["w2:\(Platform_Catalog_V1_ProductChange.ChangeType.created)", "w1:\(Platform_Catalog_V1_ProductChange.ChangeType.deleted)"])
        let badToken = await #expect(throws: RPCError.self) {
            for try await _ in catalog.client.watchProducts(.with { $0.resumeToken = "nonsense" }, options: CatalogFixture.options()) {}
        }
        #expect(badToken?.code == .invalidArgument)
        await catalog.stop()
    }

    @Test(arguments: Backend.allCases) func acknowledgedWritesSurviveARestart(backend: Backend) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("catalog-restart-\(UUID().uuidString)").path
        let first = try await CatalogFixture(backend, dataDirectory: directory)
        let created = try await first.create(CatalogFixture.product("durable"))
        let page = try await first.client.listProducts(.with { $0.pageSize = 1 }, options: CatalogFixture.options())
        await first.stop()
        let second = try await CatalogFixture(backend, dataDirectory: directory, databaseURL: first.databaseURL)
        let fetched = try await second.client.getProduct(.with { $0.productID = "durable" }, options: CatalogFixture.options())
        #expect(fetched == created)
        // Page tokens stay valid across restarts (the signing key is kept).
        _ = try await second.client.listProducts(.with { $0.pageSize = 1; $0.pageToken = page.nextPageToken }, options: CatalogFixture.options())
        await second.stop()
    }
}
