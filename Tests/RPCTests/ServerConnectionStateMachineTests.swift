@testable import MeridianRPC
import NIOCore
import Testing

/// The server connection's state machine, transition by transition, on a
/// clock the tests move by hand.
@Suite struct ServerConnectionStateMachineTests {
    typealias Machine = ServerConnectionStateMachine
    typealias Frame = ServerConnectionStateMachine.Frame

    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    static var limits: Machine.Limits {
        Machine.Limits(
            handshakeTimeout: .seconds(10), keepaliveTime: .seconds(60), keepaliveTimeout: .seconds(20),
            minPingInterval: .seconds(300), maxPingStrikes: 2, maxConnectionIdle: .seconds(600),
            maxConnectionAge: nil, maxConnectionAgeGrace: nil, writeStallTimeout: .seconds(30),
            maxContinuationFrames: 4,
            resets: TokenBucket.Rate(burst: 10, perSecond: 5), settings: TokenBucket.Rate(burst: 3, perSecond: 1),
            controlFrames: TokenBucket.Rate(burst: 5, perSecond: 1))
    }

    static func active(_ limits: Machine.Limits = limits) -> Machine {
        var machine = Machine(limits: limits, now: start)
        _ = machine.frameBegan(type: Frame.settings, flags: 0, now: start)
        return machine
    }

    func isAbort(_ action: Machine.Action, _ reason: LimitKind) -> Bool {
        if case .abort(_, let actual, _) = action { return actual == reason }
        return false
    }

    // MARK: Preface

    @Test func thePrefaceMustArriveWithinTheHandshakeTimeout() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        #expect(machine.isAwaitingPreface)
        do { let action = machine.nextDeadline(hasOpenCalls: false); #expect(action == Self.start + .seconds(10)) }
        do { let action = machine.tick(now: Self.start + .seconds(9), hasOpenCalls: false); #expect(action == .none) }
        do { let action = machine.tick(now: Self.start + .seconds(10), hasOpenCalls: false); #expect(isAbort(action, .handshakeTimeout)) }
        #expect(machine.isClosed)
        do { let action = machine.nextDeadline(hasOpenCalls: false); #expect(action == nil) }
    }

    @Test func theFirstFrameEndsTheHandshake() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        do { let action = machine.frameBegan(type: Frame.settings, flags: 0, now: Self.start + .seconds(1)); #expect(action == .none) }
        #expect(machine.state == .active)
        #expect(machine.acceptsCalls)
        do { let action = machine.tick(now: Self.start + .seconds(11), hasOpenCalls: false); #expect(action == .none) }
    }

    // MARK: Header blocks

    @Test func aHeaderBlockLeftOpenTimesOut() {
        var machine = Self.active()
        do { let action = machine.frameBegan(type: Frame.headers, flags: 0, now: Self.start + .seconds(1)); #expect(action == .none) }
        #expect(machine.isInHeaderBlock)
        do { let action = machine.nextDeadline(hasOpenCalls: true); #expect(action == Self.start + .seconds(11)) }
        do { let action = machine.frameBegan(type: Frame.continuation, flags: 0, now: Self.start + .seconds(5)); #expect(action == .none) }
        // CONTINUATIONs do not extend the block's time.
        do { let action = machine.tick(now: Self.start + .seconds(11), hasOpenCalls: true); #expect(isAbort(action, .headerTimeout)) }
    }

    @Test func endHeadersClosesTheBlock() {
        var machine = Self.active()
        _ = machine.frameBegan(type: Frame.headers, flags: 0, now: Self.start)
        do { let action = machine.frameBegan(type: Frame.continuation, flags: Frame.endHeadersFlag, now: Self.start); #expect(action == .none) }
        #expect(!machine.isInHeaderBlock)
        do { let action = machine.tick(now: Self.start + .seconds(20), hasOpenCalls: true); #expect(action == .none) }
        _ = machine.frameBegan(type: Frame.headers, flags: Frame.endHeadersFlag, now: Self.start)
        #expect(!machine.isInHeaderBlock)
    }

    @Test func tooManyContinuationFramesEndTheConnection() {
        var machine = Self.active()
        _ = machine.frameBegan(type: Frame.headers, flags: 0, now: Self.start)
        for _ in 0..<4 { do { let action = machine.frameBegan(type: Frame.continuation, flags: 0, now: Self.start); #expect(action == .none) } }
        let action = machine.frameBegan(type: Frame.continuation, flags: 0, now: Self.start)
        #expect(action == .abort(code: Machine.ErrorCode.enhanceYourCalm, reason: .continuationFrames,
                                 debug: "more than 4 CONTINUATION frames in one header block"))
        #expect(machine.isClosed)
    }

    @Test func aContinuationOutsideABlockIsLeftToNghttp2() {
        var machine = Self.active()
        do { let action = machine.frameBegan(type: Frame.continuation, flags: 0, now: Self.start); #expect(action == .none) }
        #expect(!machine.isInHeaderBlock)
    }

    // MARK: Floods

    @Test func resetsBeyondTheBurstAndRateEndTheConnection() {
        var machine = Self.active()
        for _ in 0..<10 { do { let action = machine.frameBegan(type: Frame.rstStream, flags: 0, now: Self.start); #expect(action == .none) } }
        do { let action = machine.frameBegan(type: Frame.rstStream, flags: 0, now: Self.start); #expect(isAbort(action, .streamResets)) }
    }

    @Test func resetsAtTheSustainedRateAreFine() {
        var machine = Self.active()
        // 5 a second for a minute, after spending the burst.
        for _ in 0..<10 { _ = machine.frameBegan(type: Frame.rstStream, flags: 0, now: Self.start) }
        for tick in 1...300 {
            let now = Self.start + .milliseconds(Int64(tick) * 200)
            do { let action = machine.frameBegan(type: Frame.rstStream, flags: 0, now: now); #expect(action == .none) }
        }
    }

    @Test func settingsFloodEndsTheConnectionButAcksDoNotCount() {
        var machine = Self.active()  // one SETTINGS spent on the preface
        for _ in 0..<100 { do { let action = machine.frameBegan(type: Frame.settings, flags: Frame.ackFlag, now: Self.start); #expect(action == .none) } }
        do { let action = machine.frameBegan(type: Frame.settings, flags: 0, now: Self.start); #expect(action == .none) }
        do { let action = machine.frameBegan(type: Frame.settings, flags: 0, now: Self.start); #expect(action == .none) }
        do { let action = machine.frameBegan(type: Frame.settings, flags: 0, now: Self.start); #expect(isAbort(action, .settingsFrames)) }
    }

    @Test func controlFramesAreBudgetedAndDataSentEarnsMore() {
        let windowUpdate: UInt8 = 0x8
        var machine = Self.active()
        for _ in 0..<5 { do { let action = machine.frameBegan(type: windowUpdate, flags: 0, now: Self.start); #expect(action == .none) } }
        machine.responseDataSent()  // two more WINDOW_UPDATEs are fair
        for _ in 0..<2 { do { let action = machine.frameBegan(type: windowUpdate, flags: 0, now: Self.start); #expect(action == .none) } }
        do { let action = machine.frameBegan(type: Frame.data, flags: 0, now: Self.start); #expect(isAbort(action, .controlFrames)) }
    }

    // MARK: Ping strikes

    @Test func pingsTooCloseTogetherWithoutDataAreStrikes() {
        var machine = Self.active()
        do { let action = machine.frameBegan(type: Frame.ping, flags: 0, now: Self.start); #expect(action == .none) }
        do { let action = machine.frameBegan(type: Frame.ping, flags: 0, now: Self.start + .seconds(1)); #expect(action == .none) }
        #expect(machine.pingStrikes == 1)
        do { let action = machine.frameBegan(type: Frame.ping, flags: 0, now: Self.start + .seconds(2)); #expect(action == .none) }
        #expect(machine.pingStrikes == 2)
        let action = machine.frameBegan(type: Frame.ping, flags: 0, now: Self.start + .seconds(3))
        #expect(action == .abort(code: Machine.ErrorCode.enhanceYourCalm, reason: .pingStrikes, debug: "too_many_pings"))
    }

    @Test func responseDataBetweenPingsClearsStrikes() {
        var machine = Self.active()
        for second in 0..<20 {
            do { let action = machine.frameBegan(type: Frame.ping, flags: 0, now: Self.start + .seconds(Int64(second))); #expect(action == .none) }
            machine.responseDataSent()
        }
        #expect(machine.pingStrikes == 0)
    }

    @Test func pingsFarEnoughApartAreNotStrikes() {
        var machine = Self.active()
        for minute in 0..<10 {
            do { let action = machine.frameBegan(type: Frame.ping, flags: 0, now: Self.start + .minutes(Int64(minute) * 5)); #expect(action == .none) }
        }
        #expect(machine.pingStrikes == 0)
    }

    // MARK: Keepalive

    @Test func aQuietConnectionIsPingedAndClosedWithoutAnAck() {
        var machine = Self.active()
        do { let action = machine.nextDeadline(hasOpenCalls: true); #expect(action == Self.start + .seconds(60)) }
        do { let action = machine.tick(now: Self.start + .seconds(60), hasOpenCalls: true); #expect(action == .sendPing) }
        do { let action = machine.nextDeadline(hasOpenCalls: true); #expect(action == Self.start + .seconds(80)) }
        do { let action = machine.tick(now: Self.start + .seconds(80), hasOpenCalls: true); #expect(isAbort(action, .keepaliveTimeout)) }
    }

    @Test func anAckedPingKeepsTheConnection() {
        var machine = Self.active()
        do { let action = machine.tick(now: Self.start + .seconds(60), hasOpenCalls: true); #expect(action == .sendPing) }
        do { let action = machine.frameBegan(type: Frame.ping, flags: Frame.ackFlag, now: Self.start + .seconds(61)); #expect(action == .none) }
        do { let action = machine.tick(now: Self.start + .seconds(80), hasOpenCalls: true); #expect(action == .none) }
        #expect(machine.state == .active)
    }

    @Test func aConnectionThatReadsIsNotPinged() {
        var machine = Self.active()
        machine.bytesRead()
        do { let action = machine.tick(now: Self.start + .seconds(60), hasOpenCalls: true); #expect(action == .none) }
        // Nothing read in the next period: now it is pinged.
        do { let action = machine.tick(now: Self.start + .seconds(120), hasOpenCalls: true); #expect(action == .sendPing) }
    }

    // MARK: Writes

    @Test func aPeerThatStopsReadingPausesReadsThenIsDropped() {
        var machine = Self.active()
        do { let action = machine.writabilityChanged(isWritable: false, now: Self.start); #expect(action == .pauseReads) }
        do { let action = machine.writabilityChanged(isWritable: false, now: Self.start + .seconds(1)); #expect(action == .none) }
        do { let action = machine.nextDeadline(hasOpenCalls: true); #expect(action == Self.start + .seconds(30)) }
        do { let action = machine.tick(now: Self.start + .seconds(30), hasOpenCalls: true); #expect(isAbort(action, .writeStall)) }
    }

    @Test func aPeerThatCatchesUpResumesReads() {
        var machine = Self.active()
        _ = machine.writabilityChanged(isWritable: false, now: Self.start)
        do { let action = machine.writabilityChanged(isWritable: true, now: Self.start + .seconds(29)); #expect(action == .resumeReads) }
        do { let action = machine.writabilityChanged(isWritable: true, now: Self.start + .seconds(29)); #expect(action == .none) }
        do { let action = machine.tick(now: Self.start + .seconds(31), hasOpenCalls: true); #expect(action == .none) }
    }

    // MARK: Idle, age, drain

    @Test func anIdleConnectionGoesAwayGracefully() {
        var machine = Self.active()
        machine.callsBecameBusy()
        #expect(machine.nextDeadline(hasOpenCalls: true) == Self.start + .seconds(60))  // keepalive only
        do { let action = machine.callsBecameIdle(now: Self.start + .seconds(100)); #expect(action == .none) }
        machine.bytesRead()
        do { let action = machine.tick(now: Self.start + .seconds(699), hasOpenCalls: false); #expect(action == .none) }
        do { let action = machine.tick(now: Self.start + .seconds(700), hasOpenCalls: false); #expect(action == .goAway(debug: "max_idle")) }
        #expect(!machine.acceptsCalls)
    }

    @Test func aBusyConnectionIsNeverIdle() {
        var machine = Self.active()
        machine.callsBecameBusy()
        machine.bytesRead()
        do { let action = machine.tick(now: Self.start + .seconds(700), hasOpenCalls: true); #expect(action == .none) }
    }

    @Test func maxAgeDrainsThenTheGraceRunsOut() {
        var limits = Self.limits
        limits.maxConnectionAge = .seconds(100)
        limits.maxConnectionAgeGrace = .seconds(5)
        limits.keepaliveTime = nil
        var machine = Self.active(limits)
        machine.callsBecameBusy()
        do { let action = machine.nextDeadline(hasOpenCalls: true); #expect(action == Self.start + .seconds(100)) }
        do { let action = machine.tick(now: Self.start + .seconds(100), hasOpenCalls: true); #expect(action == .goAway(debug: "max_age")) }
        do { let action = machine.nextDeadline(hasOpenCalls: true); #expect(action == Self.start + .seconds(105)) }
        do { let action = machine.tick(now: Self.start + .seconds(105), hasOpenCalls: true); #expect(isAbort(action, .drainTimeout)) }
    }

    @Test func aDrainingConnectionClosesWhenItsLastCallEnds() {
        var machine = Self.active()
        machine.callsBecameBusy()
        do { let action = machine.beginGracefulShutdown(now: Self.start); #expect(action == .goAway(debug: "")) }
        #expect(machine.beginGracefulShutdown(now: Self.start) == .none)  // once
        #expect(!machine.acceptsCalls)
        do { let action = machine.callsBecameIdle(now: Self.start + .seconds(1)); #expect(isAbort(action, .drained)) }
        #expect(machine.isClosed)
    }

    @Test func aProtocolFailureAbortsOnce() {
        var machine = Self.active()
        do { let action = machine.protocolFailed(); #expect(isAbort(action, .protocolError)) }
        do { let action = machine.protocolFailed(); #expect(action == .none) }
        do { let action = machine.tick(now: Self.start + .hours(3), hasOpenCalls: true); #expect(action == .none) }
    }

    // MARK: Token bucket

    @Test func aTokenBucketRefillsAtItsRate() {
        var bucket = TokenBucket(rate: TokenBucket.Rate(burst: 2, perSecond: 4), now: Self.start)
        do { let taken = bucket.take(now: Self.start); #expect(taken) }
        do { let taken = bucket.take(now: Self.start); #expect(taken) }
        do { let taken = bucket.take(now: Self.start); #expect(!taken) }
        do { let taken = bucket.take(now: Self.start + .milliseconds(200)); #expect(!taken) }
        do { let taken = bucket.take(now: Self.start + .milliseconds(260)); #expect(taken) }  // 4/s: one back after 250 ms
        do { let taken = bucket.take(now: Self.start + .seconds(100)); #expect(taken) }
        do { let taken = bucket.take(now: Self.start + .seconds(100)); #expect(taken) }
        do { let taken = bucket.take(now: Self.start + .seconds(100)); #expect(!taken) }  // never above the burst
    }
}
