import Contracts
import ServiceKit
import SwiftProtobuf

/// One value of a lookup's response: the encoded Value (empty for none),
/// its status, and its event time (nil for the empty Timestamp).
struct ResultCell {
    var value: [UInt8]
    var status: Platform_Featurestore_V1_FieldStatus
    var eventTime: (seconds: Int64, nanos: Int32)?
}

/// `GetOnlineFeaturesResponse`'s fields written straight to protobuf bytes.
/// A lookup answers one small message per value and timestamp (5,000 for
/// 100 rows of 20 features); building and encoding them one by one cost far
/// more than the lookup itself. Values come pre-encoded from the hot tier,
/// timestamps and statuses are written here, and the server sends the bytes
/// after the (empty) response message
/// (`ServerContext.appendEncodedResponseFields`): on the wire it is what the
/// generated encoder would write.
///
/// Sizes are computed first and the bytes written once into memory of
/// exactly that size: building each vector in scratch arrays and copying it
/// into the response cost 15% of a 1 x 50 lookup.
enum ResultsEncoding {
    /// `prefix` (already encoded fields, the metadata), then one
    /// FeatureVector (field 2) per column of `cells`, which holds `rows`
    /// cells a column, column after column.
    static func encode(prefix: [UInt8], cells: [ResultCell], rows: Int) -> [UInt8] {
        let columns = rows == 0 ? 0 : cells.count / rows
        func cell(_ column: Int, _ row: Int) -> ResultCell { cells[column * rows + row] }
        var vectorSizes = [Int](repeating: 0, count: columns)
        var total = prefix.count
        for column in 0..<columns {
            // FeatureVector{values = 1, statuses = 2 (packed), event_timestamps = 3}.
            var size = 1 + ProtobufWire.varintSize(UInt64(rows)) + rows  // statuses: every FieldStatus fits one byte
            for row in 0..<rows {
                let cell = cell(column, row)
                size += 1 + ProtobufWire.varintSize(UInt64(cell.value.count)) + cell.value.count
                size += 2 + timestampSize(cell.eventTime)  // a Timestamp is under 128 bytes
            }
            vectorSizes[column] = size
            total += 1 + ProtobufWire.varintSize(UInt64(size)) + size
        }
        return [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
            var writer = ProtobufWire.Writer(buffer)
            writer.bytes(prefix)
            for column in 0..<columns {
                writer.byte(2 << 3 | 2)  // GetOnlineFeaturesResponse.results = 2
                writer.varint(UInt64(vectorSizes[column]))
                for row in 0..<rows {
                    let value = cell(column, row).value
                    writer.byte(1 << 3 | 2)
                    writer.varint(UInt64(value.count))
                    writer.bytes(value)
                }
                writer.byte(2 << 3 | 2)
                writer.varint(UInt64(rows))
                for row in 0..<rows {
                    writer.byte(UInt8(cell(column, row).status.rawValue))
                }
                for row in 0..<rows {
                    let time = cell(column, row).eventTime
                    writer.byte(3 << 3 | 2)
                    writer.byte(UInt8(timestampSize(time)))
                    // Timestamp{seconds = 1, nanos = 2}; proto3 leaves out zeros.
                    if let time, time.seconds != 0 {
                        writer.byte(1 << 3)
                        writer.varint(UInt64(bitPattern: time.seconds))
                    }
                    if let time, time.nanos != 0 {
                        writer.byte(2 << 3)
                        writer.varint(UInt64(bitPattern: Int64(time.nanos)))
                    }
                }
            }
            precondition(writer.count == total, "ResultsEncoding: sized \(total) bytes, wrote \(writer.count)")
            count = total
        }
    }

    /// The encoded size of a Timestamp message (without tag and length).
    private static func timestampSize(_ time: (seconds: Int64, nanos: Int32)?) -> Int {
        guard let time else { return 0 }
        var size = 0
        if time.seconds != 0 { size += 1 + ProtobufWire.varintSize(UInt64(bitPattern: time.seconds)) }
        if time.nanos != 0 { size += 1 + ProtobufWire.varintSize(UInt64(bitPattern: Int64(time.nanos))) }
        return size
    }

    /// GetOnlineFeaturesResponse.metadata (field 1): the column names, as
    /// `GetOnlineFeaturesResponseMetadata{feature_names = FeatureList{val}}`.
    static func metadata(names: [String]) -> [UInt8] {
        var list: [UInt8] = []
        for name in names {
            // Written even when empty, unlike a proto3 singular string: each entry is a column.
            ProtobufWire.bytesField(1, Array(name.utf8), to: &list)
        }
        var metadata: [UInt8] = []
        ProtobufWire.bytesField(1, list, to: &metadata)
        var field: [UInt8] = []
        ProtobufWire.bytesField(1, metadata, to: &field)
        return field
    }
}
