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

extension ProtobufWire {
    /// Writes wire bytes into memory sized beforehand, for encoders that
    /// know a message's exact size: one bounds check per write and no
    /// growth, where appending to an array checks capacity and uniqueness
    /// per byte. Writing past the end stops the process.
    public struct Writer {
        @usableFromInline var cursor: UnsafeMutablePointer<UInt8>
        @usableFromInline let start: UnsafeMutablePointer<UInt8>
        @usableFromInline let end: UnsafeMutablePointer<UInt8>

        public init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
            start = buffer.baseAddress!
            cursor = start
            end = start + buffer.count
        }

        /// Bytes written so far.
        @inlinable public var count: Int { cursor - start }

        @inlinable
        public mutating func byte(_ value: UInt8) {
            precondition(cursor < end, "ProtobufWire.Writer: past the end")
            cursor.pointee = value
            cursor += 1
        }

        @inlinable
        public mutating func varint(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                byte(UInt8(truncatingIfNeeded: value) | 0x80)
                value >>= 7
            }
            byte(UInt8(value))
        }

        @inlinable
        public mutating func bytes(_ bytes: [UInt8]) {
            bytes.withUnsafeBufferPointer { raw(UnsafeRawBufferPointer($0)) }
        }

        /// A string's UTF-8 bytes, without tag or length.
        @inlinable
        public mutating func utf8(_ text: String) {
            var text = text
            text.withUTF8 { raw(UnsafeRawBufferPointer($0)) }
        }

        @inlinable
        public mutating func fixed64(_ value: UInt64) {
            withUnsafeBytes(of: value.littleEndian) { raw($0) }
        }

        @inlinable
        public mutating func bytes(_ bytes: UnsafeRawBufferPointer) { raw(bytes) }

        @inlinable
        mutating func raw(_ bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
            precondition(bytes.count <= end - cursor, "ProtobufWire.Writer: past the end")
            UnsafeMutableRawPointer(cursor).copyMemory(from: base, byteCount: bytes.count)
            cursor += bytes.count
        }
    }
}

extension ProtobufWire {
    /// Reads wire bytes for hand-written decoders of hot messages. Every
    /// read is checked against the end; a read that does not fit returns
    /// nil, and the caller hands the message to SwiftProtobuf, which
    /// decides what is malformed and says why.
    public struct Reader {
        public enum WireType: UInt8 {
            case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
        }

        @usableFromInline var cursor: UnsafePointer<UInt8>
        @usableFromInline let end: UnsafePointer<UInt8>

        public init(_ bytes: UnsafeRawBufferPointer) {
            // An empty buffer may have no address; any pointer with nothing after it will do.
            let base = bytes.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) } ?? UnsafePointer(bitPattern: 1)!
            cursor = base
            end = base + bytes.count
        }

        @inlinable public var isAtEnd: Bool { cursor >= end }

        @inlinable
        public mutating func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while cursor < end, shift < 64 {
                let byte = cursor.pointee
                cursor += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
            return nil
        }

        /// The next field's number and wire type; nil at a malformed tag, a
        /// wire type this reader does not handle (groups), or a tag
        /// SwiftProtobuf refuses: longer than 5 bytes or above 32 bits.
        @inlinable
        public mutating func tag() -> (field: UInt64, wireType: WireType)? {
            let start = cursor
            guard let key = varint(), cursor - start <= 5, key <= UInt64(UInt32.max), key >> 3 != 0,
                  let wireType = WireType(rawValue: UInt8(key & 7)) else { return nil }
            return (key >> 3, wireType)
        }

        @inlinable
        public mutating func fixed64() -> UInt64? {
            guard end - cursor >= 8 else { return nil }
            var value: UInt64 = 0
            withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(start: cursor, count: 8)) }
            cursor += 8
            return UInt64(littleEndian: value)
        }

        /// A length-delimited payload, as a reader of its own.
        @inlinable
        public mutating func lengthDelimited() -> Reader? {
            guard let length = varint(), length <= UInt64(end - cursor) else { return nil }
            let payload = Reader(UnsafeRawBufferPointer(start: cursor, count: Int(length)))
            cursor += Int(length)
            return payload
        }

        /// A length-delimited payload as a string; nil when it is not UTF-8.
        @inlinable
        public mutating func string() -> String? {
            guard let payload = lengthDelimited() else { return nil }
            let bytes = UnsafeBufferPointer(start: payload.cursor, count: payload.end - payload.cursor)
            // ASCII (keys, ids, codes) is valid UTF-8 as it is: decoding it
            // skips the generic validating initializer, whose type lookups
            // cost more than the copy.
            if payload.isASCII { return String(decoding: bytes, as: UTF8.self) }
            return String(validating: bytes, as: UTF8.self)
        }

        /// A copy of the bytes left in this reader.
        public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: cursor, count: end - cursor)) }

        /// Bytes left in this reader.
        @inlinable public var remaining: Int { end - cursor }

        /// Whether every byte left is ASCII.
        @inlinable public var isASCII: Bool {
            var byte = cursor
            // Eight bytes at a time, then the tail.
            while end - byte >= 8 {
                if UnsafeRawPointer(byte).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
                byte += 8
            }
            while byte < end {
                if byte.pointee >= 0x80 { return false }
                byte += 1
            }
            return true
        }

        /// Skips a field's value of the given wire type.
        @inlinable
        public mutating func skip(_ wireType: WireType) -> Bool {
            switch wireType {
            case .varint: return varint() != nil
            case .fixed64: return fixed64() != nil
            case .lengthDelimited: return lengthDelimited() != nil
            case .fixed32:
                guard end - cursor >= 4 else { return false }
                cursor += 4
                return true
            }
        }
    }
}
