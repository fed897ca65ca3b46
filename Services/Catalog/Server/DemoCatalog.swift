import Contracts
import Foundation
import ServiceKit

/// A deterministic demo catalog: the same products, titles and prices on
/// every machine (a fixed-seed generator), for the local platform and the
/// benchmarks.
public enum DemoCatalog {
    /// The tenant demo data belongs to.
    public static let tenant = "demo"
    public static let defaultCount = 10_000
    /// The attribute holding units sold in the last 30 days, the popularity
    /// signal personalization falls back on.
    public static let salesAttribute = "sales_30d"

    static let categories: [(path: [String], nouns: [String], priceRange: ClosedRange<Double>)] = [
        (["home", "home/kitchen"], ["Chef's Knife", "Cast Iron Skillet", "Espresso Maker", "Cutting Board", "Stock Pot", "Blender"], 12...240),
        (["home", "home/furniture"], ["Oak Desk", "Reading Chair", "Bookshelf", "Side Table", "Floor Lamp"], 40...900),
        (["electronics", "electronics/audio"], ["Wireless Headphones", "Bookshelf Speakers", "Soundbar", "Turntable", "Earbuds"], 25...600),
        (["electronics", "electronics/computers"], ["Mechanical Keyboard", "4K Monitor", "Laptop Stand", "USB-C Dock", "Webcam"], 20...1200),
        (["sports", "sports/outdoor"], ["Trail Running Shoes", "Hiking Backpack", "Camping Tent", "Sleeping Bag", "Headlamp"], 15...450),
        (["sports", "sports/fitness"], ["Yoga Mat", "Adjustable Dumbbells", "Resistance Bands", "Jump Rope", "Foam Roller"], 8...350),
        (["fashion", "fashion/men"], ["Wool Sweater", "Denim Jacket", "Leather Belt", "Chino Trousers", "Rain Coat"], 18...280),
        (["fashion", "fashion/women"], ["Linen Dress", "Cashmere Scarf", "Ankle Boots", "Trench Coat", "Silk Blouse"], 20...420),
        (["books", "books/fiction"], ["Mystery Novel", "Fantasy Saga", "Short Stories", "Historical Novel"], 6...40),
        (["toys", "toys/games"], ["Strategy Board Game", "Jigsaw Puzzle", "Card Game", "Building Blocks Set"], 9...120),
    ]
    static let brands = ["Acme", "Northwind", "Lumen", "Fjord", "Keystone", "Halcyon", "Orbit", "Tamarack", "Verdant", "Juniper"]
    static let adjectives = ["Classic", "Pro", "Compact", "Deluxe", "Everyday", "Premium", "Eco", "Ultra", "Studio", "Travel"]
    static let colors = ["black", "white", "red", "blue", "green", "grey", "navy", "oak", "sand", "olive"]

    /// The `index`-th demo product (0-based); the same on every run.
    public static func product(_ index: Int) -> Product {
        var random = SeededGenerator(seed: UInt64(index) &* 0x9E37_79B9_7F4A_7C15 &+ 42)
        let category = categories[Int(random.next() % UInt64(categories.count))]
        let noun = category.nouns[Int(random.next() % UInt64(category.nouns.count))]
        let brand = brands[Int(random.next() % UInt64(brands.count))]
        let adjective = adjectives[Int(random.next() % UInt64(adjectives.count))]
        let color = colors[Int(random.next() % UInt64(colors.count))]
        let span = category.priceRange.upperBound - category.priceRange.lowerBound
        let cents = Int64((category.priceRange.lowerBound + span * Double(random.next() % 10_000) / 10_000) * 100) / 100 * 100 + 99
        let availabilityRoll = random.next() % 100
        // Units sold in the last 30 days: heavy-tailed, as sales are. Drawn
        // last so every earlier field stays what it was before it existed.
        let sales = Int(pow(Double(random.next() % 10_000) / 10_000, 4) * 900)
        return Product.with {
            $0.productID = String(format: "sku-%05d", index)
            $0.title = "\(brand) \(adjective) \(noun)"
            $0.description_p = "The \(adjective.lowercased()) \(noun.lowercased()) from \(brand), in \(color). Built for everyday use and made to last."
            $0.categories = category.path
            $0.brand = brand
            $0.attributes = ["color": color, salesAttribute: String(sales)]
            $0.price = .with {
                $0.currencyCode = "EUR"
                $0.units = cents / 100
                $0.nanos = Int32(cents % 100) * 10_000_000
            }
            $0.availability = availabilityRoll < 85 ? .inStock : availabilityRoll < 93 ? .outOfStock : .backorder
            $0.availableQuantity = $0.availability == .inStock ? Int32(1 + random.next() % 200) : 0
            $0.imageUris = ["https://images.example.com/\($0.productID).jpg"]
        }
    }

    /// Loads the demo products into `store` unless they are there already.
    /// Returns how many products the tenant has.
    @discardableResult
    public static func seed(into store: any ProductStore, tenant: TenantID, count: Int = defaultCount) async throws -> Int {
        let last = product(count - 1)
        if try await store.products(tenant: tenant, ids: [last.productID])[last.productID] != nil { return count }
        for start in stride(from: 0, to: count, by: 1000) {
            _ = try await store.upsertAll(tenant: tenant, products: (start..<min(start + 1000, count)).map(product))
        }
        return count
    }
}
