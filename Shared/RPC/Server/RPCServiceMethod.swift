import NIOCore
import SwiftProtobuf

/// A service a server can host: generated code conforms each service's
/// handler protocol to this, listing its methods.
public protocol RPCService: Sendable {
    /// Every method this service serves.
    var methods: [RPCServiceMethod] { get }
    /// Base64 serialized `FileDescriptorProto`s of the service's proto file and
    /// its dependencies, dependencies first: what gRPC reflection serves.
    var fileDescriptors: [String] { get }
}

extension RPCService {
    public var fileDescriptors: [String] { [] }

    /// This service with some of its methods served by `replacements`,
    /// matched by path; paths the service does not have are ignored. The
    /// service's generated handler protocol stays the contract, and the
    /// replacements a faster way to serve the same calls.
    public func replacingMethods(_ replacements: [RPCServiceMethod]) -> any RPCService {
        MethodReplacingService(base: self, replacements: replacements)
    }
}

private struct MethodReplacingService: RPCService {
    let base: any RPCService
    let replacements: [RPCServiceMethod]

    var methods: [RPCServiceMethod] {
        base.methods.map { method in replacements.first { $0.path == method.path } ?? method }
    }

    var fileDescriptors: [String] { base.fileDescriptors }
}

/// One servable method: its path, its kind, and how to run it over a call.
/// Built by generated code through the typed factories below.
public struct RPCServiceMethod: Sendable {
    public enum Kind: Sendable, Hashable {
        case unary, serverStreaming, clientStreaming, bidirectionalStreaming

        /// Request-streaming methods start their handler at the request
        /// headers; the others once the one request message has arrived.
        var requestStreams: Bool { self == .clientStreaming || self == .bidirectionalStreaming }
    }

    /// The rest of a call that could not be answered immediately: run in
    /// the call's task.
    typealias Remainder = @Sendable () async throws -> Void

    public let path: String
    public let kind: Kind
    /// Health checks and reflection: never refused for the application's
    /// load, so orchestrators and tools see a busy server as alive.
    let bypassesAdmission: Bool
    let run: @Sendable (ServerCall, ServerContext) async throws -> Void
    /// Answers the call on the event loop, without a task, when it can:
    /// nil once answered, or what is left to run in a task.
    let immediate: (@Sendable (ServerCall, ServerContext) throws -> Remainder?)?

    init(path: String, kind: Kind, run: @escaping @Sendable (ServerCall, ServerContext) async throws -> Void,
         immediate: (@Sendable (ServerCall, ServerContext) throws -> Remainder?)? = nil) {
        self.path = path
        self.kind = kind
        self.run = run
        self.immediate = immediate
        self.bypassesAdmission = path.hasPrefix("/grpc.health.v1.Health/") || path.hasPrefix("/grpc.reflection.")
    }

    public static func unary<Request: Message, Response: Message>(
        _ path: String,
        _ handler: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) -> RPCServiceMethod {
        unary(path, decode: { payload throws(RPCError) in try Request(rpcPayload: payload) }, handler)
    }

    /// A unary method that decodes its request payload itself: for a hot
    /// method whose request a hand-written reader turns into what the
    /// handler needs faster than SwiftProtobuf builds the message. Errors
    /// thrown by `decode` are the call's status.
    public static func unary<Request, Response: Message>(
        _ path: String,
        decode: @escaping @Sendable (ByteBuffer) throws(RPCError) -> Request,
        _ handler: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) -> RPCServiceMethod {
        RPCServiceMethod(path: path, kind: .unary) { call, context in
            let request = try decode(call.takeUnaryRequest())
            try respond(with: try await handler(request, context), to: call, context: context)
        }
    }

    /// A unary method that can often answer at once, from memory, without
    /// waiting for anything: `immediately` returns the response when it
    /// can, or nil when it would have to wait (a cache miss); `handler`
    /// then serves the call in a task as usual. Answering on the event loop
    /// saves the task, its scheduling and its executor hops: for the hot
    /// reads of a service, most of the server's own cost per call.
    ///
    /// `immediately` runs on the connection's event loop, so it must be
    /// quick and never block; it must not change anything before it
    /// returns nil, since `handler` then serves the same request. The
    /// server answers immediately only when its interceptors are all
    /// `ServerCallObserver`s; otherwise every call goes to `handler`.
    public static func unary<Request: Sendable, Response: Message>(
        _ path: String,
        decode: @escaping @Sendable (ByteBuffer) throws(RPCError) -> Request,
        immediately: @escaping @Sendable (Request, ServerContext) throws -> Response?,
        _ handler: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) -> RPCServiceMethod {
        RPCServiceMethod(path: path, kind: .unary, run: { call, context in
            let request = try decode(call.takeUnaryRequest())
            try respond(with: try await handler(request, context), to: call, context: context)
        }, immediate: { call, context in
            let request = try decode(call.takeUnaryRequest())
            if let response = try immediately(request, context) {
                try respond(with: response, to: call, context: context)
                return nil
            }
            return { try respond(with: try await handler(request, context), to: call, context: context) }
        })
    }

    private static func respond<Response: Message>(with response: Response, to call: ServerCall, context: ServerContext) throws {
        var payload: ByteBuffer
        if var fields = context.takeEncodedResponseFields() {
            // The handler's own encoding is the bulk of the response: the
            // message's few fields follow it in the same buffer.
            var own = try response.rpcPayload()
            fields.writeBuffer(&own)
            payload = fields
        } else {
            payload = try response.rpcPayload()
        }
        WireFormat.frame(&payload)
        call.respondUnary(framed: payload, context: context)
    }

    public static func serverStreaming<Request: Message, Response: Message>(
        _ path: String,
        _ handler: @escaping @Sendable (Request, RPCResponseWriter<Response>, ServerContext) async throws -> Void
    ) -> RPCServiceMethod {
        RPCServiceMethod(path: path, kind: .serverStreaming) { call, context in
            let request = try Request(rpcPayload: call.takeUnaryRequest())
            try await handler(request, RPCResponseWriter(call: call, context: context), context)
            call.finish(status: .ok, context: context)
        }
    }

    public static func clientStreaming<Request: Message, Response: Message>(
        _ path: String,
        _ handler: @escaping @Sendable (RPCRequestStream<Request>, ServerContext) async throws -> Response
    ) -> RPCServiceMethod {
        RPCServiceMethod(path: path, kind: .clientStreaming) { call, context in
            try respond(with: try await handler(RPCRequestStream(call: call), context), to: call, context: context)
        }
    }

    public static func bidirectionalStreaming<Request: Message, Response: Message>(
        _ path: String,
        _ handler: @escaping @Sendable (RPCRequestStream<Request>, RPCResponseWriter<Response>, ServerContext) async throws -> Void
    ) -> RPCServiceMethod {
        RPCServiceMethod(path: path, kind: .bidirectionalStreaming) { call, context in
            try await handler(RPCRequestStream(call: call), RPCResponseWriter(call: call, context: context), context)
            call.finish(status: .ok, context: context)
        }
    }
}

/// The request messages of a client- or bidirectional-streaming call. Reading
/// is what opens the flow-control window: a slow handler slows its client.
public struct RPCRequestStream<Message: SwiftProtobuf.Message>: AsyncSequence, Sendable {
    public typealias Element = Message
    let call: ServerCall

    public struct AsyncIterator: AsyncIteratorProtocol {
        let call: ServerCall
        public mutating func next() async throws -> Message? {
            guard let payload = try await call.nextRequest() else { return nil }
            return try Message(rpcPayload: payload)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(call: call) }
}

/// Writes response messages of a server- or bidirectional-streaming call.
/// `write` suspends while the client is not reading (backpressure).
public struct RPCResponseWriter<Message: SwiftProtobuf.Message>: Sendable {
    let call: ServerCall
    let context: ServerContext

    public func write(_ message: Message) async throws {
        try await call.write(message.rpcPayload(), context: context)
    }

    /// Sends the response headers (with any set on the context) before the
    /// first message, so the caller knows the stream is live.
    public func sendHeaders() async throws {
        try await call.sendHeaders(context: context)
    }

    public func write(contentsOf messages: some Sequence<Message>) async throws {
        for message in messages { try await write(message) }
    }
}
