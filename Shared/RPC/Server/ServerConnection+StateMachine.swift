import NIOCore

/// The life of one server connection as a value: when it may read, when it
/// pings, when it goes away, and how much abuse it puts up with. The
/// connection handler feeds it events and carries out the actions it
/// returns; every timed rule runs from `tick`, at `nextDeadline`, so a
/// connection needs one timer whatever it is waiting for.
///
/// The rules follow gRPC's own servers where they have one (keepalive and
/// ping strikes, max age and idle); the flood budgets are ours, so they
/// hold whatever libnghttp2 build the process links.
struct ServerConnectionStateMachine {
    struct Limits {
        /// The client preface, and then any header block once begun, must
        /// arrive within this.
        var handshakeTimeout: TimeAmount
        /// A connection with nothing read for this long gets a PING.
        var keepaliveTime: TimeAmount?
        /// ... which must be acknowledged within this, or the connection closes.
        var keepaliveTimeout: TimeAmount
        /// Client pings closer together than this, with no response data
        /// sent in between, are strikes.
        var minPingInterval: TimeAmount
        /// Strikes allowed before GOAWAY `ENHANCE_YOUR_CALM` "too_many_pings".
        var maxPingStrikes: Int
        var maxConnectionIdle: TimeAmount?
        var maxConnectionAge: TimeAmount?
        /// How long calls may run after the max-age GOAWAY; nil: until they end.
        var maxConnectionAgeGrace: TimeAmount?
        /// A connection whose peer has not read our bytes for this long is closed.
        var writeStallTimeout: TimeAmount
        /// CONTINUATION frames allowed after one HEADERS frame.
        var maxContinuationFrames: Int
        var resets: TokenBucket.Rate
        var settings: TokenBucket.Rate
        /// Frames that ask nothing of the server (WINDOW_UPDATE, PRIORITY,
        /// empty DATA, unknown types); each DATA frame sent earns two back.
        var controlFrames: TokenBucket.Rate
    }

    enum State: Equatable {
        /// Nothing read yet but maybe part of the client preface.
        case awaitingPreface
        case active
        /// GOAWAY sent: calls in flight finish, new ones are refused.
        case draining(since: NIODeadline)
        case closed
    }

    /// What the connection must do.
    enum Action: Equatable {
        case none
        case sendPing
        /// A graceful GOAWAY: no new calls; close once the calls end.
        case goAway(debug: String)
        /// GOAWAY with `code` (when the peer still reads), fail every call,
        /// close now.
        case abort(code: UInt32, reason: LimitKind, debug: String)
        case pauseReads
        case resumeReads
    }

    /// HTTP/2 error codes the machine uses (RFC 9113, section 7).
    enum ErrorCode {
        static let noError: UInt32 = 0
        static let protocolError: UInt32 = 1
        static let enhanceYourCalm: UInt32 = 0xB
    }

    /// HTTP/2 frame types and flags the machine looks at.
    enum Frame {
        static let data: UInt8 = 0x0
        static let headers: UInt8 = 0x1
        static let rstStream: UInt8 = 0x3
        static let settings: UInt8 = 0x4
        static let ping: UInt8 = 0x6
        static let continuation: UInt8 = 0x9
        static let ackFlag: UInt8 = 0x1
        static let endHeadersFlag: UInt8 = 0x4
    }

    let limits: Limits
    private(set) var state = State.awaitingPreface
    private let prefaceDeadline: NIODeadline
    private let ageDeadline: NIODeadline?
    private var drainDeadline: NIODeadline?

    /// When the open header block began, and how many CONTINUATIONs followed.
    private var headerBlock: (startedAt: NIODeadline, continuations: Int)?
    /// When the last call ended; nil while calls are open.
    private var idleSince: NIODeadline?
    private var unwritableSince: NIODeadline?

    // Keepalive.
    private var nextKeepaliveCheck: NIODeadline?
    private var readSinceKeepaliveCheck = false
    private var pingAckDeadline: NIODeadline?

    // Client pings.
    private var lastClientPing: NIODeadline?
    private var sentDataSinceClientPing = false
    private(set) var pingStrikes = 0

    private var resetBudget: TokenBucket
    private var settingsBudget: TokenBucket
    private var controlFrameBudget: TokenBucket

    init(limits: Limits, now: NIODeadline) {
        self.limits = limits
        prefaceDeadline = now + limits.handshakeTimeout
        ageDeadline = limits.maxConnectionAge.map { now + $0 }
        idleSince = now
        nextKeepaliveCheck = limits.keepaliveTime.map { now + $0 }
        resetBudget = TokenBucket(rate: limits.resets, now: now)
        settingsBudget = TokenBucket(rate: limits.settings, now: now)
        controlFrameBudget = TokenBucket(rate: limits.controlFrames, now: now)
    }

    var acceptsCalls: Bool { state == .active }
    var isClosed: Bool { state == .closed }
    var isAwaitingPreface: Bool { state == .awaitingPreface }
    /// Whether a header block is open: its frames' headers are worth a look.
    var isInHeaderBlock: Bool { headerBlock != nil }

    // MARK: Inbound

    /// Bytes were read from the socket.
    mutating func bytesRead() {
        readSinceKeepaliveCheck = true
    }

    /// A frame header arrived: any frame but DATA with a payload (the
    /// traffic itself costs nothing here).
    /// `now` is read only for the frames that need the time (a header
    /// block begins, a ping, a budget run dry).
    mutating func frameBegan(type: UInt8, flags: UInt8, now: @autoclosure () -> NIODeadline) -> Action {
        if state == .awaitingPreface { state = .active }
        switch type {
        case Frame.headers:
            headerBlock = flags & Frame.endHeadersFlag == 0 ? (now(), 0) : nil
        case Frame.continuation:
            guard var block = headerBlock else { return .none }  // nghttp2 rejects it as a protocol error
            block.continuations += 1
            if block.continuations > limits.maxContinuationFrames {
                return abort(ErrorCode.enhanceYourCalm, .continuationFrames,
                             "more than \(limits.maxContinuationFrames) CONTINUATION frames in one header block")
            }
            headerBlock = flags & Frame.endHeadersFlag == 0 ? block : nil
        case Frame.rstStream:
            if !resetBudget.take(now: now()) {
                return abort(ErrorCode.enhanceYourCalm, .streamResets, "too many stream resets")
            }
        case Frame.settings:
            if flags & Frame.ackFlag == 0, !settingsBudget.take(now: now()) {
                return abort(ErrorCode.enhanceYourCalm, .settingsFrames, "too many SETTINGS frames")
            }
        case Frame.ping:
            if flags & Frame.ackFlag != 0 {
                pingAckDeadline = nil
                return .none
            }
            return clientPing(now: now())
        default:
            // WINDOW_UPDATE, PRIORITY, empty DATA, unknown types.
            if !controlFrameBudget.take(now: now()) {
                return abort(ErrorCode.enhanceYourCalm, .controlFrames, "too many control frames")
            }
        }
        return .none
    }

    /// gRPC's ping-strike policy: a ping sooner than `minPingInterval`
    /// after the previous one, with no response data sent in between, is a
    /// strike; too many strikes end the connection.
    private mutating func clientPing(now: NIODeadline) -> Action {
        defer {
            lastClientPing = now
            sentDataSinceClientPing = false
        }
        guard let last = lastClientPing, !sentDataSinceClientPing, now - last < limits.minPingInterval else {
            return .none
        }
        pingStrikes += 1
        if pingStrikes > limits.maxPingStrikes {
            return abort(ErrorCode.enhanceYourCalm, .pingStrikes, "too_many_pings")
        }
        return .none
    }

    /// Response headers went out: the client may ping again.
    mutating func responseHeadersSent() {
        sentDataSinceClientPing = true
        pingStrikes = 0
        controlFrameBudget.give(1)
    }

    /// A DATA frame went out: the client may ping again, and may send the
    /// WINDOW_UPDATEs it calls for.
    mutating func responseDataSent() {
        sentDataSinceClientPing = true
        pingStrikes = 0
        controlFrameBudget.give(2)
    }

    // MARK: Calls

    mutating func callsBecameBusy() { idleSince = nil }

    /// The last open call ended. Draining connections close now.
    mutating func callsBecameIdle(now: NIODeadline) -> Action {
        idleSince = now
        if case .draining = state { return closeNow() }
        return .none
    }

    // MARK: Output

    mutating func writabilityChanged(isWritable: Bool, now: NIODeadline) -> Action {
        if isWritable {
            guard unwritableSince != nil else { return .none }
            unwritableSince = nil
            return .resumeReads
        }
        guard unwritableSince == nil else { return .none }
        unwritableSince = now
        return .pauseReads
    }

    // MARK: Lifecycle

    /// The server is shutting down, or the connection has lived long enough.
    mutating func beginGracefulShutdown(now: NIODeadline, debug: String = "") -> Action {
        switch state {
        case .awaitingPreface, .active:
            state = .draining(since: now)
            return .goAway(debug: debug)
        case .draining, .closed:
            return .none
        }
    }

    /// nghttp2 ended the session (a protocol error it answered with GOAWAY).
    mutating func protocolFailed() -> Action {
        guard state != .closed else { return .none }
        return abort(ErrorCode.protocolError, .protocolError, "")
    }

    mutating func closed() { state = .closed }

    // MARK: Timers

    /// Runs every timed rule due at `now`; returns the most urgent action.
    mutating func tick(now: NIODeadline, hasOpenCalls: Bool) -> Action {
        switch state {
        case .closed:
            return .none
        case .awaitingPreface:
            if now >= prefaceDeadline { return abort(ErrorCode.protocolError, .handshakeTimeout, "no client preface in time") }
        case .active, .draining:
            break
        }
        if let block = headerBlock, now >= block.startedAt + limits.handshakeTimeout {
            return abort(ErrorCode.enhanceYourCalm, .headerTimeout, "request headers not completed in time")
        }
        if let since = unwritableSince, now >= since + limits.writeStallTimeout {
            return abort(ErrorCode.enhanceYourCalm, .writeStall, "peer stopped reading")
        }
        if let deadline = pingAckDeadline, now >= deadline {
            return abort(ErrorCode.enhanceYourCalm, .keepaliveTimeout, "keepalive ping not acknowledged")
        }
        if case .draining = state, let drainDeadline, now >= drainDeadline {
            return abort(ErrorCode.noError, .drainTimeout, "max_age grace period over")
        }
        if state == .active, let ageDeadline, now >= ageDeadline {
            drainDeadline = limits.maxConnectionAgeGrace.map { now + $0 }
            return beginGracefulShutdown(now: now, debug: "max_age")
        }
        if state == .active, !hasOpenCalls, let idleSince, let maxIdle = limits.maxConnectionIdle, now >= idleSince + maxIdle {
            return beginGracefulShutdown(now: now, debug: "max_idle")
        }
        if let check = nextKeepaliveCheck, now >= check, let keepaliveTime = limits.keepaliveTime {
            nextKeepaliveCheck = now + keepaliveTime
            if readSinceKeepaliveCheck || pingAckDeadline != nil {
                readSinceKeepaliveCheck = false
                return .none
            }
            pingAckDeadline = now + limits.keepaliveTimeout
            return .sendPing
        }
        return .none
    }

    /// When `tick` next has something to do; nil when nothing is timed.
    func nextDeadline(hasOpenCalls: Bool) -> NIODeadline? {
        var next: NIODeadline?
        func consider(_ deadline: NIODeadline?) {
            guard let deadline else { return }
            if next.map({ deadline < $0 }) ?? true { next = deadline }
        }
        switch state {
        case .closed:
            return nil
        case .awaitingPreface:
            consider(prefaceDeadline)
        case .active:
            consider(ageDeadline)
            if !hasOpenCalls, let idleSince, let maxIdle = limits.maxConnectionIdle { consider(idleSince + maxIdle) }
        case .draining:
            consider(drainDeadline)
        }
        consider(headerBlock.map { $0.startedAt + limits.handshakeTimeout })
        consider(unwritableSince.map { $0 + limits.writeStallTimeout })
        consider(pingAckDeadline)
        consider(nextKeepaliveCheck)
        return next
    }

    private mutating func abort(_ code: UInt32, _ reason: LimitKind, _ debug: String) -> Action {
        state = .closed
        return .abort(code: code, reason: reason, debug: debug)
    }

    private mutating func closeNow() -> Action {
        state = .closed
        return .abort(code: ErrorCode.noError, reason: .drained, debug: "")
    }
}

/// Why a connection was ended or a call refused, as counted in the
/// `rpc_server_limit_hits_total` metric's `limit` dimension.
public enum LimitKind: String, Sendable, CaseIterable {
    case headerListSize = "header_list_size"
    case headerCount = "header_count"
    case connectionReceiveBuffer = "connection_receive_buffer"
    case serverReceiveBuffer = "server_receive_buffer"
    case connections = "connections"
    case connectionsPerPeer = "connections_per_peer"
    case inFlightCalls = "in_flight_calls"
    case continuationFrames = "continuation_frames"
    case streamResets = "stream_resets"
    case settingsFrames = "settings_frames"
    case controlFrames = "control_frames"
    case pingStrikes = "ping_strikes"
    case outboundQueue = "outbound_queue"
    case handshakeTimeout = "handshake_timeout"
    case headerTimeout = "header_timeout"
    case writeStall = "write_stall"
    case keepaliveTimeout = "keepalive_timeout"
    case protocolError = "protocol_error"
    /// Not limits: a drained connection closing, the age grace running out.
    case drained = "drained"
    case drainTimeout = "drain_timeout"
}

/// A rate with a burst: `take` succeeds while tokens last, and tokens come
/// back at `perSecond`. The clock is read only once the tokens run out
/// (what accrued since the last refill is added then, up to the burst).
struct TokenBucket {
    struct Rate {
        var burst: Int
        var perSecond: Int
    }

    let rate: Rate
    private var tokens: Int64
    private var updated: NIODeadline
    /// Tokens are kept in millionths so slow rates refill smoothly.
    private static let scale: Int64 = 1_000_000

    init(rate: Rate, now: NIODeadline) {
        self.rate = rate
        self.tokens = Int64(rate.burst) * Self.scale
        self.updated = now
    }

    /// Adds `count` tokens, up to the burst.
    mutating func give(_ count: Int) {
        tokens = min(Int64(rate.burst) * Self.scale, tokens + Int64(count) * Self.scale)
    }

    mutating func take(now: @autoclosure () -> NIODeadline) -> Bool {
        if tokens >= Self.scale {
            tokens -= Self.scale
            return true
        }
        let capacity = Int64(rate.burst) * Self.scale
        let now = now()
        if now > updated {
            let elapsed = (now - updated).nanoseconds
            // perSecond tokens a second, in millionths: perSecond * scale / 1e9 per nanosecond.
            let refill = elapsed.multipliedReportingOverflow(by: Int64(rate.perSecond))
            tokens = refill.overflow ? capacity : min(capacity, tokens + refill.partialValue / 1_000)
            updated = now
        }
        guard tokens >= Self.scale else { return false }
        tokens -= Self.scale
        return true
    }
}
