import CNGHTTP2
@testable import MeridianRPC
import Testing

/// The client call's state machine, transition by transition.
@Suite struct ClientCallStateMachineTests {
    typealias Machine = ClientCallStateMachine

    @Test func headersThenMessagesThenTrailers() {
        var call = Machine()
        #expect(call.finishSending() == true)
        #expect(call.finishSending() == false)  // END_STREAM is scheduled once
        #expect(call.headerBlockComplete(hasStatus: false, endStream: false) == .deliverHeaders)
        #expect(call.headersDelivered)
        #expect(call.headerBlockComplete(hasStatus: true, endStream: true) == .trailers)
        #expect(call.remoteEnded(httpStatus: 200, grpcStatus: .ok, partialMessage: false) == .complete(.ok))
        #expect(call.streamClosed(errorCode: NGHTTP2_NO_ERROR.rawValue, hasStatus: true) == .none)
    }

    @Test func aTrailersOnlyResponseHasNoHeaders() {
        var call = Machine()
        #expect(call.headerBlockComplete(hasStatus: true, endStream: true) == .trailersOnly)
        #expect(!call.headersDelivered)
        let status = RPCStatus(.notFound, "no such product")
        #expect(call.remoteEnded(httpStatus: 200, grpcStatus: status, partialMessage: false) == .complete(status))
    }

    @Test func anEndWithoutStatusIsInternalOrMappedFromHTTP() {
        var plain = Machine()
        _ = plain.headerBlockComplete(hasStatus: false, endStream: true)
        #expect(plain.remoteEnded(httpStatus: 200, grpcStatus: nil, partialMessage: false)
            == .complete(RPCStatus(.internal, "server ended the stream without grpc-status")))
        var proxy = Machine()
        #expect(proxy.remoteEnded(httpStatus: 503, grpcStatus: nil, partialMessage: false)
            == .complete(RPCStatus(.unavailable, "HTTP status 503 without grpc-status")))
    }

    @Test func anOKStatusAfterACutMessageIsInternal() {
        var call = Machine()
        _ = call.headerBlockComplete(hasStatus: false, endStream: false)
        #expect(call.remoteEnded(httpStatus: 200, grpcStatus: .ok, partialMessage: true)
            == .complete(RPCStatus(.internal, "response ended inside a length-prefixed message")))
    }

    @Test func aResetAfterTheStatusEndsFromTheFields() {
        // A server that answered early resets with NO_ERROR after its trailers.
        var call = Machine()
        _ = call.headerBlockComplete(hasStatus: true, endStream: false)
        #expect(call.streamClosed(errorCode: NGHTTP2_NO_ERROR.rawValue, hasStatus: true) == .endFromFields)
    }

    @Test func resetsMapToStatuses() {
        func closed(_ code: nghttp2_error_code) -> RPCStatus.Code? {
            var call = Machine()
            if case .complete(.complete(let status)) = call.streamClosed(errorCode: code.rawValue, hasStatus: false) { return status.code }
            return nil
        }
        #expect(closed(NGHTTP2_REFUSED_STREAM) == .unavailable)
        #expect(closed(NGHTTP2_CANCEL) == .cancelled)
        #expect(closed(NGHTTP2_ENHANCE_YOUR_CALM) == .resourceExhausted)
        #expect(closed(NGHTTP2_NO_ERROR) == .internal)  // no status at all
        #expect(closed(NGHTTP2_PROTOCOL_ERROR) == .internal)
    }

    @Test func theFirstStatusWinsOverLateEvents() {
        var call = Machine()
        #expect(call.complete(RPCStatus(.cancelled, "call cancelled by the client")) != .none)
        #expect(call.complete(RPCStatus(.deadlineExceeded, "deadline exceeded")) == .none)
        #expect(call.remoteEnded(httpStatus: 200, grpcStatus: .ok, partialMessage: false) == .none)
        #expect(call.streamClosed(errorCode: NGHTTP2_CANCEL.rawValue, hasStatus: false) == .none)
        #expect(call.finalStatus?.code == .cancelled)
        #expect(!call.acceptsMessages)
    }

    @Test func responseHeadersAreBoundedBeforeTheyAreKept() {
        var call = Machine()
        #expect(call.headerField(size: 100, limit: 200) == true)
        #expect(call.headerField(size: 100, limit: 200) == false)  // 132 + 132 > 200
    }
}
