import MeridianRPC

/// The tenant a request acts for. Every row a service stores is scoped by
/// it; for now it comes from the `x-tenant-id` request metadata.
public struct TenantID: Sendable, Hashable, CustomStringConvertible {
    public let value: String

    public init(_ value: String) { self.value = value }

    public var description: String { value }

    /// The caller's tenant; UNAUTHENTICATED when the metadata is missing,
    /// INVALID_ARGUMENT when it is malformed.
    public static func from(_ context: ServerContext) throws(RPCError) -> TenantID {
        guard let value = context.requestMetadata["x-tenant-id"], !value.isEmpty else {
            throw RPCError(.unauthenticated, "missing x-tenant-id metadata: every call must name its tenant")
        }
        guard value.utf8.count <= 64, value.utf8.allSatisfy({ byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }) else {
            throw RPCError(.invalidArgument, "x-tenant-id must be 1-64 characters of [A-Za-z0-9._-]")
        }
        return TenantID(value)
    }
}
