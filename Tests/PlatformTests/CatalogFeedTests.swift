import Contracts
import FeatureStoreServer
import Foundation
import MeridianRPC
import Testing

/// The feature store following the catalog: item features backfilled, kept
/// fresh from WatchProducts, and resumed after a restart from the stored
/// position. Contract test between the two services, over real RPC.
@Suite struct CatalogFeedTests {
    /// Polls until `check` holds for the item's features, or fails after 10 s.
    func eventually(_ store: FeatureStoreFixture, item: String, _ check: @escaping (Platform_Featurestore_V1_GetOnlineFeaturesResponse) -> Bool,
                    _ what: String) async throws {
        for _ in 0..<100 {
            if let response = try? await store.client.getOnlineFeatures(.with {
                $0.features = .with { $0.val = ["catalog_items:price", "catalog_items:category", "catalog_items:in_stock"] }
                $0.entities = ["item_id": .with { $0.val = [.with { $0.stringVal = item }] }]
            }, options: FeatureStoreFixture.options), check(response) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("timed out waiting for: \(what)")
    }

    @Test func itemFeaturesFollowTheCatalog() async throws {
        let catalog = try await CatalogFixture()
        try await catalog.create(CatalogFixture.product("kettle", price: 25, category: "home/kitchen"))
        try await catalog.create(CatalogFixture.product("mug", price: 8, category: "home/kitchen/cups"))
        let address = "127.0.0.1:\(catalog.host.port!)"
        var store = try await FeatureStoreFixture(catalogAddress: address, catalogTenants: ["acme"])

        // Backfill: products that existed before the feature store.
        try await eventually(store, item: "mug", { $0.results[1].values[0].doubleVal == 8 && $0.results[2].values[0].stringVal == "home/kitchen/cups" },
                             "the mug backfilled")
        // The feed: a price change arrives.
        var kettle = try await catalog.client.getProduct(.with { $0.productID = "kettle" }, options: CatalogFixture.options())
        kettle.price.units = 30
        kettle = try await catalog.client.updateProduct(.with { $0.product = kettle; $0.updateMask.paths = ["price"] }, options: CatalogFixture.options())
        try await eventually(store, item: "kettle", { $0.results[1].values[0].doubleVal == 30 }, "the new kettle price")

        // While the feature store is down, the catalog changes; after a
        // restart on the same data it resumes and catches up.
        await store.stop()
        _ = try await catalog.client.deleteProduct(.with { $0.productID = "mug" }, options: CatalogFixture.options())
        try await catalog.create(CatalogFixture.product("teapot", price: 40))
        store = try await FeatureStoreFixture(dataDirectory: store.dataDirectory, catalogAddress: address, catalogTenants: ["acme"])
        try await eventually(store, item: "teapot", { $0.results[1].values[0].doubleVal == 40 }, "the teapot created while down")
        try await eventually(store, item: "mug", { $0.results[1].statuses[0] == .nullValue }, "the mug deleted while down")

        // Only the tenants named are followed.
        let view = try await store.client.getFeatureView(.with { $0.name = "catalog_items" }, options: FeatureStoreFixture.options)
        #expect(view.entities == ["item_id"])
        var other = CallOptions(timeout: .seconds(5))
        other.metadata.add("x-tenant-id", "other")
        await expectStatus(.notFound, mentioning: "catalog_items") {
            _ = try await store.client.getFeatureView(.with { $0.name = "catalog_items" }, options: other)
        }
        await store.stop()
        await catalog.stop()
    }
}
