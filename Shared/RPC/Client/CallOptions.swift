import NIOCore

/// Per-call settings for a client call.
public struct CallOptions: Sendable {
    /// How long the caller waits; nil uses the inherited or configured default.
    public var timeout: Duration?
    /// Extra request metadata.
    public var metadata: Metadata
    /// Wait for a connection to become ready (until the deadline) instead of
    /// failing fast with UNAVAILABLE while the server is unreachable.
    public var waitForReady: Bool
    /// Overrides the channel's retry policy for this call; `.some(nil)`
    /// disables retries.
    public var retryPolicy: RetryPolicy??
    /// Whether this call may inherit the deadline and propagated metadata of
    /// the RPC the current task is serving (default true).
    public var inheritsFromServerContext: Bool

    public init(timeout: Duration? = nil, metadata: Metadata = Metadata(), waitForReady: Bool = false,
                retryPolicy: RetryPolicy?? = .none, inheritsFromServerContext: Bool = true) {
        self.timeout = timeout
        self.metadata = metadata
        self.waitForReady = waitForReady
        self.retryPolicy = retryPolicy
        self.inheritsFromServerContext = inheritsFromServerContext
    }

    public static var defaults: CallOptions { CallOptions() }
}

/// gRFC A6 retry policy for one method or service.
public struct RetryPolicy: Sendable, Hashable {
    /// Total attempts including the first, at least 2 to retry at all (capped at 5).
    public var maxAttempts: Int
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    public var backoffMultiplier: Double
    /// Statuses that make an attempt worth retrying.
    public var retryableStatusCodes: Set<RPCStatus.Code>

    public init(maxAttempts: Int = 3, initialBackoff: Duration = .milliseconds(50), maxBackoff: Duration = .seconds(1),
                backoffMultiplier: Double = 2, retryableStatusCodes: Set<RPCStatus.Code> = [.unavailable]) {
        self.maxAttempts = min(max(maxAttempts, 1), 5)
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.backoffMultiplier = backoffMultiplier
        self.retryableStatusCodes = retryableStatusCodes
    }
}

/// gRFC A6 hedging policy: send the same unary request again after
/// `hedgingDelay` while earlier attempts are still outstanding, and take the
/// first answer. For idempotent methods where tail latency matters.
public struct HedgingPolicy: Sendable, Hashable {
    /// Total attempts including the first (capped at 5).
    public var maxAttempts: Int
    /// Wait between sending attempts.
    public var hedgingDelay: Duration
    /// Statuses after which the other attempts carry on; any other status
    /// ends the call at once.
    public var nonFatalStatusCodes: Set<RPCStatus.Code>

    public init(maxAttempts: Int = 2, hedgingDelay: Duration = .milliseconds(20), nonFatalStatusCodes: Set<RPCStatus.Code> = [.unavailable]) {
        self.maxAttempts = min(max(maxAttempts, 1), 5)
        self.hedgingDelay = hedgingDelay
        self.nonFatalStatusCodes = nonFatalStatusCodes
    }
}

/// The response of a unary call with its metadata.
public struct UnaryResponse<Message: Sendable>: Sendable {
    public var message: Message
    public var headers: Metadata
    public var trailers: Metadata
}
