import NIOCore

/// Pieces of the gRPC-over-HTTP/2 wire format (grpc/grpc PROTOCOL-HTTP2.md).
public enum WireFormat {
    /// `grpc-timeout`: at most 8 ASCII digits and a unit (H, M, S, m, u, n).
    /// Returns nanoseconds, or nil when the value is malformed.
    public static func parseTimeout(_ text: some StringProtocol) -> Int64? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8.count <= 9, let unit = utf8.last else { return nil }
        var amount: Int64 = 0
        for byte in utf8.dropLast() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            amount = amount * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        let perUnit: Int64
        switch unit {
        case UInt8(ascii: "H"): perUnit = 3_600_000_000_000
        case UInt8(ascii: "M"): perUnit = 60_000_000_000
        case UInt8(ascii: "S"): perUnit = 1_000_000_000
        case UInt8(ascii: "m"): perUnit = 1_000_000
        case UInt8(ascii: "u"): perUnit = 1_000
        case UInt8(ascii: "n"): perUnit = 1
        default: return nil
        }
        let (product, overflow) = amount.multipliedReportingOverflow(by: perUnit)
        return overflow ? Int64.max : product
    }

    /// Formats a timeout with the finest unit that fits in 8 digits.
    public static func formatTimeout(nanoseconds: Int64) -> String {
        let ns = max(nanoseconds, 1)
        let units: [(Int64, Character)] = [
            (1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"),
            (60_000_000_000, "M"), (3_600_000_000_000, "H"),
        ]
        for (size, unit) in units {
            // Round up so a deadline is never shortened by formatting
            // (without `ns + size - 1`, which overflows near Int64.max).
            let value = ns / size + (ns % size == 0 ? 0 : 1)
            if value <= 99_999_999 { return "\(value)\(unit)" }
        }
        return "99999999H"
    }

    /// Percent-encodes `grpc-message`: bytes outside 0x20...0x7E and `%`.
    public static func percentEncode(_ message: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(message.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in message.utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Reverses `percentEncode`; malformed escapes are kept literally, as the
    /// protocol asks receivers to be lenient.
    public static func percentDecode(_ text: String) -> String {
        let bytes = Array(text.utf8)
        guard bytes.contains(UInt8(ascii: "%")) else { return text }
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var i = 0
        func hexValue(_ b: UInt8) -> UInt8? {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
               let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A length-prefixed message's prefix: flag byte, 4-byte big-endian length.
    public static let prefixLength = 5

    /// Makes `payload` one length-prefixed message. The prefix goes in place
    /// when the payload has room before its readable bytes (`rpcPayload`
    /// leaves it), else the payload is copied after it.
    public static func frame(_ payload: inout ByteBuffer) {
        let length = payload.readableBytes
        guard payload.readerIndex >= prefixLength else {
            var framed = ByteBufferAllocator().buffer(capacity: prefixLength + length)
            writeFrame(payload, into: &framed)
            payload = framed
            return
        }
        payload.moveReaderIndex(to: payload.readerIndex - prefixLength)
        payload.setInteger(UInt8(0), at: payload.readerIndex)
        payload.setInteger(UInt32(length), at: payload.readerIndex + 1)
    }

    /// Writes one length-prefixed message: flag byte, 4-byte big-endian length,
    /// payload. We never compress.
    public static func writeFrame(_ payload: ByteBuffer, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(payload.readableBytes))
        var payload = payload
        buffer.writeBuffer(&payload)
    }
}

/// Splits a byte stream into length-prefixed gRPC messages, enforcing a size
/// limit before buffering a message so a peer cannot make us allocate more.
struct MessageDeframer {
    enum Failure: Error, Equatable {
        case tooLarge(Int)
        case compressedWithoutEncoding
    }

    let maxMessageSize: Int
    private var buffer = ByteBuffer()

    init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// Bytes held that do not yet form a whole message.
    var hasPartialMessage: Bool { buffer.readableBytes > 0 }
    var bufferedBytes: Int { buffer.readableBytes }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        buffer.writeBytes(bytes)
    }

    mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        buffer.writeBuffer(&bytes)
    }

    /// The next complete message, if one is buffered.
    mutating func next() throws(Failure) -> ByteBuffer? {
        guard buffer.readableBytes >= 5,
              let flag = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self)
        else { return nil }
        if Int(length) > maxMessageSize { throw .tooLarge(Int(length)) }
        if flag & 1 == 1 { throw .compressedWithoutEncoding }
        guard buffer.readableBytes >= 5 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        let message = buffer.readSlice(length: Int(length))!
        // The message shares the buffer's storage: clearing it would allocate
        // new storage, while the empty buffer allocates nothing until used.
        if buffer.readableBytes == 0 { buffer = ByteBuffer() } else if buffer.readerIndex > 65536 { buffer.discardReadBytes() }
        return message
    }
}

extension ByteBuffer {
    /// Moves up to `target.count` readable bytes into `target` (a DATA frame
    /// nghttp2 is building); returns how many.
    mutating func drain(into target: UnsafeMutableRawBufferPointer) -> Int {
        let count = Swift.min(target.count, readableBytes)
        guard count > 0 else { return 0 }
        withUnsafeReadableBytes { source in
            target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source.prefix(count)))
        }
        moveReaderIndex(forwardBy: count)
        if readableBytes == 0 { clear() }
        return count
    }
}
