import Crypto
import Foundation
import MeridianRPC
import StandardServices
import SwiftProtobuf

/// A request id scoped to a method, and a hash of the request it came with.
public struct IdempotencyKey: Sendable, Hashable {
    public var method: String
    public var key: String
    public var requestHash: Data

    public init(method: String, key: String, requestHash: Data) {
        self.method = method
        self.key = key
        self.requestHash = requestHash
    }
}

public enum IdempotencyLookup: Sendable {
    case unused
    case replay(Data)
    case conflict
}

extension IdempotencyKey {
    /// The idempotency key of a mutation: the request's `request_id` field,
    /// else the `idempotency-key` metadata, with a hash of the request so a
    /// reused key with a different request is caught. Nil without a key.
    public static func of<M: SwiftProtobuf.Message>(_ request: M, requestID: String, method: String, context: ServerContext) throws -> IdempotencyKey? {
        let key = requestID.isEmpty ? (context.requestMetadata["idempotency-key"] ?? "") : requestID
        guard !key.isEmpty else { return nil }
        guard key.utf8.count <= 128 else {
            throw RPCError.invalidArgument(violations: [FieldViolation("request_id", "must be at most 128 characters")])
        }
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        let bytes: Data = try request.serializedBytes(options: options)
        return IdempotencyKey(method: method, key: key, requestHash: Data(SHA256.hash(data: bytes)))
    }

    /// The answer for a key reused with a different request.
    public var conflict: RPCError {
        RPCError.rich(.invalidArgument, "request_id \(key) was already used with a different request",
                      reason: "IDEMPOTENCY_KEY_REUSED", metadata: ["request_id": key])
    }
}
