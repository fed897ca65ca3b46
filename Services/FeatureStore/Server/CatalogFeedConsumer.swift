import Contracts
import Foundation
import Logging
import MeridianRPC
import ServiceKit
import SwiftProtobuf

/// Keeps item features fresh from the catalog: for each followed tenant it
/// declares the `catalog_items` view, copies every product once (backfill),
/// then applies each change of the catalog's WatchProducts feed, resuming
/// after a restart from the last change it stored. Rows carry the product's
/// update time as event time, so the backfill and the feed may overlap in
/// any order: the latest event time wins. Until the first feed change after
/// a backfill is stored there is no position to resume from, so a restart
/// in that window backfills again (harmless: rows converge).
final class CatalogFeedConsumer: Sendable {
    static let viewName = "catalog_items"
    static let consumerName = "catalog-watch"

    /// item_id → price, currency, category (most specific), brand, in_stock, available_quantity.
    static var view: FeatureView {
        .with {
            $0.name = viewName
            $0.entities = ["item_id"]
            $0.description_p = "Product facts from the catalog's change feed, kept fresh by the feature store."
            $0.owner = "feature-store"
            $0.features = [
                .with { $0.name = "price"; $0.type = .double; $0.description_p = "Current price in the product's currency" },
                .with { $0.name = "currency"; $0.type = .string; $0.description_p = "ISO 4217 code of the price" },
                .with { $0.name = "category"; $0.type = .string; $0.description_p = "Most specific category path" },
                .with { $0.name = "brand"; $0.type = .string },
                .with { $0.name = "in_stock"; $0.type = .bool; $0.description_p = "Availability is IN_STOCK" },
                .with { $0.name = "available_quantity"; $0.type = .int64; $0.description_p = "Units in stock" },
            ]
        }
    }

    let catalog: Platform_Catalog_V1_CatalogServiceClient
    let channel: RPCChannel
    let tenants: [TenantID]
    let handler: FeatureStoreHandler
    let storage: any FeatureStorage
    let logger: Logger

    init(channel: RPCChannel, tenants: [TenantID], handler: FeatureStoreHandler, storage: any FeatureStorage, logger: Logger) {
        self.channel = channel
        self.catalog = Platform_Catalog_V1_CatalogServiceClient(channel: channel)
        self.tenants = tenants
        self.handler = handler
        self.storage = storage
        self.logger = logger
    }

    /// Follows every tenant until cancelled, reconnecting with backoff.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            for tenant in tenants {
                group.addTask {
                    await reconnecting("catalog feed", logger: self.logger, metadata: ["tenant": "\(tenant)"], maximumDelay: .seconds(10)) {
                        try await self.follow(tenant)
                    }
                }
            }
        }
    }

    private func options(_ tenant: TenantID) -> CallOptions {
        var options = CallOptions()
        options.metadata.add("x-tenant-id", tenant.value)
        return options
    }

    /// One session: declare the view, backfill if never done, then follow
    /// the feed until it ends or fails.
    private func follow(_ tenant: TenantID) async throws {
        _ = try await handler.applyView(Self.view, tenant: tenant, idempotency: nil)
        let resumeToken = try await storage.offset(tenant: tenant, consumer: Self.consumerName)
        let feed = catalog.watchProducts(.with { $0.resumeToken = resumeToken ?? "" }, options: options(tenant))
        try await withThrowingTaskGroup(of: Void.self) { group in
            // The feed is read from the start of the session; until the
            // first backfill completes its position is not recorded, so a
            // failed backfill starts over rather than being skipped.
            let backfilled = Backfill(done: resumeToken != nil)
            group.addTask {
                for try await change in feed {
                    try await self.apply(change, tenant: tenant)
                    if await backfilled.done {
                        try await self.storage.saveOffset(tenant: tenant, consumer: Self.consumerName, token: change.resumeToken)
                    } else {
                        await backfilled.remember(change.resumeToken)
                    }
                }
            }
            if resumeToken == nil {
                try await backfill(tenant)
                if let token = await backfilled.finish() {
                    try await storage.saveOffset(tenant: tenant, consumer: Self.consumerName, token: token)
                }
                logger.info("catalog items backfilled", metadata: ["tenant": "\(tenant)"])
            }
            try await group.waitForAll()
        }
    }

    /// Every product, page by page.
    private func backfill(_ tenant: TenantID) async throws {
        var token = ""
        repeat {
            let page = try await catalog.listProducts(.with { $0.pageSize = 1000; $0.pageToken = token }, options: options(tenant))
            let rows = page.products.map { Self.row($0, time: $0.updateTime) }
            if !rows.isEmpty { _ = try await handler.write(rows, to: Self.viewName, tenant: tenant, idempotency: nil) }
            token = page.nextPageToken
        } while !token.isEmpty
    }

    private func apply(_ change: Platform_Catalog_V1_ProductChange, tenant: TenantID) async throws {
        let row: Platform_Featurestore_V1_FeatureRow
        if change.changeType == .deleted {
            // A deleted product keeps its key with every feature null.
            row = .with {
                $0.entityKey = ["item_id": .with { $0.stringVal = change.productID }]
                $0.eventTime = change.changeTime
            }
        } else {
            row = Self.row(change.product, time: change.changeTime)
        }
        let response = try await handler.write([row], to: Self.viewName, tenant: tenant, idempotency: nil)
        if let error = response.errors.first {
            logger.warning("catalog change not stored", metadata: ["tenant": "\(tenant)", "product_id": "\(change.productID)", "reason": "\(error.reason)"])
        }
    }

    static func row(_ product: Platform_Catalog_V1_Product, time: Google_Protobuf_Timestamp) -> Platform_Featurestore_V1_FeatureRow {
        .with { row in
            row.entityKey = ["item_id": .with { $0.stringVal = product.productID }]
            row.eventTime = time
            row.values["price"] = .with { $0.doubleVal = Double(product.price.units) + Double(product.price.nanos) / 1e9 }
            row.values["currency"] = .with { $0.stringVal = product.price.currencyCode }
            if let category = product.categories.last { row.values["category"] = .with { $0.stringVal = category } }
            if !product.brand.isEmpty { row.values["brand"] = .with { $0.stringVal = product.brand } }
            row.values["in_stock"] = .with { $0.boolVal = product.availability == .inStock }
            row.values["available_quantity"] = .with { $0.int64Val = Int64(product.availableQuantity) }
        }
    }
}

/// Whether the first backfill finished, and the newest feed position seen
/// before it did.
private actor Backfill {
    private(set) var done: Bool
    private var pending: String?

    init(done: Bool) { self.done = done }

    func remember(_ token: String) { pending = token }

    func finish() -> String? {
        done = true
        return pending
    }
}
