import Foundation

/// Request or response metadata: ordered key/value pairs, keys lower-case.
///
/// Keys ending in `-bin` carry binary values, base64-encoded on the wire as
/// the gRPC protocol requires; other values are printable ASCII strings.
public struct Metadata: Sendable, Hashable, Sequence {
    public enum Value: Sendable, Hashable, CustomStringConvertible {
        case string(String)
        case binary(Data)

        public var description: String {
            switch self {
            case .string(let s): s
            case .binary(let d): d.base64EncodedString()
            }
        }
    }

    public private(set) var entries: [(key: String, value: Value)] = []

    public init() {}

    public init(_ pairs: [(String, String)]) {
        for (key, value) in pairs { add(key, value) }
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }

    /// Appends a string value. Keys are lower-cased.
    public mutating func add(_ key: String, _ value: String) {
        entries.append((Self.normalized(key), .string(value)))
    }

    /// Appends a binary value; the key must end in `-bin`.
    public mutating func add(_ key: String, binary: Data) {
        let key = Self.normalized(key)
        precondition(key.hasSuffix("-bin"), "binary metadata keys end in -bin")
        entries.append((key, .binary(binary)))
    }

    public mutating func add(_ key: String, value: Value) {
        entries.append((Self.normalized(key), value))
    }

    /// Replaces every value of `key` with one string value.
    public mutating func set(_ key: String, _ value: String) {
        remove(key)
        add(key, value)
    }

    public mutating func remove(_ key: String) {
        let key = Self.normalized(key)
        entries.removeAll { $0.key == key }
    }

    /// Keys are stored lowercase. Most keys already are (literals, keys read
    /// off the wire), and checking is far cheaper than `lowercased()`.
    static func normalized(_ key: String) -> String {
        key.utf8.contains(where: { ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || $0 >= 0x80 }) ? key.lowercased() : key
    }

    /// The first string value of `key`, if any.
    public subscript(key: String) -> String? {
        let key = Self.normalized(key)
        for entry in entries where entry.key == key {
            if case .string(let s) = entry.value { return s }
        }
        return nil
    }

    /// The first binary value of `key`, if any.
    public func binary(_ key: String) -> Data? {
        let key = Self.normalized(key)
        for entry in entries where entry.key == key {
            if case .binary(let d) = entry.value { return d }
        }
        return nil
    }

    /// All values of `key`, in order.
    public func values(_ key: String) -> [Value] {
        let key = Self.normalized(key)
        return entries.filter { $0.key == key }.map(\.value)
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: Value)]> {
        entries.makeIterator()
    }

    public static func == (lhs: Metadata, rhs: Metadata) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in entries {
            hasher.combine(entry.key)
            hasher.combine(entry.value)
        }
    }

    /// Header names the protocol reserves; they are never exposed as custom
    /// metadata and never accepted from applications. The retry pushback
    /// trailer is the one `grpc-` name servers set themselves (gRFC A6).
    static func isReserved(_ key: String) -> Bool {
        key.hasPrefix(":") || (key.hasPrefix("grpc-") && key != "grpc-retry-pushback-ms")
            || key == "content-type" || key == "te"
            || key == "user-agent" || key == "content-length" || key == "connection"
            || key == "host" || key == "transfer-encoding"
    }

    /// Decodes a header from the wire: `-bin` values are base64 (padded or not).
    mutating func addFromWire(name: String, value: String) {
        if name.hasSuffix("-bin") {
            // A binary header may hold several comma-separated base64 values.
            for part in value.split(separator: ",", omittingEmptySubsequences: true) {
                if let data = Base64.decodeLenient(part.trimmingCharacters(in: .whitespaces)) {
                    entries.append((name, .binary(data)))
                }
            }
        } else {
            entries.append((name, .string(value)))
        }
    }
}

enum Base64 {
    /// gRPC peers may omit base64 padding; accept both forms.
    static func decodeLenient(_ text: String) -> Data? {
        var s = text
        let remainder = s.utf8.count % 4
        if remainder != 0 { s += String(repeating: "=", count: 4 - remainder) }
        return Data(base64Encoded: s)
    }

    /// Base64 without padding, as gRPC sends binary metadata. Trimmed by
    /// hand: Foundation's `trimmingCharacters` on Linux converts through
    /// UTF-16 and was a quarter of the cost of an error response.
    static func encodeUnpadded(_ data: Data) -> String {
        var text = data.base64EncodedString()
        while text.utf8.last == UInt8(ascii: "=") { text.removeLast() }
        return text
    }
}
