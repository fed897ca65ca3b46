import NIOCore
import Synchronization

/// What a handler knows about the call it serves, and how it adds response
/// metadata. One per RPC; available as `ServerContext.current` inside the
/// handler's task so outgoing calls inherit its deadline and metadata.
public final class ServerContext: Sendable {
    /// `/package.Service/Method`.
    public let path: String
    /// The request's custom metadata (reserved HTTP/2 and `grpc-` headers removed).
    public let requestMetadata: Metadata
    /// When the caller stops waiting, from `grpc-timeout`; nil means no deadline.
    public let deadline: NIODeadline?
    /// The remote address, for logs.
    public let peer: String
    /// When the call's request headers were read off the connection: where
    /// the server's time on the call starts, before the request is decoded
    /// and before the handler task is scheduled.
    public let receivedAt: NIODeadline

    private struct ResponseMetadata {
        var headers = Metadata()
        var trailers = Metadata()
    }
    private let response = Mutex(ResponseMetadata())
    private let encodedResponseFields = Mutex<ByteBuffer?>(nil)

    init(path: String, requestMetadata: Metadata, deadline: NIODeadline?, peer: String) {
        self.path = path
        self.requestMetadata = requestMetadata
        self.deadline = deadline
        self.peer = peer
        self.receivedAt = .now()
    }

    /// Metadata sent with the response headers. Only effective before the
    /// first response message is written.
    public func addResponseHeader(_ key: String, _ value: Metadata.Value) {
        response.withLock { $0.headers.add(key, value: value) }
    }

    /// Metadata sent with the trailers, next to `grpc-status`.
    public func addTrailer(_ key: String, _ value: Metadata.Value) {
        response.withLock { $0.trailers.add(key, value: value) }
    }

    /// Fields of the unary response that the handler encoded itself, sent
    /// before the fields of the message it returns. Protobuf reads
    /// concatenated messages as one, so a hot path can write a large
    /// repeated field straight to bytes instead of building a message per
    /// element. The bytes must be well-formed fields of the response type,
    /// and the returned message should not set the same fields.
    public func appendEncodedResponseFields(_ bytes: [UInt8]) {
        encodedResponseFields.withLock { fields in
            if fields == nil { fields = Self.encodedFieldsBuffer(capacity: bytes.count) }
            fields!.writeBytes(bytes)
        }
    }

    /// `appendEncodedResponseFields` for fields written into a buffer from
    /// `encodedFieldsBuffer(capacity:)`: the usual single call hands the
    /// buffer over, and the response is framed in it without a copy.
    public func appendEncodedResponseFields(_ buffer: ByteBuffer) {
        encodedResponseFields.withLock { fields in
            if fields == nil {
                fields = buffer
            } else {
                var buffer = buffer
                fields!.writeBuffer(&buffer)
            }
        }
    }

    /// An empty buffer to encode response fields into, with room before
    /// its readable bytes for gRPC's message prefix (`WireFormat.frame`).
    public static func encodedFieldsBuffer(capacity: Int) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: WireFormat.prefixLength + capacity)
        buffer.moveWriterIndex(forwardBy: WireFormat.prefixLength)
        buffer.moveReaderIndex(forwardBy: WireFormat.prefixLength)
        return buffer
    }

    func takeEncodedResponseFields() -> ByteBuffer? {
        encodedResponseFields.withLock { fields in
            defer { fields = nil }
            return fields
        }
    }

    var responseHeaders: Metadata { response.withLock { $0.headers } }
    var responseTrailers: Metadata { response.withLock { $0.trailers } }

    /// The method name alone, e.g. `GetProduct`.
    public var methodName: Substring {
        path.lastIndex(of: "/").map { path[path.index(after: $0)...] } ?? Substring(path)
    }

    /// The fully-qualified service name, e.g. `platform.catalog.v1.CatalogService`.
    public var serviceName: Substring {
        let trimmed = path.dropFirst()
        return trimmed.firstIndex(of: "/").map { trimmed[..<$0] } ?? trimmed
    }

    /// Time left before the deadline, if there is one.
    public var timeRemaining: TimeAmount? {
        deadline.map { $0 - .now() }
    }

    /// The context of the RPC the current task is serving, if any.
    @TaskLocal public static var current: ServerContext?
}
