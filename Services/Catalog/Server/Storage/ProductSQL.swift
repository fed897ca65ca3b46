import Contracts
import ServiceKit

/// SQL both stores share: how a filter and an order become conditions. Each
/// store supplies its placeholder syntax (`?` or `$n`) and binds the values.
enum ProductSQL {
    enum Value: Sendable {
        case text(String)
        case real(Double)
        case integer(Int64)
    }

    /// WHERE conditions over the `products` table aliased `p` (and its
    /// categories table), with their values in placeholder order.
    static func filterConditions(_ filter: ProductFilter, placeholder: () -> String) -> (conditions: [String], values: [Value]) {
        var conditions: [String] = []
        var values: [Value] = []
        for category in filter.categories {
            conditions.append("EXISTS (SELECT 1 FROM product_categories c WHERE c.tenant = p.tenant AND c.category = \(placeholder()) AND c.product_id = p.product_id)")
            values.append(.text(category))
        }
        for brand in filter.brands {
            conditions.append("p.brand = \(placeholder())")
            values.append(.text(brand))
        }
        if let currency = filter.currency {
            conditions.append("p.currency = \(placeholder())")
            values.append(.text(currency))
        }
        if let availability = filter.availability {
            conditions.append("p.availability = \(placeholder())")
            values.append(.integer(Int64(availability.rawValue)))
        }
        for (comparison, value) in filter.price {
            conditions.append("p.price \(comparison.rawValue) \(placeholder())")
            values.append(.real(value))
        }
        return (conditions, values)
    }

    static func column(for field: ProductOrder.Field) -> String {
        switch field {
        case .productID: "p.product_id"
        case .title: "p.title"
        case .price: "p.price"
        case .createTime: "p.create_time"
        case .updateTime: "p.update_time"
        }
    }

    /// The keyset condition for the page after `cursor`, and its values.
    static func cursorCondition(_ cursor: PageCursor, order: ProductOrder, placeholder: () -> String) -> (condition: String, values: [Value]) {
        let comparison = order.descending ? "<" : ">"
        if order.field == .productID {
            return ("p.product_id \(comparison) \(placeholder())", [.text(cursor.id)])
        }
        let column = column(for: order.field)
        let value: Value = switch order.field {
        case .productID, .title: .text(cursor.value)
        case .price: .real(Double(cursor.value) ?? 0)
        case .createTime, .updateTime: .integer(Int64(cursor.value) ?? 0)
        }
        let (a, b, c) = (placeholder(), placeholder(), placeholder())
        return ("(\(column) \(comparison) \(a) OR (\(column) = \(b) AND p.product_id \(comparison) \(c)))", [value, value, .text(cursor.id)])
    }

    static func orderClause(_ order: ProductOrder) -> String {
        let direction = order.descending ? "DESC" : "ASC"
        return order.field == .productID
            ? "p.product_id \(direction)" : "\(column(for: order.field)) \(direction), p.product_id \(direction)"
    }

    /// Numeric price used for filters and ordering.
    static func price(of product: Product) -> Double {
        Double(product.price.units) + Double(product.price.nanos) / 1e9
    }

    /// The sort key of a product, as stored in a page cursor.
    static func sortKey(of product: Product, for field: ProductOrder.Field) -> String {
        switch field {
        case .productID: product.productID
        case .title: product.title
        case .price: String(price(of: product))
        case .createTime: String(micros(product.createTime))
        case .updateTime: String(micros(product.updateTime))
        }
    }

    static func micros(_ timestamp: Google_Protobuf_Timestamp) -> Int64 {
        timestamp.seconds * 1_000_000 + Int64(timestamp.nanos / 1000)
    }

    /// The version encoded in an etag (`"v<version>"`), 0 when absent.
    static func version(ofEtag etag: String) -> Int64 {
        Int64(etag.dropFirst(2).dropLast()) ?? 0
    }
}

import SwiftProtobuf
