// libFuzzer target: MessageDeframer (Shared/RPC/Core/WireFormat.swift).
//
// Input: byte 0 picks the size limit, byte 1 seeds the chunk sizes and
// whether the stream is repeated past 64 KiB (to reach the deframer's
// compaction; only streams of few, large messages), the rest is the stream of length-prefixed messages. The stream
// is fed in chunks, alternating both `append`s, draining `next()` after
// each; what comes out must equal what a plain parser of the whole stream
// finds: the same messages, the same failure, the same partial tail. No
// message may exceed the limit.
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
@testable import MeridianRPC

private let limits = [0, 1, 4, 5, 16, 100, 255, 1024, 65_536, 4 << 20]

private struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private enum Outcome: Equatable {
    case clean
    case partial
    case failed(MessageDeframer.Failure)
}

/// The reference: one pass over the whole stream.
private func reference(_ stream: [UInt8], limit: Int) -> (messages: [ArraySlice<UInt8>], outcome: Outcome) {
    var messages: [ArraySlice<UInt8>] = []
    var position = 0
    while stream.count - position >= 5 {
        let flag = stream[position]
        var length = 0
        for index in 1...4 { length = length << 8 | Int(stream[position + index]) }
        if length > limit { return (messages, .failed(.tooLarge(length))) }
        if flag & 1 == 1 { return (messages, .failed(.compressedWithoutEncoding)) }
        guard stream.count - position - 5 >= length else { break }
        messages.append(stream[(position + 5)..<(position + 5 + length)])
        position += 5 + length
    }
    return (messages, position < stream.count ? .partial : .clean)
}

/// Whether `message` holds exactly `expected` (memcmp: comparing byte by
/// byte through ByteBufferView costs seconds per input in this build).
private func same(_ message: ByteBuffer, _ expected: ArraySlice<UInt8>) -> Bool {
    guard message.readableBytes == expected.count else { return false }
    return message.withUnsafeReadableBytes { actual in
        expected.withUnsafeBytes { wanted in
            actual.isEmpty || memcmp(actual.baseAddress!, wanted.baseAddress!, actual.count) == 0
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeframer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 2 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let limit = input[0] & 0x80 != 0 ? Int(input[0] & 0x7F) : limits[Int(input[0]) % limits.count]
    var random = SplitMix(state: UInt64(input[1]) | UInt64(size) << 8)
    var stream = Array(input[2...])
    // A quarter of the inputs: the stream repeated past 64 KiB.
    // Only for bodies of few, large messages: each message costs about
    // 0.2 ms in this instrumented debug build.
    var repeated = false
    if input[1] & 3 == 3, !stream.isEmpty, reference(stream, limit: limit).messages.count * (70_000 / stream.count + 1) <= 2_000 {
        repeated = true
        let body = stream
        while stream.count <= 70_000 { stream += body }
    }
    let expected = reference(stream, limit: limit)

    var deframer = MessageDeframer(maxMessageSize: limit)
    var received: [ByteBuffer] = []
    var failure: MessageDeframer.Failure?
    var position = 0
    var chunkIndex = 0
    feeding: while position < stream.count {
        // Mostly small chunks, sometimes a frame's worth, sometimes the rest.
        let roll = random.next()
        let chunk: Int = switch roll % 8 {
        case _ where repeated: 1 + Int((roll >> 8) % 4096)  // few chunks: a long stream
        case 0...4: 1 + Int((roll >> 8) % 8)
        case 5, 6: 1 + Int((roll >> 8) % 300)
        default: stream.count - position
        }
        let end = min(stream.count, position + chunk)
        stream[position..<end].withUnsafeBytes { bytes in
            if chunkIndex % 2 == 0 {
                deframer.append(bytes)
            } else {
                var buffer = ByteBuffer()
                // Sometimes a buffer whose reader index is not at 0, as slices of a read are.
                if roll & 0x100 != 0 { buffer.writeRepeatingByte(0xEE, count: 3); buffer.moveReaderIndex(forwardBy: 3) }
                buffer.writeBytes(bytes)
                deframer.append(buffer)
            }
        }
        chunkIndex += 1
        position = end
        do {
            while let message = try deframer.next() {
                precondition(message.readableBytes <= limit, "message of \(message.readableBytes) bytes above the limit \(limit)")
                let index = received.count
                precondition(index < expected.messages.count, "more messages than the stream holds")
                precondition(same(message, expected.messages[index]), "message \(index) differs")
                received.append(message)
            }
        } catch {
            failure = error
            break feeding
        }
    }
    let outcome: Outcome = if let failure { .failed(failure) } else if deframer.hasPartialMessage { .partial } else { .clean }
    precondition(outcome == expected.outcome, "outcome \(outcome), expected \(expected.outcome)")
    precondition(received.count == expected.messages.count, "\(received.count) messages, expected \(expected.messages.count)")
    // Messages share storage with the deframer's buffer: later appends and
    // compaction must not have changed the ones already handed out.
    for (index, message) in received.enumerated() {
        precondition(same(message, expected.messages[index]), "message \(index) changed after it was returned")
    }
    return 0
}
