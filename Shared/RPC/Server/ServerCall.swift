import Logging
import NIOCore
import Synchronization

/// One RPC on a server connection: the bridge between the connection's event
/// loop (where nghttp2 lives) and the handler's task.
///
/// Every stored property is confined to `eventLoop`; the methods the handler
/// calls hop there first (or run inline when already on it). That is what the
/// `@unchecked Sendable` promises.
final class ServerCall: @unchecked Sendable {
    let streamID: Int32
    let eventLoop: any EventLoop
    private unowned(unsafe) let connection: ServerConnectionHandler

    // Request side.
    var path = ""
    var headers = RequestHeaders()
    var method: RPCServiceMethod?
    var context: ServerContext?
    private var deframer: MessageDeframer
    private var inbound = CircularBuffer<ByteBuffer>()
    private var inboundBytes = 0
    /// Request bytes held (partial and queued messages) as the connection
    /// last counted them.
    private var accountedBytes = 0
    /// Request header fields seen, counted as HTTP/2 counts a header list.
    var headerListSize = 0
    var headerCount = 0
    /// The header limit the request broke; its headers are no longer kept.
    var brokenHeaderLimit: LimitKind?
    /// DATA bytes received but not yet given back to the flow-control window.
    private var unconsumedBytes = 0
    private var readerWaiter: CheckedContinuation<ByteBuffer?, any Error>?

    /// How far the request and the response have got.
    private(set) var lifecycle = ServerCallStateMachine()

    // Response side.
    private var pendingOutbound = ByteBuffer()
    private var pendingTrailers: [(String, String)]?
    private var writerWaiter: CheckedContinuation<Void, any Error>?
    /// Messages written by the handler that the event loop has not taken
    /// yet; the one piece of state shared across threads, under its lock.
    private let staged = Mutex(StagedWrites())

    struct StagedWrites {
        var frames = ByteBuffer()
        var drainScheduled = false
        /// Bytes in the stream still waiting for the peer, as of the last drain or send.
        var inStream = 0
        var refused = false
    }

    // Lifetime.
    var task: Task<Void, Never>?
    var deadlineTimer: Scheduled<Void>?
    var holdsPermit = false

    struct RequestHeaders {
        var method = ""
        var contentType = ""
        var timeout: String?
        var encoding: String?
        var metadata = Metadata()
    }

    static let writeHighWatermark = 256 << 10
    static let writeLowWatermark = 64 << 10

    init(streamID: Int32, connection: ServerConnectionHandler, eventLoop: any EventLoop, maxMessageSize: Int) {
        self.streamID = streamID
        self.connection = connection
        self.eventLoop = eventLoop
        self.deframer = MessageDeframer(maxMessageSize: maxMessageSize)
    }

    var isFinished: Bool { lifecycle.isFinished }
    var hasRequestEnded: Bool { lifecycle.hasRequestEnded }
    private var isClosed: Bool { lifecycle.isClosed }

    /// The connection answered in plain HTTP; nothing more may be sent.
    func markAnswered() { lifecycle.answeredOutsideGRPC() }

    // MARK: Inbound (event loop)

    /// Takes DATA bytes. Returns a status to fail the call with, if the bytes
    /// break the protocol.
    func receive(_ bytes: UnsafeRawBufferPointer) -> RPCStatus? {
        unconsumedBytes += bytes.count
        deframer.append(bytes)
        do {
            while let message = try deframer.next() {
                if let method, !method.kind.requestStreams, inbound.count >= 1 {
                    return RPCStatus(.internal, "more than one request message for a unary-request method")
                }
                inbound.append(message)
                inboundBytes += message.readableBytes
            }
        } catch .tooLarge(let size) {
            return RPCStatus(.resourceExhausted, "request message of \(size) bytes exceeds the limit of \(deframer.maxMessageSize) bytes")
        } catch {
            return RPCStatus(.internal, "compressed message received without grpc-encoding")
        }
        // Give the window back while the handler has nothing to read, so a
        // message larger than the window can still arrive in full. Once a
        // whole message waits unread, the window stays shut: backpressure.
        if inbound.isEmpty || method.map({ !$0.kind.requestStreams }) ?? true {
            giveBackWindow()
        }
        deliverToReader()
        updateAccounting()
        return nil
    }

    /// Tells the connection how many request bytes this call holds now.
    private func updateAccounting() {
        let held = deframer.bufferedBytes + inboundBytes
        guard held != accountedBytes else { return }
        connection.bufferedBytesChanged(by: held - accountedBytes)
        accountedBytes = held
    }

    /// The request's header block is complete.
    func headersReceived(endStream: Bool) { lifecycle.headersReceived(endStream: endStream) }

    func endOfRequest() -> RPCStatus? {
        lifecycle.requestEnded()
        if deframer.hasPartialMessage {
            return RPCStatus(.internal, "request ended inside a length-prefixed message")
        }
        deliverToReader()
        return nil
    }

    private func giveBackWindow() {
        connection.consume(streamID: streamID, count: unconsumedBytes)
        unconsumedBytes = 0
        // Sent even when the handler caught up between reads: a client
        // waiting for window would otherwise wait forever.
        connection.flushSoon()
    }

    private func deliverToReader() {
        guard let waiter = readerWaiter else { return }
        if let message = inbound.popFirst() {
            readerWaiter = nil
            inboundBytes -= message.readableBytes
            updateAccounting()
            if inbound.isEmpty { giveBackWindow() }
            waiter.resume(returning: message)
        } else if lifecycle.hasRequestEnded {
            readerWaiter = nil
            waiter.resume(returning: nil)
        }
    }

    // MARK: Handler API (any thread)

    /// The single request of a unary-request method; the handler only starts
    /// once the request has ended, so it is here or missing.
    func takeUnaryRequest() throws(RPCError) -> ByteBuffer {
        // Safe without a hop: the handler task starts after the request has
        // ended and nothing touches `inbound` afterwards.
        guard let message = inbound.first else {
            throw RPCError(.internal, "request ended without a message for a unary-request method")
        }
        return message
    }

    func nextRequest() async throws -> ByteBuffer? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ByteBuffer?, any Error>) in
                onLoop {
                    if Task.isCancelled || self.isClosed && self.inbound.isEmpty && !self.hasRequestEnded {
                        continuation.resume(throwing: CancellationError())
                        return
                    }
                    self.readerWaiter = continuation
                    self.deliverToReader()
                }
            }
        } onCancel: {
            onLoop {
                if let waiter = self.readerWaiter {
                    self.readerWaiter = nil
                    waiter.resume(throwing: CancellationError())
                }
            }
        }
    }

    /// Queues one response message. The handler's thread stages it and
    /// goes on; one event-loop task moves everything staged so far into the
    /// stream, so a streaming handler costs no thread hop per message. It
    /// suspends only while a quarter MiB or more waits for the peer.
    func write(_ payload: ByteBuffer, context: ServerContext) async throws {
        try Task.checkCancellation()
        let (scheduleDrain, backlog, refused) = staged.withLock { staged -> (Bool, Int, Bool) in
            guard !staged.refused else { return (false, 0, true) }
            WireFormat.writeFrame(payload, into: &staged.frames)
            let schedule = !staged.drainScheduled
            staged.drainScheduled = true
            return (schedule, staged.frames.readableBytes + staged.inStream, false)
        }
        if refused { throw CancellationError() }
        if scheduleDrain { eventLoop.execute { self.drainStaged() } }
        if backlog >= Self.writeHighWatermark { try await waitForRoom() }
    }

    /// Until the peer has taken enough that less than the low watermark waits.
    private func waitForRoom() async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                onLoop {
                    guard self.lifecycle.acceptsWrites else {
                        continuation.resume(throwing: CancellationError())
                        return
                    }
                    self.drainStaged()
                    if self.pendingOutbound.readableBytes >= Self.writeLowWatermark {
                        self.writerWaiter = continuation
                    } else {
                        continuation.resume()
                    }
                }
            }
        } onCancel: {
            onLoop { self.failWriter(CancellationError()) }
        }
    }

    /// Moves staged messages into the stream (event loop). Runs before any
    /// status is queued, so messages always precede the trailers.
    private func drainStaged() {
        var frames = staged.withLock { staged -> ByteBuffer in
            staged.drainScheduled = false
            defer { staged.frames = ByteBuffer() }
            return staged.frames
        }
        guard frames.readableBytes > 0, lifecycle.acceptsWrites, let context else { return }
        startResponseIfNeeded(context: context)
        pendingOutbound.writeBuffer(&frames)
        noteStreamBacklog()
        connection.resumeData(streamID: streamID)
        connection.flushSoon()
    }

    /// Tells writers how much already waits in the stream.
    private func noteStreamBacklog() {
        let waiting = pendingOutbound.readableBytes
        staged.withLock { $0.inStream = waiting }
    }

    /// Once the response is finished or the stream gone, writes fail at once.
    private func refuseWrites() {
        staged.withLock { staged in
            staged.refused = true
            staged.frames = ByteBuffer()
        }
    }

    /// Sends the response headers now, before any message: a streaming
    /// handler tells its caller the stream is established.
    func sendHeaders(context: ServerContext) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            onLoop {
                guard self.lifecycle.acceptsWrites else {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                self.startResponseIfNeeded(context: context)
                self.connection.flush()
                continuation.resume()
            }
        }
    }

    /// Unary-response fast path: headers, the message and the status in one go.
    /// Sends the one response message, already framed (`WireFormat.frame`).
    func respondUnary(framed message: ByteBuffer, context: ServerContext) {
        onLoop {
            guard self.lifecycle.acceptsWrites else { return }
            self.drainStaged()
            self.startResponseIfNeeded(context: context)
            if self.pendingOutbound.readableBytes == 0 {
                self.pendingOutbound = message  // the usual case: sent from the message's own buffer
            } else {
                var message = message
                self.pendingOutbound.writeBuffer(&message)
            }
            self.queueTrailers(status: .ok, trailers: context.responseTrailers)
        }
    }

    /// Ends the call with `status`. Idempotent: the first status wins.
    func finish(status: RPCStatus, context: ServerContext?) {
        onLoop {
            guard self.lifecycle.acceptsWrites else { return }
            self.drainStaged()
            let trailers = context?.responseTrailers ?? Metadata()
            if self.lifecycle.response == .idle {
                self.sendTrailersOnly(status: status, metadata: trailers, headersMetadata: context?.responseHeaders)
            } else {
                self.queueTrailers(status: status, trailers: trailers)
            }
        }
    }

    // MARK: Response plumbing (event loop)

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }

    private func startResponseIfNeeded(context: ServerContext) {
        guard lifecycle.startResponse() == .sendHeaders else { return }
        var headers: [(String, String)] = [(":status", "200"), ("content-type", "application/grpc")]
        HeaderCoding.append(context.responseHeaders, to: &headers)
        connection.submitResponse(streamID: streamID, headers: headers, hasBody: true)
    }

    private func queueTrailers(status: RPCStatus, trailers: Metadata) {
        guard case .sendTrailers = lifecycle.finish() else { return }
        refuseWrites()
        var fields = HeaderCoding.statusFields(status)
        HeaderCoding.append(trailers, to: &fields)
        pendingTrailers = fields
        connection.resumeData(streamID: streamID)
        connection.flushSoon()
    }

    /// An error before anything was sent: one HEADERS frame with the status.
    func sendTrailersOnly(status: RPCStatus, metadata: Metadata = Metadata(), headersMetadata: Metadata? = nil) {
        guard lifecycle.response == .idle, case .sendTrailersOnly(let resetAfter) = lifecycle.finish() else { return }
        refuseWrites()
        var fields: [(String, String)] = [(":status", "200"), ("content-type", "application/grpc")]
        fields += HeaderCoding.statusFields(status)
        if let headersMetadata { HeaderCoding.append(headersMetadata, to: &fields) }
        HeaderCoding.append(metadata, to: &fields)
        connection.submitResponse(streamID: streamID, headers: fields, hasBody: false)
        // Answered with the request still coming: the client stops sending it.
        if resetAfter { connection.resetOnceWritten(streamID: streamID) }
        connection.flushSoon()
    }

    /// nghttp2 asks for the next DATA frame's bytes.
    func readOutbound(into target: UnsafeMutableRawBufferPointer) -> DataReadResult {
        let count = pendingOutbound.drain(into: target)
        if count > 0 {
            noteStreamBacklog()
            if pendingOutbound.readableBytes < Self.writeLowWatermark, let waiter = writerWaiter {
                writerWaiter = nil
                waiter.resume()
            }
        }
        let drained = pendingOutbound.readableBytes == 0
        if drained, let trailers = pendingTrailers {
            pendingTrailers = nil
            return .bytes(count: count, endOfData: true, trailers: trailers)
        }
        return count > 0 ? .bytes(count: count, endOfData: false, trailers: nil) : .deferred
    }

    /// The stream is gone (completed, reset by the client, or the connection
    /// closed): stop the handler and release everything.
    func closed() {
        let action = lifecycle.streamClosed()
        refuseWrites()
        deadlineTimer?.cancel()
        deadlineTimer = nil
        // The caller left before we answered: the handler must not go on.
        if action == .cancelHandler { task?.cancel() }
        if let waiter = readerWaiter {
            readerWaiter = nil
            waiter.resume(throwing: CancellationError())
        }
        failWriter(CancellationError())
        connection.consumeConnection(count: unconsumedBytes)
        unconsumedBytes = 0
        if accountedBytes != 0 {
            connection.bufferedBytesChanged(by: -accountedBytes)
            accountedBytes = 0
        }
        context = nil
    }

    private func failWriter(_ error: any Error) {
        if let waiter = writerWaiter {
            writerWaiter = nil
            waiter.resume(throwing: error)
        }
    }
}

/// How metadata and status become HTTP/2 header fields.
enum HeaderCoding {
    static func statusFields(_ status: RPCStatus) -> [(String, String)] {
        var fields = [("grpc-status", String(status.code.rawValue))]
        if !status.message.isEmpty {
            fields.append(("grpc-message", WireFormat.percentEncode(status.message)))
        }
        if let details = status.details {
            fields.append(("grpc-status-details-bin", Base64.encodeUnpadded(details)))
        }
        return fields
    }

    static func append(_ metadata: Metadata, to fields: inout [(String, String)]) {
        for (key, value) in metadata where !Metadata.isReserved(key) {
            switch value {
            case .string(let s): fields.append((key, s))
            case .binary(let d): fields.append((key, Base64.encodeUnpadded(d)))
            }
        }
    }
}
