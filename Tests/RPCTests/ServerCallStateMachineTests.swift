@testable import MeridianRPC
import Testing

/// The server call's state machine, transition by transition, including
/// the orders a hostile or hurried client produces.
@Suite struct ServerCallStateMachineTests {
    typealias Machine = ServerCallStateMachine

    @Test func aUnaryCallGoesHeadersThenMessageThenTrailers() {
        var call = Machine()
        call.headersReceived(endStream: false)
        #expect(call.request == .open)
        call.requestEnded()
        #expect(call.hasRequestEnded)
        #expect(call.startResponse() == .sendHeaders)
        #expect(call.startResponse() == .none)  // headers go once
        #expect(call.acceptsWrites)
        #expect(call.finish() == .sendTrailers(resetAfter: false))
        #expect(!call.acceptsWrites)
        #expect(call.streamClosed() == .none)
        #expect(call.isClosed)
    }

    @Test func aStatusBeforeAnyHeadersIsTrailersOnly() {
        var call = Machine()
        call.headersReceived(endStream: true)
        #expect(call.finish() == .sendTrailersOnly(resetAfter: false))
        #expect(call.startResponse() == .none)  // nothing may follow the status
    }

    @Test func theFirstStatusWins() {
        var call = Machine()
        call.headersReceived(endStream: true)
        _ = call.startResponse()
        #expect(call.finish() == .sendTrailers(resetAfter: false))
        #expect(call.finish() == .none)
    }

    @Test func answeringBeforeTheRequestEndsResetsTheStreamAfterwards() {
        var call = Machine()
        call.headersReceived(endStream: false)
        #expect(call.finish() == .sendTrailersOnly(resetAfter: true))

        var streaming = Machine()
        streaming.headersReceived(endStream: false)
        _ = streaming.startResponse()
        #expect(streaming.finish() == .sendTrailers(resetAfter: true))
    }

    @Test func aResetAfterTheRequestEndedCancelsAnUnansweredHandler() {
        var call = Machine()
        call.headersReceived(endStream: true)
        #expect(call.streamClosed() == .cancelHandler)
        #expect(!call.acceptsWrites)
        #expect(call.finish() == .none)  // the handler's late status goes nowhere
    }

    @Test func aResetWhileStreamingCancelsTheHandlerAndRefusesWrites() {
        var call = Machine()
        call.headersReceived(endStream: false)
        _ = call.startResponse()
        #expect(call.streamClosed() == .cancelHandler)
        #expect(!call.acceptsWrites)
        #expect(call.startResponse() == .none)
    }

    @Test func aCloseAfterTheStatusIsQueuedLeavesTheHandlerAlone() {
        // The deadline fired (status queued) and the connection then drained.
        var call = Machine()
        call.headersReceived(endStream: true)
        _ = call.startResponse()
        #expect(call.finish() == .sendTrailers(resetAfter: false))
        #expect(call.streamClosed() == .none)
        #expect(call.streamClosed() == .none)  // closes once
    }

    @Test func requestTrailersAfterHeadersDoNotReopenTheRequest() {
        var call = Machine()
        call.headersReceived(endStream: false)
        call.requestEnded()
        call.headersReceived(endStream: false)  // a second header block: the request's trailers
        #expect(call.request == .ended)
    }

    @Test func aPlainHTTPAnswerFinishesTheCall() {
        var call = Machine()
        call.headersReceived(endStream: false)
        call.answeredOutsideGRPC()
        #expect(call.isFinished)
        #expect(call.finish() == .none)
        #expect(call.streamClosed() == .none)
    }
}
