import Foundation
import SwiftProtobuf

/// A JSON value with JavaScript's coercion and comparison rules, which
/// GrowthBook's targeting language inherits from its JavaScript SDK: to give
/// the same answers, conditions are evaluated the way JavaScript would.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(_ value: Google_Protobuf_Value) {
        switch value.kind {
        case .nullValue, nil: self = .null
        case .boolValue(let bool): self = .bool(bool)
        case .numberValue(let number): self = .number(number)
        case .stringValue(let string): self = .string(string)
        case .listValue(let list): self = .array(list.values.map(JSONValue.init))
        case .structValue(let object): self = JSONValue(object)
        }
    }

    public init(_ object: Google_Protobuf_Struct) {
        self = .object(object.fields.mapValues(JSONValue.init))
    }

    /// Parses JSON text (through SwiftProtobuf's JSON reader).
    public init(json: String) throws {
        self.init(try Google_Protobuf_Value(jsonString: json))
    }

    public var protobufValue: Google_Protobuf_Value {
        switch self {
        case .null: Google_Protobuf_Value(nilLiteral: ())
        case .bool(let bool): Google_Protobuf_Value(boolValue: bool)
        case .number(let number): Google_Protobuf_Value(numberValue: number)
        case .string(let string): Google_Protobuf_Value(stringValue: string)
        case .array(let values): Google_Protobuf_Value(listValue: Google_Protobuf_ListValue(values: values.map(\.protobufValue)))
        case .object(let fields): Google_Protobuf_Value(structValue: Google_Protobuf_Struct(fields: fields.mapValues(\.protobufValue)))
        }
    }

    // MARK: JavaScript semantics

    /// `String(value)` / `value + ""`.
    public var jsString: String {
        switch self {
        case .null: "null"
        case .bool(let bool): bool ? "true" : "false"
        case .number(let number): Self.jsNumberString(number)
        case .string(let string): string
        case .array(let values): values.map { $0 == .null ? "" : $0.jsString }.joined(separator: ",")
        case .object: "[object Object]"
        }
    }

    /// `value * 1` (ToNumber).
    public var jsNumber: Double {
        switch self {
        case .null: 0
        case .bool(let bool): bool ? 1 : 0
        case .number(let number): number
        case .string(let string): Self.stringToNumber(string)
        case .array(let values): values.isEmpty ? 0 : values.count == 1 ? Self.stringToNumber(jsString) : .nan
        case .object: .nan
        }
    }

    /// `!!value`.
    public var isTruthy: Bool {
        switch self {
        case .null: false
        case .bool(let bool): bool
        case .number(let number): number != 0 && !number.isNaN
        case .string(let string): !string.isEmpty
        case .array, .object: true
        }
    }

    /// `a === b`: same type and value; arrays and objects are references in
    /// JavaScript, so two of them parsed from JSON are never identical.
    public func strictlyEquals(_ other: JSONValue) -> Bool {
        switch (self, other) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        default: false
        }
    }

    /// `JSON.stringify(a) === JSON.stringify(b)`, comparing objects without
    /// regard to key order (protobuf's Struct does not keep it).
    public func structurallyEquals(_ other: JSONValue) -> Bool {
        switch (self, other) {
        case (.array(let a), .array(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.structurallyEquals($1) }
        case (.object(let a), .object(let b)): a.count == b.count && a.allSatisfy { key, value in b[key].map(value.structurallyEquals) ?? false }
        case (.number(let a), .number(let b)): a == b || (!a.isFinite && !b.isFinite && a.isNaN == b.isNaN && (a.isNaN || a == b))
        default: strictlyEquals(other)
        }
    }

    /// JavaScript's relational comparison (`<`, `<=`, `>`, `>=`): strings
    /// compare by UTF-16 code units, anything else as numbers; NaN compares
    /// false.
    public func jsCompare(_ other: JSONValue, _ accept: (ComparisonResult) -> Bool) -> Bool {
        let left = primitive, right = other.primitive
        if case .string(let a) = left, case .string(let b) = right {
            return accept(Self.compareUTF16(a, b))
        }
        let a = left.jsNumber, b = right.jsNumber
        guard !a.isNaN, !b.isNaN else { return false }
        return accept(a < b ? .orderedAscending : a > b ? .orderedDescending : .orderedSame)
    }

    /// ToPrimitive: arrays and objects become their string form.
    private var primitive: JSONValue {
        switch self {
        case .array, .object: .string(jsString)
        default: self
        }
    }

    static func compareUTF16(_ a: String, _ b: String) -> ComparisonResult {
        // ASCII (version strings, ids) orders the same by UTF-8 bytes: compare in place.
        let ascii = a.utf8.withContiguousStorageIfAvailable { left in
            b.utf8.withContiguousStorageIfAvailable { right in compareASCII(left, right) } ?? nil
        } ?? nil
        if let ascii { return ascii }
        var left = a.utf16.makeIterator(), right = b.utf16.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil): return .orderedSame
            case (nil, _): return .orderedAscending
            case (_, nil): return .orderedDescending
            case (let x?, let y?) where x != y: return x < y ? .orderedAscending : .orderedDescending
            default: continue
            }
        }
    }

    /// Byte order up to the first difference, when everything up to it is
    /// ASCII; nil when a non-ASCII byte comes first (UTF-16 order can differ).
    private static func compareASCII(_ left: UnsafeBufferPointer<UInt8>, _ right: UnsafeBufferPointer<UInt8>) -> ComparisonResult? {
        for index in 0..<min(left.count, right.count) {
            let x = left[index], y = right[index]
            guard x < 0x80, y < 0x80 else { return nil }
            if x != y { return x < y ? .orderedAscending : .orderedDescending }
        }
        return left.count == right.count ? .orderedSame : left.count < right.count ? .orderedAscending : .orderedDescending
    }

    /// ToNumber for strings: trimmed decimal or 0x/0o/0b literal, "" → 0,
    /// anything else NaN.
    static func stringToNumber(_ string: String) -> Double {
        let trimmed = string.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { return 0 }
        switch trimmed {
        case "Infinity", "+Infinity": return .infinity
        case "-Infinity": return -.infinity
        default: break
        }
        let lower = trimmed.lowercased()
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) {
            return UInt64(lower.dropFirst(2), radix: radix).map(Double.init) ?? .nan
        }
        // Swift accepts forms JavaScript does not (hex floats, "nan", "inf").
        guard trimmed.allSatisfy({ "0123456789+-.eE".contains($0) }) else { return .nan }
        return Double(trimmed) ?? .nan
    }

    /// `Number.prototype.toString()`: the shortest digits that round-trip
    /// (Swift's `description` computes them), laid out by ECMAScript's rules.
    public static func jsNumberString(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        if value == 0 { return "0" }
        if value < 0 { return "-" + jsNumberString(-value) }
        // Split Swift's shortest representation into digits and a decimal
        // exponent n, so that value = 0.d1d2d3... × 10^n.
        let text = value.description
        let parts = text.split(separator: "e", maxSplits: 1)
        let exponent = parts.count == 2 ? Int(parts[1]) ?? 0 : 0
        let mantissa = parts[0]
        let pointIndex = mantissa.firstIndex(of: ".").map { mantissa.distance(from: mantissa.startIndex, to: $0) } ?? mantissa.count
        var digits = Array(mantissa.filter { $0 != "." })
        var n = pointIndex + exponent
        while digits.first == "0" { digits.removeFirst(); n -= 1 }
        while digits.last == "0" { digits.removeLast() }
        let k = digits.count
        let all = String(digits)
        if k <= n && n <= 21 { return all + String(repeating: "0", count: n - k) }
        if 0 < n && n <= 21 { return String(digits[0..<n]) + "." + String(digits[n...]) }
        if -6 < n && n <= 0 { return "0." + String(repeating: "0", count: -n) + all }
        let e = n - 1
        let sign = e < 0 ? "-" : "+"
        let head = k == 1 ? all : String(digits[0]) + "." + String(digits[1...])
        return head + "e" + sign + String(abs(e))
    }

    /// The value at a dot-separated path (`father.age`), or null when any
    /// step is missing.
    public func value(atPath path: Substring) -> JSONValue {
        // Most attribute paths are one plain key.
        if !path.utf8.contains(UInt8(ascii: ".")) {
            guard case .object(let fields) = self else { return .null }
            return fields[String(path)] ?? .null
        }
        var current = self
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            switch current {
            case .object(let fields) where fields[String(part)] != nil: current = fields[String(part)]!
            case .array(let values) where Int(part).map(values.indices.contains) == true: current = values[Int(part)!]
            default: return .null
            }
        }
        return current
    }
}
