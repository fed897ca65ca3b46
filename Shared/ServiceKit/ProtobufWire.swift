/// Protobuf wire-format primitives for the few responses that are written
/// straight to bytes on hot paths (the feature store's result vectors,
/// experimentation's assignments) instead of through generated messages.
public enum ProtobufWire {
    @inlinable
    public static func varint(_ value: UInt64, to buffer: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            buffer.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        buffer.append(UInt8(value))
    }

    @inlinable
    public static func varintSize(_ value: UInt64) -> Int {
        var size = 1, value = value
        while value >= 0x80 {
            value >>= 7
            size += 1
        }
        return size
    }

    /// A varint field (tag and value).
    @inlinable
    public static func varintField(_ number: UInt64, _ value: UInt64, to buffer: inout [UInt8]) {
        varint(number << 3, to: &buffer)
        varint(value, to: &buffer)
    }

    /// A length-delimited string field; nothing for the empty string, as
    /// proto3 omits defaults.
    @inlinable
    public static func stringField(_ number: UInt64, _ text: String, to buffer: inout [UInt8]) {
        guard !text.isEmpty else { return }
        varint(number << 3 | 2, to: &buffer)
        varint(UInt64(text.utf8.count), to: &buffer)
        buffer.append(contentsOf: text.utf8)
    }

    /// A length-delimited field (bytes or an embedded message), written even
    /// when empty.
    @inlinable
    public static func bytesField(_ number: UInt64, _ payload: [UInt8], to buffer: inout [UInt8]) {
        varint(number << 3 | 2, to: &buffer)
        varint(UInt64(payload.count), to: &buffer)
        buffer.append(contentsOf: payload)
    }
}
