import NIOCore
import SwiftProtobuf

/// Lets swift-protobuf read from and write into a `ByteBuffer` directly, so a
/// message is never copied through `Data` on the hot path.
@usableFromInline
struct ProtobufBytes: SwiftProtobufContiguousBytes {
    @usableFromInline var buffer: ByteBuffer

    @usableFromInline init(_ buffer: ByteBuffer) { self.buffer = buffer }

    /// What SwiftProtobuf encodes into. The buffer starts with room for
    /// gRPC's 5-byte message prefix before its readable bytes, so framing
    /// the payload (`WireFormat.frame`) writes the prefix in place instead
    /// of copying the message into a new buffer.
    @usableFromInline init(repeating: UInt8, count: Int) {
        buffer = ByteBufferAllocator().buffer(capacity: WireFormat.prefixLength + count)
        buffer.writeRepeatingByte(repeating, count: WireFormat.prefixLength + count)
        buffer.moveReaderIndex(forwardBy: WireFormat.prefixLength)
    }

    @usableFromInline init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        buffer = ByteBuffer(bytes: sequence)
    }

    @usableFromInline var count: Int { buffer.readableBytes }

    @usableFromInline func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }

    @usableFromInline mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutableReadableBytes(body)
    }
}

extension SwiftProtobuf.Message {
    /// Decodes from a gRPC message payload; failures become INTERNAL, as gRPC
    /// reports undecodable messages.
    @inlinable
    public init(rpcPayload buffer: ByteBuffer) throws(RPCError) {
        do {
            self = try Self(serializedBytes: ProtobufBytes(buffer))
        } catch {
            throw RPCError(.internal, "failed to decode \(Self.protoMessageName): \(error)")
        }
    }

    /// Encodes into a new buffer ready to be framed.
    @inlinable
    public func rpcPayload() throws(RPCError) -> ByteBuffer {
        do {
            let bytes: ProtobufBytes = try serializedBytes()
            return bytes.buffer
        } catch {
            throw RPCError(.internal, "failed to encode \(Self.protoMessageName): \(error)")
        }
    }
}
