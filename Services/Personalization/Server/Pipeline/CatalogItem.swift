import Contracts
import Foundation

/// What ranking needs of a product. Immutable and shared by reference:
/// candidate pools hand the same items to many requests, and copying a
/// reference is one retain where a struct of strings is several.
final class CatalogItem: Sendable {
    let productID: String
    let categories: [String]
    let price: Double
    let currency: String
    let inStock: Bool
    /// Recent sales: the popularity ranking's score.
    let popularity: Double
    /// The most specific category, shown with results.
    let category: String

    init(_ product: Platform_Catalog_V1_Product, popularityAttribute: String) {
        productID = product.productID
        categories = product.categories
        price = Double(product.price.units) + Double(product.price.nanos) / 1e9
        currency = product.price.currencyCode
        inStock = product.availability == .inStock
        popularity = product.attributes[popularityAttribute].flatMap(Double.init) ?? 0
        category = product.categories.last ?? ""
    }
}

/// The request's narrowing of candidates: categories, price range, and
/// whether only products that can be bought now qualify.
public struct CandidateFilter: Sendable, Hashable {
    public var categories: Set<String> = []
    public var minimumPrice: Double?
    public var maximumPrice: Double?
    public var currency: String?
    public var availableOnly = true

    public init(categories: Set<String> = [], minimumPrice: Double? = nil, maximumPrice: Double? = nil, currency: String? = nil, availableOnly: Bool = true) {
        self.categories = categories
        self.minimumPrice = minimumPrice
        self.maximumPrice = maximumPrice
        self.currency = currency
        self.availableOnly = availableOnly
    }

    func admits(_ item: CatalogItem) -> Bool {
        if availableOnly && !item.inStock { return false }
        if !categories.isEmpty && !item.categories.contains(where: categories.contains) { return false }
        if let currency, item.currency != currency { return false }
        if let minimumPrice, item.price < minimumPrice { return false }
        if let maximumPrice, item.price > maximumPrice { return false }
        return true
    }

    /// The catalog's ListProducts filter (AIP-160 subset) for one category.
    public func catalogFilter(category: String?) -> String {
        var conditions: [String] = []
        if let category { conditions.append("category = \"\(category)\"") }
        if let currency { conditions.append("currency = \"\(currency)\"") }
        if let minimumPrice { conditions.append("price >= \(minimumPrice)") }
        if let maximumPrice { conditions.append("price <= \(maximumPrice)") }
        if availableOnly { conditions.append("availability = IN_STOCK") }
        return conditions.joined(separator: " AND ")
    }
}

extension CatalogItem {
    /// A product known only by id (the catalog could not be asked).
    convenience init(unknownProductID: String) {
        self.init(Platform_Catalog_V1_Product.with { $0.productID = unknownProductID; $0.availability = .inStock }, popularityAttribute: "")
    }
}
