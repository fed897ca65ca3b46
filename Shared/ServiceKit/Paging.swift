import Crypto
import Foundation
import MeridianRPC
import StandardServices

/// Where the previous page ended: the sort value and id of its last item
/// (keyset pagination, stable while rows are inserted).
public struct PageCursor: Sendable, Hashable, Codable {
    /// The sort key of the last item, as text (numbers in full precision).
    public var value: String
    /// The last item's unique id, which breaks ties between equal sort keys.
    public var id: String

    public init(value: String, id: String) {
        self.value = value
        self.id = id
    }
}

/// Page tokens: the cursor plus a digest of the request fields it is valid
/// for, signed with HMAC-SHA256 so clients cannot forge or alter them.
public struct PageTokenCodec: Sendable {
    private let key: SymmetricKey

    public init(secret: Data) {
        key = SymmetricKey(data: secret)
    }

    private struct Payload: Codable {
        var c: PageCursor
        var r: String  // digest of the request fields
    }

    public func encode(_ cursor: PageCursor, requestFingerprint: String) -> String {
        let payload = (try? JSONEncoder().encode(Payload(c: cursor, r: Self.digest(requestFingerprint)))) ?? Data()
        let signature = Data(HMAC<SHA256>.authenticationCode(for: payload, using: key))
        return Self.base64URL(payload) + "." + Self.base64URL(signature)
    }

    /// The cursor, or INVALID_ARGUMENT when the token is malformed, forged,
    /// or was issued for other request fields.
    public func decode(_ token: String, requestFingerprint: String) throws -> PageCursor {
        let invalid = RPCError.invalidArgument(violations: [FieldViolation("page_token", "not a page token issued by this service")])
        let parts = token.split(separator: ".")
        guard parts.count == 2, let payload = Self.fromBase64URL(String(parts[0])), let signature = Self.fromBase64URL(String(parts[1])),
              HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: payload, using: key),
              let decoded = try? JSONDecoder().decode(Payload.self, from: payload)
        else { throw invalid }
        guard decoded.r == Self.digest(requestFingerprint) else {
            throw RPCError.invalidArgument(violations: [FieldViolation(
                "page_token", "the token was issued for a request with other filter, order_by or query; start again without a token")])
        }
        return decoded.c
    }

    private static func digest(_ text: String) -> String {
        base64URL(Data(SHA256.hash(data: Data(text.utf8))).prefix(12))
    }

    // Base64url by byte mapping: Foundation's replacingOccurrences on Linux
    // goes through NSString and UTF-16.
    private static func base64URL(_ data: Data) -> String {
        let bytes = data.base64EncodedData().compactMap { byte -> UInt8? in
            switch byte {
            case UInt8(ascii: "+"): UInt8(ascii: "-")
            case UInt8(ascii: "/"): UInt8(ascii: "_")
            case UInt8(ascii: "="): nil
            default: byte
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func fromBase64URL(_ text: String) -> Data? {
        var bytes = text.utf8.map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "-"): UInt8(ascii: "+")
            case UInt8(ascii: "_"): UInt8(ascii: "/")
            default: byte
            }
        }
        while bytes.count % 4 != 0 { bytes.append(UInt8(ascii: "=")) }
        return Data(base64Encoded: Data(bytes))
    }
}

/// AIP-158 page size: 0 → 50, above 1000 → 1000, negative → INVALID_ARGUMENT.
public func effectivePageSize(_ requested: Int32) throws -> Int {
    if requested < 0 {
        throw RPCError.invalidArgument(violations: [FieldViolation("page_size", "must not be negative, got \(requested)")])
    }
    return requested == 0 ? 50 : min(Int(requested), 1000)
}
