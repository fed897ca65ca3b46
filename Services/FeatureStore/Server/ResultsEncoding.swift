import Contracts
import ServiceKit
import SwiftProtobuf

/// `GetOnlineFeaturesResponse.results` written straight to protobuf bytes.
/// A lookup answers one small message per value and timestamp (5,000 for
/// 100 rows of 20 features); building and encoding them one by one cost far
/// more than the lookup itself. Values come pre-encoded from the hot tier,
/// timestamps and statuses are written here, and the server sends the bytes
/// after the response message (`ServerContext.appendEncodedResponseFields`):
/// on the wire it is the same field 2 a FeatureVector list would produce.
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
        ProtobufWire.bytesField(1, value, to: &vector)
        ProtobufWire.varint(UInt64(status.rawValue), to: &statuses)
        // Timestamp{seconds = 1, nanos = 2}, written in place: a buffer per
        // value would be an allocation per value.
        let seconds = UInt64(bitPattern: eventTime?.seconds ?? 0), nanos = UInt64(bitPattern: Int64(eventTime?.nanos ?? 0))
        var size = 0
        if seconds != 0 { size += 1 + ProtobufWire.varintSize(seconds) }
        if nanos != 0 { size += 1 + ProtobufWire.varintSize(nanos) }
        timestamps.append(3 << 3 | 2)
        ProtobufWire.varint(UInt64(size), to: &timestamps)
        if seconds != 0 { timestamps.append(0x08); ProtobufWire.varint(seconds, to: &timestamps) }
        if nanos != 0 { timestamps.append(0x10); ProtobufWire.varint(nanos, to: &timestamps) }
    }

    /// Ends the column: FeatureVector{values = 1, statuses = 2 (packed), event_timestamps = 3}.
    mutating func endVector() {
        ProtobufWire.bytesField(2, statuses, to: &vector)
        vector.append(contentsOf: timestamps)
        ProtobufWire.bytesField(2, vector, to: &bytes)  // GetOnlineFeaturesResponse.results = 2
    }
}
