import CNGHTTP2
import Logging
import NIOCore

/// One HTTP/2 connection on the server: feeds socket bytes to nghttp2, turns
/// its events into calls, starts handler tasks, and writes what nghttp2 has
/// to send. Lives on the channel's event loop.
final class ServerConnectionHandler: ChannelInboundHandler, HTTP2SessionDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let shared: RPCServer.Shared
    private var session: HTTP2Session!
    private var context: ChannelHandlerContext!
    private var calls: [Int32: ServerCall] = [:]
    /// The call last looked up: nghttp2 reports a stream's headers, data
    /// and end one after another, so this spares most dictionary lookups.
    private var recentCall: ServerCall?
    private var peer = "unknown"
    private var isReading = false
    private var idleTimer: Scheduled<Void>?
    /// When the last call ended; nil while calls are in flight. The idle
    /// timer checks it when it fires instead of being cancelled and armed
    /// again around every call.
    private var idleSince: NIODeadline? = .now()
    private var ageTimer: Scheduled<Void>?
    private var draining = false
    private var closeAfterFlush = false
    private var flushScheduled = false
    /// The method this connection last called, by path: most connections
    /// call one or two methods, so its path string and route are reused.
    private var lastRoute: (path: String, method: RPCServiceMethod)?
    /// Where handler tasks run: this connection's event loop, or (nil) the
    /// global concurrent executor.
    private var handlerExecutor: EventLoopTaskExecutor?

    init(shared: RPCServer.Shared) {
        self.shared = shared
    }

    var logger: Logger { shared.logger }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peer = context.channel.remoteAddress?.description ?? "unknown"
        do {
            session = try HTTP2Session(role: .server, settings: shared.configuration.http2Settings, delegate: self)
        } catch {
            logger.error("cannot create HTTP/2 session", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        shared.connections.register(self, on: context.eventLoop)
        if shared.configuration.handlerExecutor == .eventLoop { handlerExecutor = EventLoopTaskExecutor(context.eventLoop) }
        if let maxAge = shared.configuration.maxConnectionAge {
            ageTimer = context.eventLoop.assumeIsolated().scheduleTask(in: maxAge) { [self] in beginGracefulShutdown() }
        }
        armIdleTimer()
    }

    func channelActive(context: ChannelHandlerContext) {
        flush()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        isReading = true
        do {
            try session.receive(buffer)
        } catch {
            logger.debug("HTTP/2 protocol error, closing", metadata: ["peer": "\(peer)", "error": "\(error)"])
            isReading = false
            flush()
            context.close(promise: nil)
            return
        }
        isReading = false
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        ageTimer?.cancel()
        for call in calls.values { releaseAndClose(call) }
        calls.removeAll()
        recentCall = nil
        shared.connections.unregister(self, on: context.eventLoop)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["peer": "\(peer)", "error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Output

    /// Writes whatever nghttp2 has queued. Deferred while reading, so one
    /// socket read produces one write.
    func flush() {
        guard !isReading, let context, let session else { return }
        session.flush(to: context)
        if closeAfterFlush {
            context.close(promise: nil)
            return
        }
        // nghttp2 is done with the connection (GOAWAY exchanged, nothing in
        // flight): drop it. Calls still running keep it open until they end.
        if !session.wantsRead && !session.wantsWrite && calls.isEmpty {
            context.close(promise: nil)
        }
    }

    /// Writes what calls have queued once the event loop has run the work
    /// already due, so answers completed together leave in one socket write
    /// instead of one syscall each. A single call waits only for the tasks
    /// queued ahead of it, never for a timer.
    func flushSoon() {
        // While reading, the end of the read flushes (calls answered
        // immediately are answered there).
        guard !flushScheduled, !isReading, let context else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute { [self] in
            flushScheduled = false
            flush()
        }
    }

    func submitResponse(streamID: Int32, headers: [(String, String)], hasBody: Bool) {
        do {
            try session.submitResponse(streamID: streamID, headers: headers, hasBody: hasBody)
        } catch {
            logger.debug("cannot submit response", metadata: ["stream": "\(streamID)", "error": "\(error)"])
            session.resetStream(streamID: streamID, errorCode: NGHTTP2_INTERNAL_ERROR.rawValue)
        }
    }

    func resumeData(streamID: Int32) { session.resumeData(streamID: streamID) }
    func consume(streamID: Int32, count: Int) { session.consume(streamID: streamID, count: count) }
    func consumeConnection(count: Int) { session.consumeConnection(count: count) }

    // MARK: Lifecycle

    /// GOAWAY, then close once the calls in flight are done.
    func beginGracefulShutdown() {
        guard !draining, session != nil else { return }
        draining = true
        session.submitGoAway(errorCode: NGHTTP2_NO_ERROR.rawValue)
        closeAfterFlush = calls.isEmpty
        flush()
    }

    /// Cancels every call still running (end of the shutdown grace period).
    func cancelAllCalls() {
        for call in calls.values {
            call.finish(status: RPCStatus(.unavailable, "server is shutting down"), context: nil)
            call.task?.cancel()
        }
        flush()
        context?.close(promise: nil)
    }

    /// Notes that the connection went idle, and makes sure a timer will
    /// look at it once it may have been idle for `maxConnectionIdle`.
    private func armIdleTimer() {
        let now = NIODeadline.now()
        idleSince = now
        guard idleTimer == nil, let maxIdle = shared.configuration.maxConnectionIdle else { return }
        scheduleIdleCheck(at: now + maxIdle, maxIdle: maxIdle)
    }

    private func scheduleIdleCheck(at deadline: NIODeadline, maxIdle: TimeAmount) {
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            idleTimer = nil
            guard let idleSince, calls.isEmpty else { return }  // busy: armed again when the last call ends
            if idleSince + maxIdle <= .now() {
                beginGracefulShutdown()
            } else {
                scheduleIdleCheck(at: idleSince + maxIdle, maxIdle: maxIdle)
            }
        }
    }

    // MARK: HTTP2SessionDelegate

    private func call(_ streamID: Int32) -> ServerCall? {
        if let recentCall, recentCall.streamID == streamID { return recentCall }
        let call = calls[streamID]
        if call != nil { recentCall = call }
        return call
    }

    func sessionBeginHeaders(streamID: Int32) {
        guard call(streamID) == nil else { return }  // trailers of a request
        let call = ServerCall(
            streamID: streamID, connection: self, eventLoop: context.eventLoop,
            maxMessageSize: shared.configuration.maxReceiveMessageSize)
        calls[streamID] = call
        recentCall = call
        idleSince = nil
    }

    func sessionHeader(streamID: Int32, field: HTTP2HeaderField) {
        guard let call = call(streamID), call.method == nil, !call.isFinished else { return }
        // Names compared as bytes; strings made only of what the call keeps.
        if field.nameIs(":path") {
            call.path = field.valueString(reusing: lastRoute?.path ?? "")
        } else if field.nameIs(":method") {
            call.headers.method = field.valueString
        } else if field.nameIs("content-type") {
            call.headers.contentType = field.valueString(reusing: "application/grpc")
        } else if field.nameIs("te") || field.nameIs(":scheme") || field.nameIs(":authority") || field.nameIs("user-agent")
                    || field.nameIs("grpc-accept-encoding") {
            return  // reserved, and nothing the server uses
        } else if field.nameIs("grpc-timeout") {
            call.headers.timeout = field.valueString
        } else if field.nameIs("grpc-encoding") {
            call.headers.encoding = field.valueString
        } else {
            let name = field.nameString
            if !Metadata.isReserved(name) { call.headers.metadata.addFromWire(name: name, value: field.valueString) }
        }
    }

    func sessionHeadersComplete(streamID: Int32, endStream: Bool) {
        guard let call = call(streamID) else { return }
        if call.method == nil && !call.isFinished {
            startCall(call)
        }
        if endStream { requestEnded(call) }
    }

    func sessionData(streamID: Int32, bytes: UnsafeRawBufferPointer) {
        guard let call = call(streamID) else {
            session.consumeConnection(count: bytes.count)
            return
        }
        if call.isFinished {
            session.consume(streamID: streamID, count: bytes.count)
            return
        }
        if let failure = call.receive(bytes) { fail(call, failure) }
    }

    func sessionDataComplete(streamID: Int32, endStream: Bool) {
        guard endStream, let call = call(streamID) else { return }
        requestEnded(call)
    }

    func sessionStreamClosed(streamID: Int32, errorCode: UInt32) {
        if recentCall?.streamID == streamID { recentCall = nil }
        guard let call = calls.removeValue(forKey: streamID) else { return }
        releaseAndClose(call)
        if calls.isEmpty {
            // Close only after the frames that ended the stream are written:
            // this runs in the middle of serializing them.
            if draining { closeAfterFlush = true } else { armIdleTimer() }
        }
    }

    func sessionGoAway(lastStreamID: Int32, errorCode: UInt32) {}

    func sessionReadData(streamID: Int32, into buffer: UnsafeMutableRawBufferPointer) -> DataReadResult {
        call(streamID)?.readOutbound(into: buffer) ?? .bytes(count: 0, endOfData: true, trailers: nil)
    }

    // MARK: Calls

    private func startCall(_ call: ServerCall) {
        let headers = call.headers
        guard headers.method == "POST" else {
            call.sendTrailersOnly(status: RPCStatus(.unimplemented, "gRPC requires POST, got \(headers.method)"))
            return
        }
        guard headers.contentType.hasPrefix("application/grpc") else {
            // Not a gRPC request at all: answer in plain HTTP, as the protocol says.
            call.markAnswered()
            submitResponse(streamID: call.streamID, headers: [(":status", "415"), ("content-type", "text/plain")], hasBody: false)
            return
        }
        if let encoding = headers.encoding, encoding != "identity" {
            call.sendTrailersOnly(status: RPCStatus(.unimplemented, "grpc-encoding \(encoding) is not supported; use identity"))
            return
        }
        var deadline: NIODeadline?
        if let timeout = headers.timeout {
            guard let nanoseconds = WireFormat.parseTimeout(timeout) else {
                call.sendTrailersOnly(status: RPCStatus(.invalidArgument, "malformed grpc-timeout: \(timeout)"))
                return
            }
            deadline = .now() + .nanoseconds(nanoseconds)
        }
        let method: RPCServiceMethod
        if let lastRoute, lastRoute.path == call.path {
            method = lastRoute.method  // a connection mostly calls one method: same string, compared by identity first
        } else {
            guard let found = shared.router.method(for: call.path) else {
                call.sendTrailersOnly(status: shared.router.unimplementedStatus(for: call.path))
                return
            }
            method = found
            lastRoute = (call.path, found)
        }
        guard !draining else {
            call.sendTrailersOnly(status: RPCStatus(.unavailable, "server is shutting down"))
            return
        }
        guard shared.limiter.tryAcquire() else {
            call.sendTrailersOnly(status: RPCStatus(
                .unavailable, "server is at its limit of \(shared.limiter.limit) calls in flight; retry later",
                details: StatusDetails.retryInfo(delayMilliseconds: 50, reason: "OVERLOADED")))
            return
        }
        call.holdsPermit = true
        call.method = method
        let serverContext = ServerContext(path: call.path, requestMetadata: headers.metadata, deadline: deadline, peer: peer)
        call.headers.metadata = Metadata()  // owned by the context now
        if let deadline {
            call.deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
                call.finish(status: RPCStatus(.deadlineExceeded, "deadline exceeded"), context: serverContext)
                call.task?.cancel()
                flush()
            }
        }
        call.context = serverContext
        if method.kind.requestStreams { launch(call) }
    }

    private func requestEnded(_ call: ServerCall) {
        if let failure = call.endOfRequest() {
            fail(call, failure)
            return
        }
        if let method = call.method, !method.kind.requestStreams, call.task == nil, !call.isFinished {
            launch(call)
        }
    }

    private func launch(_ call: ServerCall) {
        guard let method = call.method, let serverContext = call.context else { return }
        if let immediate = method.immediate, let observers = shared.interceptors.observers {
            answerImmediately(call, immediate, observers: observers, context: serverContext)
            return
        }
        call.task = startTask { [shared] in await Self.serve(call, method: method, context: serverContext, shared: shared) }
    }

    private func startTask(_ body: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        guard let handlerExecutor else { return Task(operation: body) }
        return Task(executorPreference: handlerExecutor, operation: body)
    }

    /// Serves a call on the event loop, without a task, when its method can
    /// answer from what it has at hand; otherwise its remainder goes to a
    /// task. The observers see the call once either way.
    private func answerImmediately(_ call: ServerCall, _ immediate: (ServerCall, ServerContext) throws -> RPCServiceMethod.Remainder?,
                                   observers: [any ServerCallObserver], context: ServerContext) {
        do {
            try observers.start(context: context)
        } catch {
            Self.finish(call, failedWith: error, context: context, logger: shared.logger)
            return
        }
        do {
            guard let remainder = try immediate(call, context) else {
                observers.end(context: context, error: nil)
                return
            }
            call.task = startTask { [shared] in
                do {
                    try await ServerContext.$current.withValue(context) { try await remainder() }
                    observers.end(context: context, error: nil)
                } catch {
                    observers.end(context: context, error: error)
                    Self.finish(call, failedWith: error, context: context, logger: shared.logger)
                }
            }
        } catch {
            observers.end(context: context, error: error)
            Self.finish(call, failedWith: error, context: context, logger: shared.logger)
        }
    }

    /// The body of a handler's task: interceptors, the handler, and the
    /// status any error becomes.
    private static func serve(_ call: ServerCall, method: RPCServiceMethod, context: ServerContext, shared: RPCServer.Shared) async {
        do {
            try await ServerContext.$current.withValue(context) {
                try await shared.interceptors.run(context: context) {
                    try await method.run(call, context)
                }
            }
        } catch {
            finish(call, failedWith: error, context: context, logger: shared.logger)
        }
    }

    private func fail(_ call: ServerCall, _ status: RPCStatus) {
        call.finish(status: status, context: call.context)
        call.task?.cancel()
        flush()
    }

    private func releaseAndClose(_ call: ServerCall) {
        call.closed()
        if call.holdsPermit {
            call.holdsPermit = false
            shared.limiter.release()
        }
    }

    /// Ends a call whose handler (or an observer) threw.
    private static func finish(_ call: ServerCall, failedWith error: any Error, context: ServerContext, logger: Logger) {
        call.finish(status: status(for: error, context: context, logger: logger), context: context)
    }

    /// The status a thrown error becomes. Only `RPCError`s choose their
    /// status; anything else is UNKNOWN with no internals, and gets logged.
    static func status(for error: any Error, context: ServerContext, logger: Logger) -> RPCStatus {
        switch error {
        case let error as RPCError:
            for (key, value) in error.trailers { context.addTrailer(key, value) }
            return error.status
        case is CancellationError:
            if let deadline = context.deadline, deadline <= .now() {
                return RPCStatus(.deadlineExceeded, "deadline exceeded")
            }
            return RPCStatus(.cancelled, "call cancelled")
        default:
            logger.error("handler failed", metadata: ["rpc.method": "\(context.path)", "error": "\(String(reflecting: error))"])
            return RPCStatus(.unknown, "the handler failed unexpectedly")
        }
    }
}
