import CNGHTTP2
import Logging
import NIOCore

/// One HTTP/2 connection on the client: nghttp2 in client mode, many calls
/// multiplexed over it. Lives on the channel's event loop.
final class ClientConnectionHandler: ChannelInboundHandler, HTTP2SessionDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var session: HTTP2Session!
    private var context: ChannelHandlerContext?
    private var calls: [Int32: ClientCall] = [:]
    private var isReading = false
    private var flushScheduled = false
    private let settings: HTTP2Session.Settings
    private let authority: String
    /// Set once the server sent GOAWAY: no new calls go on this connection.
    private(set) var isDraining = false
    private let onClose: @Sendable () -> Void

    init(authority: String, settings: HTTP2Session.Settings, onClose: @escaping @Sendable () -> Void) {
        self.authority = authority
        self.settings = settings
        self.onClose = onClose
    }

    var activeCalls: Int { calls.count }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        do {
            session = try HTTP2Session(role: .client, settings: settings, delegate: self)
        } catch {
            context.close(promise: nil)
        }
    }

    /// The context holds this handler: keeping it past removal would keep
    /// both (and the nghttp2 session) alive for ever.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        flush()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        isReading = true
        do {
            try session.receive(unwrapInboundIn(data))
        } catch {
            isReading = false
            failAll(RPCStatus(.unavailable, "HTTP/2 protocol error from server: \(error)"))
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
        isDraining = true
        failAll(RPCStatus(.unavailable, "connection to \(authority) closed"))
        onClose()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(RPCStatus(.unavailable, "connection to \(authority) failed: \(error)"))
        context.close(promise: nil)
    }

    private func failAll(_ status: RPCStatus) {
        let pending = calls
        calls.removeAll()
        for call in pending.values { call.connectionFailed(status) }
    }

    // MARK: Calls

    /// Starts `call`: request headers, then whatever it has queued.
    func start(_ call: ClientCall, headers: [(String, String)]) {
        guard !isDraining, let session else {
            call.connectionFailed(RPCStatus(.unavailable, "connection to \(authority) is closing"))
            return
        }
        do {
            let streamID = try session.submitRequest(headers: headers)
            call.attach(to: self, streamID: streamID)
            calls[streamID] = call
        } catch {
            call.connectionFailed(RPCStatus(.unavailable, "cannot start a stream to \(authority): \(error)"))
            return
        }
        flushSoon()
    }

    func flush() {
        guard !isReading, let context, let session else { return }
        session.flush(to: context)
    }

    /// Writes once the event loop has run the work already due: a unary
    /// call's headers, message and end of stream, and calls started
    /// together, leave in one socket write rather than one each.
    func flushSoon() {
        guard !flushScheduled, let context else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute { [self] in
            flushScheduled = false
            flush()
        }
    }

    func resumeData(streamID: Int32) { if streamID > 0 { session.resumeData(streamID: streamID) } }
    func consume(streamID: Int32, count: Int) { session.consume(streamID: streamID, count: count) }
    func consumeConnection(count: Int) { session.consumeConnection(count: count) }
    func resetStream(streamID: Int32, errorCode: UInt32) { session.resetStream(streamID: streamID, errorCode: errorCode) }

    func close() {
        isDraining = true
        session?.submitGoAway(errorCode: NGHTTP2_NO_ERROR.rawValue)
        flush()
        context?.close(promise: nil)
    }

    // MARK: HTTP2SessionDelegate

    func sessionBeginHeaders(streamID: Int32) {}

    func sessionHeader(streamID: Int32, field: HTTP2HeaderField) -> Bool {
        guard let call = calls[streamID] else { return true }
        guard call.acceptsHeaderField(size: field.name.count + field.value.count, limit: Int(settings.maxHeaderListSize)) else {
            return false
        }
        call.header(name: field.nameString, value: field.valueString)
        return true
    }

    func sessionHeadersComplete(streamID: Int32, endStream: Bool) {
        calls[streamID]?.headersComplete(endStream: endStream)
    }

    func sessionData(streamID: Int32, bytes: UnsafeRawBufferPointer) {
        if let call = calls[streamID] {
            call.data(bytes)
        } else {
            session.consumeConnection(count: bytes.count)
        }
    }

    func sessionDataComplete(streamID: Int32, endStream: Bool) {
        if endStream { calls[streamID]?.remoteEnded() }
    }

    func sessionStreamClosed(streamID: Int32, errorCode: UInt32) {
        calls.removeValue(forKey: streamID)?.streamClosed(errorCode: errorCode)
    }

    func sessionGoAway(lastStreamID: Int32, errorCode: UInt32) {
        isDraining = true
        onClose()
    }

    func sessionReadData(streamID: Int32, into buffer: UnsafeMutableRawBufferPointer) -> DataReadResult {
        calls[streamID]?.readOutbound(into: buffer) ?? .bytes(count: 0, endOfData: true, trailers: nil)
    }
}
