import Foundation

/// Minimal encoder for the `google.rpc.Status` the runtime itself attaches
/// (a `RetryInfo` when it sheds load). Services build richer details with the
/// generated `google.rpc` types in StandardServices; this avoids a dependency
/// cycle between the runtime and generated code.
public enum StatusDetails {
    /// A `google.rpc.Status` carrying `RetryInfo` and `ErrorInfo`, serialized.
    public static func retryInfo(delayMilliseconds: Int, reason: String, code: RPCStatus.Code = .unavailable, message: String = "") -> Data {
        var duration = ProtoWriter()
        duration.varintField(1, UInt64(delayMilliseconds / 1000))
        duration.varintField(2, UInt64((delayMilliseconds % 1000) * 1_000_000))
        var retryInfo = ProtoWriter()
        retryInfo.bytesField(1, duration.bytes)
        var errorInfo = ProtoWriter()
        errorInfo.bytesField(1, Array(reason.utf8))
        errorInfo.bytesField(2, Array("meridian.platform".utf8))

        var status = ProtoWriter()
        status.varintField(1, UInt64(code.rawValue))
        if !message.isEmpty { status.bytesField(2, Array(message.utf8)) }
        status.bytesField(3, any(typeURL: "type.googleapis.com/google.rpc.RetryInfo", value: retryInfo.bytes))
        status.bytesField(3, any(typeURL: "type.googleapis.com/google.rpc.ErrorInfo", value: errorInfo.bytes))
        return Data(status.bytes)
    }

    private static func any(typeURL: String, value: [UInt8]) -> [UInt8] {
        var any = ProtoWriter()
        any.bytesField(1, Array(typeURL.utf8))
        any.bytesField(2, value)
        return any.bytes
    }

    private struct ProtoWriter {
        var bytes: [UInt8] = []

        mutating func varint(_ value: UInt64) {
            var v = value
            while v >= 0x80 {
                bytes.append(UInt8(v & 0x7F) | 0x80)
                v >>= 7
            }
            bytes.append(UInt8(v))
        }

        mutating func varintField(_ number: Int, _ value: UInt64) {
            guard value != 0 else { return }
            varint(UInt64(number << 3))
            varint(value)
        }

        mutating func bytesField(_ number: Int, _ value: [UInt8]) {
            varint(UInt64(number << 3 | 2))
            varint(UInt64(value.count))
            bytes += value
        }
    }
}
