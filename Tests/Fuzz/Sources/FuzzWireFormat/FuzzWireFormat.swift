// libFuzzer target: the header values WireFormat parses
// (Shared/RPC/Core/WireFormat.swift).
//
// Every input is used three ways:
//   - as a grpc-timeout value: parseTimeout must agree with a reference
//     computed in 128-bit arithmetic (nil, or the nanoseconds capped at
//     Int64.max);
//   - as a grpc-message value: percentDecode must not trap, must leave
//     text without `%` alone, and must undo percentEncode;
//   - its first 8 bytes as a timeout in nanoseconds: formatTimeout must give
//     a valid value of at most 9 characters that parses back to no less
//     than the timeout (a deadline is never shortened), exactly when it
//     fits in 8 digits of nanoseconds.
import MeridianRPC

private func referenceTimeout(_ bytes: [UInt8]) -> Int64? {
    guard bytes.count >= 2, bytes.count <= 9 else { return nil }
    var amount: Int128 = 0
    for byte in bytes.dropLast() {
        guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
        amount = amount * 10 + Int128(byte - UInt8(ascii: "0"))
    }
    let unit: Int128
    switch bytes.last! {
    case UInt8(ascii: "H"): unit = 3_600_000_000_000
    case UInt8(ascii: "M"): unit = 60_000_000_000
    case UInt8(ascii: "S"): unit = 1_000_000_000
    case UInt8(ascii: "m"): unit = 1_000_000
    case UInt8(ascii: "u"): unit = 1_000
    case UInt8(ascii: "n"): unit = 1
    default: return nil
    }
    return Int64(min(amount * unit, Int128(Int64.max)))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWireFormat(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // Header values arrive as bytes; the server makes strings of them this way.
    let text = String(decoding: bytes, as: UTF8.self)

    // grpc-timeout.
    let parsed = WireFormat.parseTimeout(text)
    precondition(parsed == referenceTimeout(Array(text.utf8)), "parseTimeout(\(text.debugDescription)) = \(String(describing: parsed))")
    precondition(WireFormat.parseTimeout(text[...]) == parsed, "parseTimeout differs on a Substring")

    // grpc-message.
    let decoded = WireFormat.percentDecode(text)
    if !text.utf8.contains(UInt8(ascii: "%")) { precondition(decoded == text, "percentDecode changed text without %") }
    let encoded = WireFormat.percentEncode(text)
    precondition(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }, "percentEncode left a byte outside 0x20...0x7E")
    precondition(WireFormat.percentDecode(encoded) == text, "percentDecode(percentEncode(x)) != x for \(text.debugDescription)")

    // formatTimeout, then parseTimeout.
    guard size >= 8 else { return 0 }
    var nanoseconds: Int64 = 0
    for byte in bytes.prefix(8) { nanoseconds = nanoseconds << 8 | Int64(byte) }
    let formatted = WireFormat.formatTimeout(nanoseconds: nanoseconds)
    precondition(formatted.utf8.count <= 9, "formatTimeout(\(nanoseconds)) = \(formatted), longer than 9")
    guard let back = WireFormat.parseTimeout(formatted) else {
        preconditionFailure("formatTimeout(\(nanoseconds)) = \(formatted) does not parse")
    }
    precondition(back >= max(nanoseconds, 1), "formatTimeout(\(nanoseconds)) = \(formatted) shortens the deadline to \(back)")
    if nanoseconds >= 1 && nanoseconds <= 99_999_999 {
        precondition(back == nanoseconds, "formatTimeout(\(nanoseconds)) = \(formatted) is not exact")
    }
    return 0
}
