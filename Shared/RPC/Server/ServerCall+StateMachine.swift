/// The life of one server call as a value: how far the request and the
/// response have got, and what each event means for the stream and the
/// handler. `ServerCall` owns one, on its connection's event loop.
///
/// The two halves move independently (a handler may answer before the
/// request ends, a client may reset after its request ended), which is
/// why the odd orders are transitions here and not special cases there.
struct ServerCallStateMachine: Equatable {
    enum Request: Equatable {
        /// The request's header block is still arriving.
        case receivingHeaders
        /// Headers done; messages may follow.
        case open
        /// END_STREAM received.
        case ended
    }

    enum Response: Equatable {
        /// Nothing sent.
        case idle
        /// Headers submitted; messages may follow.
        case streaming
        /// Status queued or sent (or a plain HTTP answer); nothing more may be written.
        case finished
    }

    private(set) var request = Request.receivingHeaders
    private(set) var response = Response.idle
    /// The stream is gone (completed, reset, or its connection closed).
    private(set) var isClosed = false

    /// Whether the handler may still write messages.
    var acceptsWrites: Bool { !isClosed && response != .finished }
    var isFinished: Bool { response == .finished }
    var hasRequestEnded: Bool { request == .ended }

    // MARK: Request

    mutating func headersReceived(endStream: Bool) {
        guard request == .receivingHeaders else { return }  // request trailers end it below
        request = endStream ? .ended : .open
    }

    /// END_STREAM arrived, on the headers or on a DATA frame.
    mutating func requestEnded() {
        request = .ended
    }

    // MARK: Response

    enum StartAction: Equatable {
        case sendHeaders
        case none
    }

    /// The handler is about to send headers or a message.
    mutating func startResponse() -> StartAction {
        guard response == .idle, !isClosed else { return .none }
        response = .streaming
        return .sendHeaders
    }

    enum FinishAction: Equatable {
        /// Nothing was sent: one HEADERS frame carries the status.
        case sendTrailersOnly(resetAfter: Bool)
        /// Queue the trailers after the messages.
        case sendTrailers(resetAfter: Bool)
        /// Already finished or closed: the first status won.
        case none
    }

    /// The call ends with a status. `resetAfter`: the request is still
    /// coming, so the stream is reset (NO_ERROR) once the status is out.
    mutating func finish() -> FinishAction {
        guard !isClosed, response != .finished else { return .none }
        let wasIdle = response == .idle
        response = .finished
        let resetAfter = request != .ended
        return wasIdle ? .sendTrailersOnly(resetAfter: resetAfter) : .sendTrailers(resetAfter: resetAfter)
    }

    /// The connection answered in plain HTTP (not a gRPC request).
    mutating func answeredOutsideGRPC() {
        response = .finished
    }

    // MARK: Stream

    enum CloseAction: Equatable {
        /// The caller left before the answer: stop the handler.
        case cancelHandler
        case none
    }

    mutating func streamClosed() -> CloseAction {
        guard !isClosed else { return .none }
        isClosed = true
        let answered = response == .finished
        response = .finished
        return answered ? .none : .cancelHandler
    }
}
