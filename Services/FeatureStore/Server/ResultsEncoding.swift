import Contracts
import SwiftProtobuf

/// `GetOnlineFeaturesResponse.results` written straight to protobuf bytes.
/// A lookup answers one small message per value and timestamp (5,000 for
/// 100 rows of 20 features); building and encoding them one by one cost far
/// more than the lookup itself. Values come pre-encoded from the hot tier,
/// timestamps and statuses are written here, and the bytes ride in the
/// response's unknown fields, which SwiftProtobuf writes out unchanged: on
/// the wire it is the same field 2 a FeatureVector list would produce.
struct ResultsEncoder {
    private(set) var bytes: [UInt8] = []
    private var vector: [UInt8] = []
    private var statuses: [UInt8] = []
    private var timestamps: [UInt8] = []

    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    /// Starts a column.
    mutating func beginVector() {
        vector.removeAll(keepingCapacity: true)
        statuses.removeAll(keepingCapacity: true)
        timestamps.removeAll(keepingCapacity: true)
    }

    /// One row of the column: the encoded Value (empty for none), its
    /// status, and its event time (nil for the empty Timestamp).
    mutating func append(value: [UInt8], status: Platform_Featurestore_V1_FieldStatus, eventTime: (seconds: Int64, nanos: Int32)?) {
        Self.appendField(1, value, to: &vector)
        Self.appendVarint(UInt64(status.rawValue), to: &statuses)
        var timestamp: [UInt8] = []
        if let eventTime {
            if eventTime.seconds != 0 { timestamp.append(0x08); Self.appendVarint(UInt64(bitPattern: eventTime.seconds), to: &timestamp) }
            if eventTime.nanos != 0 { timestamp.append(0x10); Self.appendVarint(UInt64(bitPattern: Int64(eventTime.nanos)), to: &timestamp) }
        }
        Self.appendField(3, timestamp, to: &timestamps)
    }

    /// Ends the column: FeatureVector{values = 1, statuses = 2 (packed), event_timestamps = 3}.
    mutating func endVector() {
        Self.appendField(2, statuses, to: &vector)
        vector.append(contentsOf: timestamps)
        Self.appendField(2, vector, to: &bytes)  // GetOnlineFeaturesResponse.results = 2
    }

    /// The results as unknown fields of a response message.
    func unknownFields() throws -> UnknownStorage {
        // An Empty message keeps every field it reads as unknown.
        try Google_Protobuf_Empty(serializedBytes: bytes).unknownFields
    }

    static func appendField(_ number: UInt64, _ payload: [UInt8], to buffer: inout [UInt8]) {
        appendVarint(number << 3 | 2, to: &buffer)
        appendVarint(UInt64(payload.count), to: &buffer)
        buffer.append(contentsOf: payload)
    }

    static func appendVarint(_ value: UInt64, to buffer: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            buffer.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        buffer.append(UInt8(value))
    }
}
