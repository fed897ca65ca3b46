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
    /// The peer's address as the connection limiter counted it; nil when
    /// the connection was refused.
    private var admittedPeer: String?
    private var isReading = false
    /// Timers, keepalive, flood budgets and the connection's lifecycle.
    private var machine: ServerConnectionStateMachine
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private var closeAfterFlush = false
    private var flushScheduled = false
    /// Streams answered before their request ended: reset (NO_ERROR) once
    /// the frames ending them are written, so the client stops sending.
    private var streamsToReset: [Int32] = []
    /// Permits of the in-flight limiter this connection's calls hold.
    private var permitsHeld = 0
    /// Request bytes this connection's calls hold that no handler has taken.
    private var bufferedBytes = 0
    /// The action a frame check decided while nghttp2 was parsing.
    private var pendingAbort: ServerConnectionStateMachine.Action?
    /// The method this connection last called, by path: most connections
    /// call one or two methods, so its path string and route are reused.
    private var lastRoute: (path: String, method: RPCServiceMethod)?
    /// Where handler tasks run: this connection's event loop, or (nil) the
    /// global concurrent executor.
    private var handlerExecutor: EventLoopTaskExecutor?

    /// Bytes serialized per write before checking the socket again, so a
    /// slow reader's backlog waits in nghttp2 and the calls, not in NIO.
    private static let writeChunk = 256 << 10

    init(shared: RPCServer.Shared) {
        self.shared = shared
        self.machine = ServerConnectionStateMachine(limits: shared.connectionLimits, now: .now())
    }

    var logger: Logger { shared.logger }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let address = context.channel.remoteAddress
        peer = address?.description ?? "unknown"
        do {
            session = try HTTP2Session(role: .server, settings: shared.configuration.http2Settings, delegate: self, watchesFrames: true)
        } catch {
            logger.error("cannot create HTTP/2 session", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        let peerKey = address?.ipAddress ?? peer
        switch shared.connectionLimiter.admit(peer: peerKey) {
        case .admitted:
            admittedPeer = peerKey
        case .refused(let kind):
            // Polite shedding: our SETTINGS and a GOAWAY saying why, then close.
            shared.limitMetrics.hit(kind)
            logger.debug("connection refused", metadata: ["peer": "\(peer)", "limit": "\(kind.rawValue)"])
            machine.closed()
            session.submitGoAway(errorCode: ServerConnectionStateMachine.ErrorCode.enhanceYourCalm,
                                 message: kind == .connections ? "too many connections" : "too many connections from this address")
            closeAfterFlush = true
            return
        }
        shared.connections.register(self, on: context.eventLoop)
        if shared.configuration.handlerExecutor == .eventLoop { handlerExecutor = EventLoopTaskExecutor(context.eventLoop) }
        rearmTimer()
    }

    /// The context holds this handler: keeping it past removal would keep
    /// both, the nghttp2 session and the calls alive for ever (tens of KiB
    /// a connection; found by the connection fuzzer's leak check).
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        flush()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A connection being closed reads nothing more.
        guard !machine.isClosed else { return }
        let buffer = unwrapInboundIn(data)
        machine.bytesRead()
        let wasAwaitingPreface = machine.isAwaitingPreface
        isReading = true
        do {
            try session.receive(buffer)
        } catch {
            isReading = false
            if let pendingAbort {
                self.pendingAbort = nil
                perform(pendingAbort)
            } else {
                logger.debug("HTTP/2 protocol error, closing", metadata: ["peer": "\(peer)", "error": "\(error)"])
                perform(machine.protocolFailed())
            }
            return
        }
        isReading = false
        // A header block left open must complete in time: make sure the timer looks.
        if machine.isInHeaderBlock || wasAwaitingPreface { rearmTimer() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        perform(machine.writabilityChanged(isWritable: context.channel.isWritable, now: .now()))
        if context.channel.isWritable { flush() }
        rearmTimer()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        machine.closed()
        timer?.cancel()
        timer = nil
        for call in calls.values { releaseAndClose(call) }
        calls.removeAll()
        recentCall = nil
        if let admittedPeer {
            shared.connectionLimiter.release(peer: admittedPeer)
            self.admittedPeer = nil
            shared.connections.unregister(self, on: context.eventLoop)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["peer": "\(peer)", "error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Output

    /// Writes what nghttp2 has queued, while the peer keeps reading.
    /// Deferred while reading, so one socket read produces one write.
    func flush() {
        guard !isReading, let context, let session, context.channel.isActive else { return }
        // A peer that does not read keeps its backlog in nghttp2 (whose
        // queue of acknowledgements is bounded) and in the calls' bounded
        // buffers, not in the channel; writability brings us back here.
        guard context.channel.isWritable else { return }
        var more = session.flush(to: context, limit: Self.writeChunk)
        // Resets go out only once everything before them is serialized:
        // nghttp2 drops a stream's queued HEADERS when it is reset.
        if !more && !streamsToReset.isEmpty {
            for streamID in streamsToReset { session.resetStream(streamID: streamID, errorCode: NGHTTP2_NO_ERROR.rawValue) }
            streamsToReset.removeAll()
            more = session.flush(to: context, limit: Self.writeChunk)
        }
        if closeAfterFlush {
            context.close(promise: nil)
            return
        }
        if !session.wantsRead {
            if !calls.isEmpty {
                // nghttp2 ended the session (a fatal GOAWAY is out): no call
                // can finish, so none may hold the connection open.
                perform(machine.protocolFailed())
                return
            }
            // GOAWAY exchanged, nothing in flight: done.
            if !session.wantsWrite {
                context.close(promise: nil)
                return
            }
        }
        if more { flushSoon() }
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
        machine.responseHeadersSent()
        do {
            try session.submitResponse(streamID: streamID, headers: headers, hasBody: hasBody)
        } catch {
            logger.debug("cannot submit response", metadata: ["stream": "\(streamID)", "error": "\(error)"])
            session.resetStream(streamID: streamID, errorCode: NGHTTP2_INTERNAL_ERROR.rawValue)
            return
        }
    }

    /// Resets the stream (NO_ERROR) once what is queued for it is written.
    func resetOnceWritten(streamID: Int32) { streamsToReset.append(streamID) }

    func resumeData(streamID: Int32) { session.resumeData(streamID: streamID) }
    func consume(streamID: Int32, count: Int) { session.consume(streamID: streamID, count: count) }
    func consumeConnection(count: Int) { session.consumeConnection(count: count) }

    /// A call's held request bytes changed (event loop).
    func bufferedBytesChanged(by delta: Int) {
        bufferedBytes += delta
        shared.receiveBudget.add(delta)
    }

    // MARK: Lifecycle

    /// GOAWAY, then close once the calls in flight are done.
    func beginGracefulShutdown() {
        guard session != nil else { return }
        perform(machine.beginGracefulShutdown(now: .now()))
    }

    /// Cancels every call still running (end of the shutdown grace period).
    func cancelAllCalls() {
        failAllCalls(RPCStatus(.unavailable, "server is shutting down"))
        flush()
        context?.close(promise: nil)
    }

    private func failAllCalls(_ status: RPCStatus) {
        for call in calls.values {
            call.finish(status: status, context: nil)
            call.task?.cancel()
        }
    }

    /// Carries out what the state machine decided.
    private func perform(_ action: ServerConnectionStateMachine.Action) {
        switch action {
        case .none:
            break
        case .sendPing:
            session.submitPing()
            flush()
        case .goAway(let debug):
            session.submitGoAway(errorCode: ServerConnectionStateMachine.ErrorCode.noError, message: debug)
            closeAfterFlush = calls.isEmpty
            flush()
        case .abort(_, .drained, _):
            // The last call of a draining connection ended: close once the
            // frames ending it are written (this may run while they are
            // being serialized).
            closeAfterFlush = true
            flushSoon()
        case .abort(let code, let reason, let debug):
            if reason != .drainTimeout { shared.limitMetrics.hit(reason) }
            logger.debug("closing connection", metadata: ["peer": "\(peer)", "reason": "\(reason.rawValue)", "detail": "\(debug)"])
            if reason != .protocolError { session.submitGoAway(errorCode: code, message: debug) }
            failAllCalls(RPCStatus(.unavailable, debug.isEmpty ? "connection closed" : "connection closed: \(debug)"))
            closeAfterFlush = true
            flush()
            // Not writable: the GOAWAY cannot go out; close anyway.
            context?.close(promise: nil)
        case .pauseReads:
            _ = try? context?.channel.syncOptions?.setOption(.autoRead, value: false)
        case .resumeReads:
            _ = try? context?.channel.syncOptions?.setOption(.autoRead, value: true)
            context?.read()
        }
    }

    /// Makes sure one timer fires by the machine's next deadline. A timer
    /// already due sooner stays: it looks again when it fires.
    private func rearmTimer() {
        guard let context, let deadline = machine.nextDeadline(hasOpenCalls: !calls.isEmpty) else { return }
        if let armed = timerDeadline, armed <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            timer = nil
            timerDeadline = nil
            perform(machine.tick(now: .now(), hasOpenCalls: !calls.isEmpty))
            rearmTimer()
        }
    }

    // MARK: HTTP2SessionDelegate

    private func call(_ streamID: Int32) -> ServerCall? {
        if let recentCall, recentCall.streamID == streamID { return recentCall }
        let call = calls[streamID]
        if call != nil { recentCall = call }
        return call
    }

    func sessionBeginFrame(type: UInt8, flags: UInt8, streamID: Int32) -> Bool {
        // A request's single HEADERS frame, the usual case, needs no clock.
        if type == ServerConnectionStateMachine.Frame.headers, flags & ServerConnectionStateMachine.Frame.endHeadersFlag != 0,
           !machine.isInHeaderBlock, !machine.isAwaitingPreface {
            return true
        }
        let action = machine.frameBegan(type: type, flags: flags, now: NIODeadline.now())
        guard case .abort = action else { return true }
        pendingAbort = action
        return false
    }

    func sessionBeginHeaders(streamID: Int32) {
        guard call(streamID) == nil else { return }  // trailers of a request
        let call = ServerCall(
            streamID: streamID, connection: self, eventLoop: context.eventLoop,
            maxMessageSize: shared.configuration.maxReceiveMessageSize)
        if calls.isEmpty { machine.callsBecameBusy() }
        calls[streamID] = call
        recentCall = call
    }

    func sessionHeader(streamID: Int32, field: HTTP2HeaderField) -> Bool {
        guard let call = call(streamID), call.method == nil, !call.isFinished else { return true }
        // Counted before anything is kept: a header block that decodes to
        // more than the limits keeps nothing more. A little over, the call
        // gets RESOURCE_EXHAUSTED when the block ends; far over (an HPACK
        // bomb), the stream is reset and nghttp2 skips the rest of the
        // block without validating or reporting each field.
        call.headerListSize += field.name.count + field.value.count + 32
        call.headerCount += 1
        let maxSize = Int(shared.configuration.maxHeaderListSize), maxCount = shared.configuration.maxHeaderCount
        if call.brokenHeaderLimit != nil {
            if call.headerListSize > 2 * maxSize || call.headerCount > 2 * maxCount {
                shared.limitMetrics.hit(call.brokenHeaderLimit!)
                return false
            }
            return true
        }
        if call.headerListSize > maxSize {
            call.brokenHeaderLimit = .headerListSize
            call.headers = ServerCall.RequestHeaders()
            return true
        }
        if call.headerCount > maxCount {
            call.brokenHeaderLimit = .headerCount
            call.headers = ServerCall.RequestHeaders()
            return true
        }
        // Names compared as bytes; strings made only of what the call keeps.
        if field.nameIs(":path") {
            call.path = field.valueString(reusing: lastRoute?.path ?? "")
        } else if field.nameIs(":method") {
            call.headers.method = field.valueString
        } else if field.nameIs("content-type") {
            call.headers.contentType = field.valueString(reusing: "application/grpc")
        } else if field.nameIs("te") || field.nameIs(":scheme") || field.nameIs(":authority") || field.nameIs("user-agent")
                    || field.nameIs("grpc-accept-encoding") {
            return true  // reserved, and nothing the server uses
        } else if field.nameIs("grpc-timeout") {
            call.headers.timeout = field.valueString
        } else if field.nameIs("grpc-encoding") {
            call.headers.encoding = field.valueString
        } else {
            let name = field.nameString
            if !Metadata.isReserved(name) { call.headers.metadata.addFromWire(name: name, value: field.valueString) }
        }
        return true
    }

    func sessionHeadersComplete(streamID: Int32, endStream: Bool) {
        guard let call = call(streamID) else { return }
        call.headersReceived(endStream: endStream)
        if call.method == nil && !call.isFinished {
            if let broken = call.brokenHeaderLimit {
                shared.limitMetrics.hit(broken)
                let limit = broken == .headerCount
                    ? "\(shared.configuration.maxHeaderCount) header fields"
                    : "\(shared.configuration.maxHeaderListSize) bytes"
                call.sendTrailersOnly(status: RPCStatus(.resourceExhausted, "request metadata exceeds the limit of \(limit)"))
            } else {
                startCall(call)
            }
        }
        if endStream { requestEnded(call) }
    }

    func sessionData(streamID: Int32, bytes: UnsafeRawBufferPointer) {
        guard let call = call(streamID) else {
            session.consumeConnection(count: bytes.count)
            return
        }
        if call.isFinished {
            // Answered already: the connection's window comes back, the
            // stream's does not (it is being reset).
            session.consumeConnection(count: bytes.count)
            return
        }
        if let failure = call.receive(bytes) {
            fail(call, failure)
            return
        }
        if bufferedBytes > shared.maxBufferedBytesPerConnection {
            shared.limitMetrics.hit(.connectionReceiveBuffer)
            fail(call, RPCStatus(.resourceExhausted,
                                 "the connection holds more than \(shared.maxBufferedBytesPerConnection) bytes of unfinished requests"))
        } else if shared.receiveBudget.isOver(connectionBytes: bufferedBytes) {
            shared.limitMetrics.hit(.serverReceiveBuffer)
            fail(call, RPCStatus(.resourceExhausted, "the server holds too many unfinished requests; retry later",
                                 details: StatusDetails.retryInfo(delayMilliseconds: 100, reason: "OVERLOADED")))
        }
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
            perform(machine.callsBecameIdle(now: .now()))
            rearmTimer()
        }
    }

    func sessionGoAway(lastStreamID: Int32, errorCode: UInt32) {}

    func sessionReadData(streamID: Int32, into buffer: UnsafeMutableRawBufferPointer) -> DataReadResult {
        guard let call = call(streamID) else { return .bytes(count: 0, endOfData: true, trailers: nil) }
        let result = call.readOutbound(into: buffer)
        if case .bytes(let count, let endOfData, _) = result {
            if count > 0 { machine.responseDataSent() }
            if endOfData && !call.hasRequestEnded { streamsToReset.append(streamID) }
        }
        return result
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
            if !call.hasRequestEnded { resetOnceWritten(streamID: call.streamID) }
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
        guard machine.acceptsCalls else {
            call.sendTrailersOnly(status: RPCStatus(.unavailable, "server is shutting down"))
            return
        }
        // Health and reflection are never refused for the application's load.
        if !method.bypassesAdmission {
            guard shared.limiter.tryAcquire(heldByConnection: permitsHeld, connections: shared.connectionLimiter.count) else {
                shared.limitMetrics.hit(.inFlightCalls)
                call.sendTrailersOnly(status: RPCStatus(
                    .unavailable, "server is at its limit of \(shared.limiter.limit) calls in flight; retry later",
                    details: StatusDetails.retryInfo(delayMilliseconds: 50, reason: "OVERLOADED")))
                return
            }
            call.holdsPermit = true
            permitsHeld += 1
        }
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
            permitsHeld -= 1
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
