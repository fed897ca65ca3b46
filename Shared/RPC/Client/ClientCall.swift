import CNGHTTP2
import Foundation
import NIOCore

/// One RPC on a client connection, mirroring `ServerCall`: request bytes out,
/// response headers, messages and status in. Every stored property is
/// confined to `eventLoop`; public methods hop there.
final class ClientCall: @unchecked Sendable {
    let eventLoop: any EventLoop
    let path: String
    private(set) var streamID: Int32 = -1
    private var connection: ClientConnectionHandler?

    // Request side.
    private var pendingOutbound = ByteBuffer()
    /// How far the request and the response have got, and the final status.
    private var lifecycle = ClientCallStateMachine()
    private var writerWaiter: CheckedContinuation<Void, any Error>?

    // Response side.
    private var deframer: MessageDeframer
    private var inbound = CircularBuffer<ByteBuffer>()
    private var unconsumedBytes = 0
    private var readerWaiter: CheckedContinuation<ByteBuffer?, any Error>?
    private var completionWaiter: CheckedContinuation<Void, Never>?
    private var headersWaiters: [CheckedContinuation<Metadata, any Error>] = []
    private var httpStatus: Int?
    private(set) var responseHeaders = Metadata()
    private var trailerFields = Metadata()
    private var grpcStatus: Int?
    private var grpcMessage = ""
    private var grpcDetails: String?
    /// Set once the call is over, with its final status.
    var finalStatus: RPCStatus? { lifecycle.finalStatus }
    private(set) var trailers = Metadata()
    var deadlineTimer: Scheduled<Void>?

    static let writeHighWatermark = 256 << 10

    init(path: String, eventLoop: any EventLoop, maxMessageSize: Int) {
        self.path = path
        self.eventLoop = eventLoop
        self.deframer = MessageDeframer(maxMessageSize: maxMessageSize)
    }

    // MARK: Caller API (any thread)

    /// Queues a request message. Suspends while too much is unsent.
    func send(_ payload: ByteBuffer) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            onLoop {
                if let status = self.finalStatus {
                    continuation.resume(throwing: RPCError(status: status, trailers: self.trailers))
                    return
                }
                WireFormat.writeFrame(payload, into: &self.pendingOutbound)
                self.connection?.resumeData(streamID: self.streamID)
                if self.pendingOutbound.readableBytes >= Self.writeHighWatermark {
                    self.writerWaiter = continuation
                } else {
                    continuation.resume()
                }
                self.connection?.flushSoon()
            }
        }
    }

    /// Half-closes: no more request messages.
    func finishSending() {
        onLoop {
            guard self.lifecycle.finishSending() else { return }
            self.connection?.resumeData(streamID: self.streamID)
            self.connection?.flushSoon()
        }
    }

    /// The response headers (empty for a trailers-only response).
    func headers() async throws -> Metadata {
        try await withCheckedThrowingContinuation { continuation in
            onLoop {
                if self.lifecycle.headersDelivered {
                    continuation.resume(returning: self.responseHeaders)
                } else if let status = self.finalStatus {
                    continuation.resume(throwing: RPCError(status: status, trailers: self.trailers))
                } else {
                    self.headersWaiters.append(continuation)
                }
            }
        }
    }

    /// The next response message; nil once the call ended with OK. A non-OK
    /// status is thrown as `RPCError` after the messages before it.
    func next() async throws -> ByteBuffer? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ByteBuffer?, any Error>) in
                onLoop {
                    self.readerWaiter = continuation
                    self.deliverToReader()
                }
            }
        } onCancel: {
            self.cancel(RPCStatus(.cancelled, "call cancelled by the client"))
        }
    }

    /// Queues the request before the call starts (unary-request calls), so
    /// headers, message and END_STREAM leave together.
    func prepareSingleRequest(_ payload: ByteBuffer) {
        WireFormat.writeFrame(payload, into: &pendingOutbound)
        _ = lifecycle.finishSending()
    }

    /// Waits until the call is over, then returns its one response message
    /// (unary-response calls). Cancelling the task cancels the call.
    func unaryResponse() async throws -> UnaryResponse<ByteBuffer> {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                onLoop {
                    if self.finalStatus != nil { continuation.resume() } else { self.completionWaiter = continuation }
                }
            }
        } onCancel: {
            self.cancel(RPCStatus(.cancelled, "call cancelled by the client"))
        }
        // Safe to read without a hop: nothing changes after completion, and
        // resuming the continuation ordered these writes before us.
        let status = finalStatus!
        guard status.code == .ok else { throw RPCError(status: status, trailers: trailers) }
        guard inbound.count == 1, let message = inbound.first else {
            throw RPCError(.internal, "expected one response message for \(path), got \(inbound.count)", trailers: trailers)
        }
        return UnaryResponse(message: message, headers: responseHeaders, trailers: trailers)
    }

    /// Ends the call locally with `status` and resets the stream.
    func cancel(_ status: RPCStatus) {
        onLoop {
            guard self.finalStatus == nil else { return }
            // Complete first: sending the reset closes the stream, and that
            // must not be mistaken for the server cancelling.
            self.complete(with: status)
            if self.streamID > 0, let connection = self.connection {
                connection.resetStream(streamID: self.streamID, errorCode: NGHTTP2_CANCEL.rawValue)
                connection.flush()
            }
        }
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }

    // MARK: Connection side (event loop)

    func attach(to connection: ClientConnectionHandler, streamID: Int32) {
        self.connection = connection
        self.streamID = streamID
    }

    func readOutbound(into target: UnsafeMutableRawBufferPointer) -> DataReadResult {
        let count = pendingOutbound.drain(into: target)
        if count > 0 {
            if pendingOutbound.readableBytes < Self.writeHighWatermark / 4, let waiter = writerWaiter {
                writerWaiter = nil
                waiter.resume()
            }
        }
        if pendingOutbound.readableBytes == 0 && lifecycle.request == .ended {
            return .bytes(count: count, endOfData: true, trailers: nil)
        }
        return count > 0 ? .bytes(count: count, endOfData: false, trailers: nil) : .deferred
    }

    /// Counts a response header field against `limit` before anything of
    /// it is kept; over the limit the call fails with RESOURCE_EXHAUSTED.
    func acceptsHeaderField(size: Int, limit: Int) -> Bool {
        if lifecycle.headerField(size: size, limit: limit) { return true }
        cancel(RPCStatus(.resourceExhausted, "response metadata exceeds the limit of \(limit) bytes"))
        return false
    }

    func header(name: String, value: String) {
        let isTrailer = lifecycle.headersDelivered
        switch name {
        case ":status": httpStatus = Int(value)
        case "grpc-status": grpcStatus = Int(value)
        case "grpc-message": grpcMessage = WireFormat.percentDecode(value)
        case "grpc-status-details-bin": grpcDetails = value
        case "content-type": break
        default:
            guard !Metadata.isReserved(name) else { return }
            if isTrailer || grpcStatus != nil {
                trailerFields.addFromWire(name: name, value: value)
            } else {
                responseHeaders.addFromWire(name: name, value: value)
            }
        }
    }

    func headersComplete(endStream: Bool) {
        switch lifecycle.headerBlockComplete(hasStatus: grpcStatus != nil, endStream: endStream) {
        case .trailersOnly:
            // Everything was in this one block.
            trailerFields = mergeForTrailersOnly()
        case .deliverHeaders:
            let waiters = headersWaiters
            headersWaiters = []
            for waiter in waiters { waiter.resume(returning: responseHeaders) }
        case .trailers:
            break
        }
        if endStream { remoteEnded() }
    }

    private func mergeForTrailersOnly() -> Metadata {
        var merged = responseHeaders
        for (key, value) in trailerFields { merged.add(key, value: value) }
        responseHeaders = Metadata()
        return merged
    }

    func data(_ bytes: UnsafeRawBufferPointer) {
        unconsumedBytes += bytes.count
        deframer.append(bytes)
        do {
            while let message = try deframer.next() { inbound.append(message) }
        } catch .tooLarge(let size) {
            cancel(RPCStatus(.resourceExhausted, "response message of \(size) bytes exceeds the limit of \(deframer.maxMessageSize) bytes"))
            return
        } catch {
            cancel(RPCStatus(.internal, "compressed response message without grpc-encoding"))
            return
        }
        if inbound.isEmpty { giveBackWindow() }
        deliverToReader()
    }

    func remoteEnded() {
        var received: RPCStatus?
        if let grpcStatus {
            var details: Data?
            if let grpcDetails { details = Base64.decodeLenient(grpcDetails) }
            received = RPCStatus(.init(wireValue: grpcStatus), grpcMessage, details: details)
        }
        let action = lifecycle.remoteEnded(httpStatus: httpStatus, grpcStatus: received, partialMessage: deframer.hasPartialMessage)
        if case .complete(let status) = action { completed(with: status) }
    }

    /// The stream closed (normally after `remoteEnded`, or by a reset).
    func streamClosed(errorCode: UInt32) {
        switch lifecycle.streamClosed(errorCode: errorCode, hasStatus: grpcStatus != nil) {
        case .complete(.complete(let status)): completed(with: status)
        case .endFromFields: remoteEnded()
        case .complete(.none), .none: break
        }
        connection?.consumeConnection(count: unconsumedBytes)
        unconsumedBytes = 0
    }

    /// The connection failed before or during the call.
    func connectionFailed(_ status: RPCStatus) {
        complete(with: status)
    }

    private func complete(with status: RPCStatus) {
        if case .complete(let status) = lifecycle.complete(status) { completed(with: status) }
    }

    /// The call just got its final status: wake everyone waiting.
    private func completed(with status: RPCStatus) {
        trailers = trailerFields
        deadlineTimer?.cancel()
        deadlineTimer = nil
        let waiters = headersWaiters
        headersWaiters = []
        for waiter in waiters {
            if lifecycle.headersDelivered { waiter.resume(returning: responseHeaders) } else { waiter.resume(throwing: RPCError(status: status, trailers: trailers)) }
        }
        if let waiter = writerWaiter {
            writerWaiter = nil
            waiter.resume(throwing: RPCError(status: status, trailers: trailers))
        }
        if status.code != .ok { inbound.removeAll() }
        deliverToReader()
        if let waiter = completionWaiter {
            completionWaiter = nil
            waiter.resume()
        }
    }

    private func giveBackWindow() {
        guard unconsumedBytes > 0 else { return }
        connection?.consume(streamID: streamID, count: unconsumedBytes)
        unconsumedBytes = 0
        // The WINDOW_UPDATE must leave even when no read is in progress (the
        // reader caught up later): a sender waiting for window waits forever otherwise.
        connection?.flushSoon()
    }

    private func deliverToReader() {
        guard let waiter = readerWaiter else { return }
        if let message = inbound.popFirst() {
            readerWaiter = nil
            if inbound.isEmpty { giveBackWindow() }
            waiter.resume(returning: message)
        } else if let status = finalStatus {
            readerWaiter = nil
            if status.code == .ok {
                waiter.resume(returning: nil)
            } else {
                waiter.resume(throwing: RPCError(status: status, trailers: trailers))
            }
        }
    }
}
