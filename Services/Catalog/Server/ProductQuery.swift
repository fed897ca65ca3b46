import Contracts
import Foundation
import MeridianRPC
import StandardServices

/// A parsed `filter` (AIP-160 subset): conditions joined by AND.
public struct ProductFilter: Sendable, Hashable {
    public enum Comparison: String, Sendable, Hashable { case lt = "<", le = "<=", eq = "=", ge = ">=", gt = ">" }

    public var categories: [String] = []
    public var brands: [String] = []
    public var currency: String?
    public var availability: Platform_Common_V1_Availability?
    public var price: [(Comparison, Double)] = []

    public init() {}

    public static func == (lhs: ProductFilter, rhs: ProductFilter) -> Bool {
        lhs.categories == rhs.categories && lhs.brands == rhs.brands && lhs.currency == rhs.currency
            && lhs.availability == rhs.availability && lhs.price.elementsEqual(rhs.price) { $0 == $1 }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(categories)
        hasher.combine(brands)
        hasher.combine(currency)
        hasher.combine(availability)
        for (comparison, value) in price {
            hasher.combine(comparison)
            hasher.combine(value)
        }
    }

    /// Parses `category = "x" AND price >= 10 AND availability = IN_STOCK`.
    /// Errors name the field `filter` and the offending part.
    public static func parse(_ text: String, field: String = "filter") throws -> ProductFilter {
        var filter = ProductFilter()
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return filter }
        for clause in Self.splitClauses(trimmed) {
            guard let match = clause.wholeMatch(of: /\s*([a-z_]+)\s*(<=|>=|=|<|>)\s*(.+?)\s*/) else {
                throw RPCError.invalidArgument(violations: [FieldViolation(field, "cannot parse \"\(clause)\": expected FIELD OP VALUE")])
            }
            let name = String(match.1), op = String(match.2), rawValue = String(match.3)
            func fail(_ why: String) -> RPCError {
                RPCError.invalidArgument(violations: [FieldViolation(field, "\(clause.trimmingCharacters(in: .whitespaces)): \(why)")])
            }
            switch name {
            case "category", "brand", "currency":
                guard op == "=" else { throw fail("\(name) only supports =") }
                guard let value = unquote(rawValue) else { throw fail("\(name) needs a quoted string") }
                switch name {
                case "category": filter.categories.append(value)
                case "brand": filter.brands.append(value)
                default: filter.currency = value
                }
            case "price":
                guard let comparison = Comparison(rawValue: op), let value = Double(rawValue), value.isFinite else {
                    throw fail("price needs a number")
                }
                filter.price.append((comparison, value))
            case "availability":
                guard op == "=" else { throw fail("availability only supports =") }
                let names: [String: Platform_Common_V1_Availability] = [
                    "IN_STOCK": .inStock, "OUT_OF_STOCK": .outOfStock, "PREORDER": .preorder,
                    "BACKORDER": .backorder, "DISCONTINUED": .discontinued,
                ]
                guard let value = names[rawValue.uppercased()] else { throw fail("unknown availability \(rawValue); use IN_STOCK, OUT_OF_STOCK, PREORDER, BACKORDER or DISCONTINUED") }
                filter.availability = value
            default:
                throw fail("unknown field \(name); filter on category, brand, price, currency or availability")
            }
        }
        return filter
    }

    private static func splitClauses(_ text: String) -> [String] {
        // Split on AND outside quotes.
        var clauses: [String] = []
        var current = ""
        var inQuotes = false
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character == "\"" { inQuotes.toggle() }
            if !inQuotes, text[index...].hasPrefix(" AND ") {
                clauses.append(current)
                current = ""
                index = text.index(index, offsetBy: 5)
                continue
            }
            current.append(character)
            index = text.index(after: index)
        }
        clauses.append(current)
        return clauses
    }

    private static func unquote(_ text: String) -> String? {
        guard text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") else { return nil }
        return String(text.dropFirst().dropLast())
    }
}

/// What ListProducts is ordered by.
public struct ProductOrder: Sendable, Hashable {
    public enum Field: String, Sendable, Hashable, CaseIterable {
        case productID = "product_id", title, price, createTime = "create_time", updateTime = "update_time"
    }

    public var field: Field = .productID
    public var descending = false

    public init(field: Field = .productID, descending: Bool = false) {
        self.field = field
        self.descending = descending
    }

    public static func parse(_ text: String) throws -> ProductOrder {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        guard !parts.isEmpty else { return ProductOrder() }
        guard parts.count <= 2, let field = Field(rawValue: String(parts[0])),
              parts.count == 1 || parts[1].lowercased() == "desc" || parts[1].lowercased() == "asc"
        else {
            throw RPCError.invalidArgument(violations: [FieldViolation(
                "order_by", "\"\(text)\" is not one of \(Field.allCases.map(\.rawValue).joined(separator: ", ")), optionally followed by desc")])
        }
        return ProductOrder(field: field, descending: parts.count == 2 && parts[1].lowercased() == "desc")
    }
}

/// A ListProducts query: filter and order.
public struct ProductQuery: Sendable, Hashable {
    public var filter: ProductFilter
    public var order: ProductOrder

    public init(filter: ProductFilter = ProductFilter(), order: ProductOrder = ProductOrder()) {
        self.filter = filter
        self.order = order
    }
}
