import CNGHTTP2

/// The life of one client call as a value: the request half (what we
/// send), the response half (what the server sent), and the one final
/// status. `ClientCall` owns one, on its connection's event loop, and keeps
/// the buffers and waiters; this decides what each event means.
struct ClientCallStateMachine: Equatable {
    enum Request: Equatable {
        /// Messages may still be queued.
        case open
        /// Half-closed: END_STREAM goes out after what is queued.
        case ended
    }

    enum Response: Equatable {
        /// No header block complete yet.
        case awaitingHeaders
        /// Headers done; messages may arrive, then trailers.
        case receivingMessages
        /// The server's END_STREAM (or a reset) arrived.
        case ended
    }

    private(set) var request = Request.open
    private(set) var response = Response.awaitingHeaders
    /// Set once, with the call's outcome: the first status wins.
    private(set) var finalStatus: RPCStatus?

    /// Whether response headers (not a trailers-only block) arrived.
    private(set) var headersDelivered = false
    /// Response header bytes so far, counted as HTTP/2 counts a header list.
    private(set) var headerListSize = 0

    // MARK: Request

    /// Whether finishing changed anything (END_STREAM must be scheduled).
    mutating func finishSending() -> Bool {
        guard request == .open else { return false }
        request = .ended
        return true
    }

    /// Whether a message may still be sent; if not, the caller gets the final status.
    var acceptsMessages: Bool { finalStatus == nil && request == .open }

    // MARK: Response

    /// Counts one response header field; false once the block is over
    /// `limit` bytes (the call then fails rather than keep more).
    mutating func headerField(size: Int, limit: Int) -> Bool {
        headerListSize += size + 32
        return headerListSize <= limit
    }

    enum HeadersAction: Equatable {
        /// The response headers: wake whoever waits for them.
        case deliverHeaders
        /// One block with the status (trailers-only): its fields are trailers.
        case trailersOnly
        /// The trailers after the messages.
        case trailers
    }

    /// A header block from the server is complete.
    mutating func headerBlockComplete(hasStatus: Bool, endStream: Bool) -> HeadersAction {
        switch response {
        case .awaitingHeaders:
            if hasStatus || endStream {
                response = endStream ? .ended : .receivingMessages
                return .trailersOnly
            }
            response = .receivingMessages
            headersDelivered = true
            return .deliverHeaders
        case .receivingMessages, .ended:
            if endStream { response = .ended }
            return .trailers
        }
    }

    enum EndAction: Equatable {
        /// Complete the call with this status.
        case complete(RPCStatus)
        case none
    }

    /// The server's END_STREAM arrived: the status is what its fields say.
    /// `httpStatus`/`grpcStatus` as received; `partialMessage`: a message
    /// was cut off by the end of the stream.
    mutating func remoteEnded(httpStatus: Int?, grpcStatus: RPCStatus?, partialMessage: Bool) -> EndAction {
        response = .ended
        guard finalStatus == nil else { return .none }
        let status: RPCStatus
        if let grpcStatus {
            status = grpcStatus
        } else if let httpStatus, httpStatus != 200 {
            status = Self.statusFromHTTP(httpStatus)
        } else {
            status = RPCStatus(.internal, "server ended the stream without grpc-status")
        }
        if partialMessage && status.code == .ok {
            return complete(RPCStatus(.internal, "response ended inside a length-prefixed message"))
        }
        return complete(status)
    }

    /// The stream closed, normally after `remoteEnded`, or by a reset.
    /// `hasStatus`: a grpc-status arrived (a reset NO_ERROR after it is how
    /// servers stop a request they answered early).
    mutating func streamClosed(errorCode: UInt32, hasStatus: Bool) -> StreamCloseAction {
        guard finalStatus == nil else { return .none }
        switch errorCode {
        case NGHTTP2_REFUSED_STREAM.rawValue:
            return .complete(complete(RPCStatus(.unavailable, "stream refused by the server before processing")))
        case NGHTTP2_CANCEL.rawValue:
            return .complete(complete(RPCStatus(.cancelled, "stream cancelled by the server")))
        case NGHTTP2_ENHANCE_YOUR_CALM.rawValue:
            return .complete(complete(RPCStatus(.resourceExhausted, "server asked to slow down (ENHANCE_YOUR_CALM)")))
        case NGHTTP2_NO_ERROR.rawValue where hasStatus:
            return .endFromFields
        default:
            return .complete(complete(RPCStatus(.internal, "stream closed with HTTP/2 error \(errorCode)")))
        }
    }

    enum StreamCloseAction: Equatable {
        case complete(EndAction)
        /// Finish as if END_STREAM had come, from the fields received.
        case endFromFields
        case none
    }

    /// Ends the call locally (cancelled, deadline, connection lost, a
    /// limit broken); returns what to do, `.none` when it had ended already.
    mutating func complete(_ status: RPCStatus) -> EndAction {
        guard finalStatus == nil else { return .none }
        finalStatus = status
        return .complete(status)
    }

    /// gRPC's mapping of HTTP statuses when no grpc-status came.
    static func statusFromHTTP(_ code: Int) -> RPCStatus {
        let mapped: RPCStatus.Code = switch code {
        case 400: .internal
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .unimplemented
        case 429, 502, 503, 504: .unavailable
        default: .unknown
        }
        return RPCStatus(mapped, "HTTP status \(code) without grpc-status")
    }
}
