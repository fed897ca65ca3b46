import Contracts
import Foundation
import ServiceKit
import SwiftProtobuf

public typealias FeatureView = Platform_Featurestore_V1_FeatureView
public typealias FeatureService = Platform_Featurestore_V1_FeatureService
public typealias FeatureValue = Platform_Featurestore_V1_Value

/// Where definitions and feature rows live. Business rules (validation,
/// allowed changes, TTL) stay in the handler; a store makes each operation
/// atomic and scoped to its tenant.
public protocol FeatureStorage: Sendable {
    /// Every view and feature service of the tenant (the registry is kept in
    /// memory and resolved once, never per request).
    func registry(tenant: TenantID) async throws -> (views: [FeatureView], services: [FeatureService])

    /// Reads the named definition and the tenant's feature services, lets
    /// `decide` choose a write, and commits it with its idempotency record.
    func modifyRegistry(tenant: TenantID, idempotency: IdempotencyKey?,
                        decide: @Sendable (_ views: [String: FeatureView], _ services: [String: FeatureService]) throws -> RegistryWrite)
        async throws -> RegistryOutcome

    /// Stores each row unless the entity already has a later one (latest
    /// event time wins; an equal time replaces). Returns, per row, whether
    /// it was stored. One transaction, with the idempotency record.
    func write(tenant: TenantID, view: String, rows: [StoredRow], idempotency: IdempotencyKey?,
               response: @Sendable ([Bool]) -> Data) async throws -> WriteOutcome

    /// The latest stored row of each entity key that has one.
    func rows(tenant: TenantID, view: String, entityKeys: [String]) async throws -> [String: StoredRow]

    /// Where a feed consumer stopped (its resume token), or nil.
    func offset(tenant: TenantID, consumer: String) async throws -> String?

    /// Records where a feed consumer stopped.
    func saveOffset(tenant: TenantID, consumer: String, token: String) async throws

    func pruneExpired(now: Date) async throws
    func isAvailable() async -> Bool
    func close() async throws
}

public enum RegistryWrite: Sendable {
    case saveView(FeatureView, response: Data)
    case deleteView(String, response: Data)
    case saveService(FeatureService, response: Data)
    /// Nothing to store; answer this.
    case none(response: Data)
}

public enum RegistryOutcome: Sendable {
    /// The serialized response of the write (or of the replayed first call).
    case answered(Data)
}

public enum WriteOutcome: Sendable {
    case stored([Bool])
    case replayed(Data)
}

public enum FeatureStorageError: Error, Sendable {
    case idempotencyConflict
}

/// One entity's row as stored: its values by feature name (absent means
/// null) and the event time.
public struct StoredRow: Sendable {
    public var entityKey: String
    public var values: [String: FeatureValue] {
        didSet { encoded = nil }
    }
    public var eventTime: Date
    /// The values already encoded, in the order of a resolved view's
    /// features, filled when the row enters the hot tier so lookups copy
    /// bytes by column position instead of encoding messages or hashing
    /// names. Valid only for that resolved view (one registry load).
    var encoded: (layout: ResolvedView, values: [[UInt8]?])?

    public init(entityKey: String, values: [String: FeatureValue], eventTime: Date) {
        self.entityKey = entityKey
        self.values = values
        self.eventTime = eventTime
    }

    /// The row with its values encoded in `layout`'s feature order.
    func encoded(for layout: ResolvedView) throws -> StoredRow {
        var copy = self
        copy.encoded = (layout, try encodedValues(for: layout))
        return copy
    }

    /// The values encoded in `layout`'s feature order: kept ones when they
    /// were encoded for that layout, else encoded now.
    func encodedValues(for layout: ResolvedView) throws -> [[UInt8]?] {
        if let encoded, encoded.layout === layout { return encoded.values }
        return try layout.features.map { feature in try values[feature].map { try $0.serializedBytes() } }
    }

    /// The event time as a protobuf Timestamp's seconds and nanos.
    var eventSeconds: (seconds: Int64, nanos: Int32) {
        let timestamp = Google_Protobuf_Timestamp(date: eventTime)
        return (timestamp.seconds, timestamp.nanos)
    }
}

/// Join key values as one storage key: typed, so the string "1" and the
/// integer 1 are different entities, and in the view's join key order.
public enum EntityKey {
    public static func encode(_ values: [FeatureValue]) -> String {
        values.map { value -> String in
            switch value.val {
            case .int64Val(let number): "i\(number)"
            case .stringVal(let text): "s\(text.utf8.count):\(text)"
            default: "?"
            }
        }.joined(separator: "|")
    }
}
