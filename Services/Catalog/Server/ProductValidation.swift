import Contracts
import Foundation
import StandardServices

/// The catalog's rules for product fields. Every violation is collected, so
/// one INVALID_ARGUMENT names all the bad fields at once.
enum ProductValidation {
    static let maxTitle = 512
    static let maxDescription = 10_000
    static let maxCategories = 20
    static let maxCategoryLength = 256
    static let maxBrand = 256
    static let maxAttributes = 100
    static let maxAttributeKey = 128
    static let maxAttributeValue = 1024
    static let maxImages = 20

    static func productIDViolations(_ id: String, field: String = "product_id") -> [FieldViolation] {
        if id.isEmpty { return [FieldViolation(field, "is required", reason: "REQUIRED")] }
        if id.utf8.count > 128 { return [FieldViolation(field, "must be at most 128 characters")] }
        let allowed = id.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "-")
        }
        return allowed ? [] : [FieldViolation(field, "\"\(id)\" may only contain A-Z, a-z, 0-9, '.', '_', ':' and '-'")]
    }

    /// Violations of the writable fields of `product`, with paths under `prefix`.
    static func violations(of product: Product, prefix: String = "product") -> [FieldViolation] {
        var found: [FieldViolation] = []
        func add(_ field: String, _ description: String, reason: String = "INVALID") {
            found.append(FieldViolation("\(prefix).\(field)", description, reason: reason))
        }
        if product.title.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            add("title", "is required", reason: "REQUIRED")
        } else if product.title.count > maxTitle {
            add("title", "must be at most \(maxTitle) characters")
        }
        if product.description_p.count > maxDescription { add("description", "must be at most \(maxDescription) characters") }
        if product.brand.count > maxBrand { add("brand", "must be at most \(maxBrand) characters") }
        if product.categories.count > maxCategories { add("categories", "at most \(maxCategories) categories") }
        for (index, category) in product.categories.enumerated() {
            if category.isEmpty { add("categories[\(index)]", "must not be empty") }
            if category.count > maxCategoryLength { add("categories[\(index)]", "must be at most \(maxCategoryLength) characters") }
        }
        if product.attributes.count > maxAttributes { add("attributes", "at most \(maxAttributes) attributes") }
        for (key, value) in product.attributes.sorted(by: { $0.key < $1.key }) {
            let validKey = !key.isEmpty && key.count <= maxAttributeKey && key.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            }
            if !validKey { add("attributes", "key \"\(key)\" must be 1-\(maxAttributeKey) characters of A-Z, a-z, 0-9, '.', '_', '-'") }
            if value.count > maxAttributeValue { add("attributes[\(key)]", "must be at most \(maxAttributeValue) characters") }
        }
        if !product.hasPrice {
            add("price", "is required", reason: "REQUIRED")
        } else {
            found += moneyViolations(product.price, field: "\(prefix).price")
        }
        if case .UNRECOGNIZED(let value) = product.availability { add("availability", "unknown value \(value)") }
        if product.availableQuantity < 0 { add("available_quantity", "must not be negative") }
        if product.imageUris.count > maxImages { add("image_uris", "at most \(maxImages) images") }
        for (index, uri) in product.imageUris.enumerated() where !(uri.hasPrefix("https://") && URL(string: uri)?.host != nil) {
            add("image_uris[\(index)]", "must be an https URL")
        }
        return found
    }

    /// A non-negative price with a currency code and well-formed nanos.
    static func moneyViolations(_ money: Platform_Common_V1_Money, field: String) -> [FieldViolation] {
        var found: [FieldViolation] = []
        let code = money.currencyCode
        if code.utf8.count != 3 || !code.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) {
            found.append(FieldViolation("\(field).currency_code", "must be a three-letter ISO 4217 code such as EUR, got \"\(code)\""))
        }
        if money.nanos < -999_999_999 || money.nanos > 999_999_999 {
            found.append(FieldViolation("\(field).nanos", "must be within ±999,999,999"))
        } else if (money.units > 0 && money.nanos < 0) || (money.units < 0 && money.nanos > 0) {
            found.append(FieldViolation("\(field).nanos", "must have the same sign as units"))
        }
        if money.units < 0 || money.nanos < 0 {
            found.append(FieldViolation("\(field)", "must not be negative"))
        }
        return found
    }
}
