import Logging
import NIOCore
import NIOPosix
import SwiftProtobuf
import Synchronization

/// A client's way to a service: one or more server addresses, HTTP/2
/// connections reused and multiplexed, calls spread round-robin, deadlines,
/// cancellation, retries (gRFC A6) and context propagation.
///
///     let channel = try RPCChannel(target: "127.0.0.1:7101")
///     let client = Platform_Catalog_V1_CatalogServiceClient(channel: channel)
public final class RPCChannel: Sendable {
    public struct Configuration: Sendable {
        public var connectTimeout: TimeAmount
        public var initialReconnectBackoff: TimeAmount
        public var maxReconnectBackoff: TimeAmount
        /// Response messages above this size fail the call with RESOURCE_EXHAUSTED.
        public var maxReceiveMessageSize: Int
        /// Deadline for calls that set none and inherit none; nil waits forever.
        public var defaultTimeout: Duration?
        /// Subtracted from an inherited deadline so the caller's answer still
        /// has time to travel back.
        public var deadlinePropagationMargin: Duration
        /// Request metadata copied from the RPC being served into outgoing
        /// calls (tenant, tracing, request id).
        public var propagatedMetadataKeys: [String]
        /// Retry policy per full method path (`/pkg.Service/Method`) or per
        /// service (`/pkg.Service/`); unary calls only.
        public var retryPolicies: [String: RetryPolicy]
        /// gRFC A6 retry throttling: at most this many tokens; a failure costs
        /// one, a success earns `retryTokenRatio`; below half, no retries.
        public var retryThrottleMaxTokens: Double
        public var retryTokenRatio: Double
        /// Per-stream receive window.
        public var initialStreamWindowSize: UInt32
        /// Hedging policy per full method path or per service (`/pkg.Service/`);
        /// unary calls only. A method with both uses hedging.
        public var hedgingPolicies: [String: HedgingPolicy] = [:]
        /// Run before every call, in order.
        public var interceptors: [any ClientInterceptor] = []

        public static var defaults: Configuration {
            Configuration(
                connectTimeout: .seconds(5), initialReconnectBackoff: .milliseconds(200),
                maxReconnectBackoff: .seconds(30), maxReceiveMessageSize: 4 << 20,
                defaultTimeout: nil, deadlinePropagationMargin: .milliseconds(2),
                propagatedMetadataKeys: ["x-tenant-id", "traceparent", "tracestate", "x-request-id", "authorization"],
                retryPolicies: [:], retryThrottleMaxTokens: 10, retryTokenRatio: 0.1,
                initialStreamWindowSize: 1 << 20)
        }

        var http2Settings: HTTP2Session.Settings {
            var settings = HTTP2Session.Settings()
            settings.initialWindowSize = initialStreamWindowSize
            return settings
        }
    }

    public let configuration: Configuration
    private let subchannels: [Subchannel]
    private let next = Atomic<Int>(0)
    private let retryTokens: Mutex<Double>
    private let userAgent = "meridian-swift/1.0"

    /// - Parameter target: `host:port`, `[v6]:port`, or several separated by
    ///   commas for client-side round-robin over a static list.
    public init(target: String, configuration: Configuration = .defaults,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        let endpoints = try target.split(separator: ",").map { try Self.parseEndpoint(String($0).trimmingCharacters(in: .whitespaces)) }
        guard !endpoints.isEmpty else { throw RPCError(.invalidArgument, "empty target") }
        self.configuration = configuration
        self.subchannels = endpoints.map { Subchannel(host: $0.host, port: $0.port, configuration: configuration, group: group) }
        self.retryTokens = Mutex(configuration.retryThrottleMaxTokens)
    }

    public convenience init(host: String, port: Int, configuration: Configuration = .defaults) throws {
        try self.init(target: host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]:\(port)" : "\(host):\(port)", configuration: configuration)
    }

    static func parseEndpoint(_ text: String) throws -> (host: String, port: Int) {
        var text = text
        if text.hasPrefix("dns:///") { text.removeFirst(7) }
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()) else { throw RPCError(.invalidArgument, "target \(text) needs a port") }
            return (host, port)
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
            throw RPCError(.invalidArgument, "target \(text) is not host:port")
        }
        return (String(text[..<colon]), port)
    }

    /// Closes every connection; calls in flight fail with UNAVAILABLE.
    public func close() async {
        for subchannel in subchannels { await subchannel.shutdown() }
    }

    // MARK: Typed calls (used by generated clients)

    public func unary<Request: Message, Response: Message>(
        path: String, request: Request, options: CallOptions = .defaults
    ) async throws -> UnaryResponse<Response> {
        let payload = try request.rpcPayload()
        let raw = try await unary(path: path, payload: payload, options: options)
        return UnaryResponse(message: try Response(rpcPayload: raw.message), headers: raw.headers, trailers: raw.trailers)
    }

    public func serverStreaming<Request: Message, Response: Message>(
        path: String, request: Request, options: CallOptions = .defaults
    ) -> RPCResponseStream<Response> {
        RPCResponseStream { [self] in
            let payload = try request.rpcPayload()
            return try await self.startCall(path: path, options: options, singleRequest: payload)
        }
    }

    public func clientStreaming<Request: Message, Response: Message>(
        path: String, options: CallOptions = .defaults,
        requests: @Sendable (RPCRequestWriter<Request>) async throws -> Void
    ) async throws -> UnaryResponse<Response> {
        let call = try await startCall(path: path, options: options, singleRequest: nil)
        do {
            try await requests(RPCRequestWriter(call: call))
            call.finishSending()
        } catch {
            call.cancel(RPCStatus(.cancelled, "request producer failed: \(error)"))
            if let rpcError = error as? RPCError { throw rpcError }
            throw error
        }
        let raw = try await call.unaryResponse()
        return UnaryResponse(message: try Response(rpcPayload: raw.message), headers: raw.headers, trailers: raw.trailers)
    }

    /// A bidirectional call scoped to `body`: the call is cancelled if `body`
    /// returns or throws before it ends.
    public func bidirectionalStreaming<Request: Message, Response: Message, Result: Sendable>(
        path: String, options: CallOptions = .defaults,
        body: @Sendable (RPCRequestWriter<Request>, RPCResponseStream<Response>) async throws -> Result
    ) async throws -> Result {
        let call = try await startCall(path: path, options: options, singleRequest: nil)
        let responses = RPCResponseStream<Response>(started: call)
        defer { call.cancel(RPCStatus(.cancelled, "call scope ended")) }
        return try await body(RPCRequestWriter(call: call), responses)
    }

    // MARK: Raw calls

    /// A unary call on serialized messages, with the channel's retry policy.
    public func unary(path: String, payload: ByteBuffer, options: CallOptions = .defaults) async throws -> UnaryResponse<ByteBuffer> {
        if let hedging = hedgingPolicy(for: path), hedging.maxAttempts > 1 {
            return try await hedgedUnary(path: path, payload: payload, options: options, policy: hedging)
        }
        let policy = options.retryPolicy ?? retryPolicy(for: path)
        guard let policy, policy.maxAttempts > 1 else {
            let call = try await startCall(path: path, options: options, singleRequest: payload)
            return try await call.unaryResponse()
        }
        // Every attempt shares the first attempt's deadline.
        var options = options
        let deadline = resolveDeadline(options)
        var attempt = 1
        var backoff = policy.initialBackoff
        while true {
            if let deadline {
                let left = deadline - .now()
                if left.nanoseconds <= 0 { throw RPCError(.deadlineExceeded, "deadline exceeded before attempt \(attempt) of \(path)") }
                options.timeout = .nanoseconds(left.nanoseconds)
            }
            do {
                let call = try await startCall(path: path, options: options, singleRequest: payload)
                let response = try await call.unaryResponse()
                recordRetryOutcome(success: true)
                return response
            } catch let error as RPCError {
                guard policy.retryableStatusCodes.contains(error.code) else { throw error }
                recordRetryOutcome(success: false)
                guard attempt < policy.maxAttempts, retriesAllowed() else { throw error }
                // gRFC A6: a random delay up to the current backoff, which grows
                // by the multiplier up to the cap; server pushback overrides it.
                var delay = backoff * Double.random(in: 0...1)
                if let pushback = error.trailers["grpc-retry-pushback-ms"] {
                    guard let ms = Int(pushback), ms >= 0 else { throw error }  // the server says: do not retry
                    delay = .milliseconds(ms)
                    backoff = policy.initialBackoff
                } else {
                    backoff = min(backoff * policy.backoffMultiplier, policy.maxBackoff)
                }
                try await Task.sleep(for: delay)
                attempt += 1
            }
        }
    }

    private enum HedgeEvent: Sendable {
        case answered(UnaryResponse<ByteBuffer>)
        case failed(RPCError)
        case delayElapsed
    }

    /// Sends attempts `hedgingDelay` apart until one answers; a fatal status
    /// ends the call at once, non-fatal ones wait for the others.
    private func hedgedUnary(path: String, payload: ByteBuffer, options: CallOptions, policy: HedgingPolicy) async throws -> UnaryResponse<ByteBuffer> {
        var options = options
        if let deadline = resolveDeadline(options) {
            options.timeout = .nanoseconds(max(1, (deadline - .now()).nanoseconds))  // every attempt shares it
        }
        let attemptOptions = options
        return try await withThrowingTaskGroup(of: HedgeEvent.self) { group in
            var sent = 0
            var outstanding = 0
            var lastError = RPCError(.unavailable, "no attempt of \(path) was sent")
            func send() {
                sent += 1
                outstanding += 1
                group.addTask {
                    do {
                        let call = try await self.startCall(path: path, options: attemptOptions, singleRequest: payload)
                        return .answered(try await call.unaryResponse())
                    } catch let error as RPCError {
                        return .failed(error)
                    }
                }
                if sent < policy.maxAttempts {
                    group.addTask {
                        try await Task.sleep(for: policy.hedgingDelay)
                        return .delayElapsed
                    }
                }
            }
            send()
            while let event = try await group.next() {
                switch event {
                case .answered(let response):
                    group.cancelAll()
                    recordRetryOutcome(success: true)
                    return response
                case .failed(let error):
                    outstanding -= 1
                    lastError = error
                    guard policy.nonFatalStatusCodes.contains(error.code) else {
                        group.cancelAll()
                        throw error
                    }
                    recordRetryOutcome(success: false)
                    if outstanding == 0 && (sent == policy.maxAttempts || !retriesAllowed()) {
                        group.cancelAll()
                        throw error
                    }
                case .delayElapsed:
                    if sent < policy.maxAttempts && retriesAllowed() { send() }
                }
            }
            throw lastError
        }
    }

    private func hedgingPolicy(for path: String) -> HedgingPolicy? {
        configuration.hedgingPolicies[path] ?? configuration.hedgingPolicies["/" + RPCRouter.serviceName(of: path) + "/"]
    }

    private func retryPolicy(for path: String) -> RetryPolicy? {
        if let policy = configuration.retryPolicies[path] { return policy }
        let service = "/" + RPCRouter.serviceName(of: path) + "/"
        return configuration.retryPolicies[service]
    }

    private func recordRetryOutcome(success: Bool) {
        retryTokens.withLock { tokens in
            if success {
                tokens = min(configuration.retryThrottleMaxTokens, tokens + configuration.retryTokenRatio)
            } else {
                tokens = max(0, tokens - 1)
            }
        }
    }

    private func retriesAllowed() -> Bool {
        retryTokens.withLock { $0 > configuration.retryThrottleMaxTokens / 2 }
    }

    private func resolveDeadline(_ options: CallOptions) -> NIODeadline? {
        var deadline: NIODeadline?
        if let timeout = options.timeout ?? configuration.defaultTimeout {
            deadline = .now() + TimeAmount(timeout)
        }
        if options.inheritsFromServerContext, let inherited = ServerContext.current?.deadline {
            let adjusted = inherited - TimeAmount(configuration.deadlinePropagationMargin)
            deadline = deadline.map { min($0, adjusted) } ?? adjusted
        }
        return deadline
    }

    /// Starts a call on a ready connection; `singleRequest` is sent with the
    /// headers and half-closes at once.
    func startCall(path: String, options: CallOptions, singleRequest: ByteBuffer?) async throws -> ClientCall {
        var options = options
        for interceptor in configuration.interceptors {
            try await interceptor.prepare(path: path, options: &options)
        }
        let deadline = resolveDeadline(options)
        if let deadline, deadline <= .now() {
            throw RPCError(.deadlineExceeded, "deadline exceeded before \(path) started")
        }
        let subchannel = pickSubchannel()
        let handle = try await subchannel.connection(waitForReady: options.waitForReady, deadline: deadline)

        var headers: [(String, String)] = [
            (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", subchannel.authority),
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", userAgent),
        ]
        if let deadline {
            headers.append(("grpc-timeout", WireFormat.formatTimeout(nanoseconds: max(1, (deadline - .now()).nanoseconds))))
        }
        var metadata = options.metadata
        if options.inheritsFromServerContext, let serving = ServerContext.current {
            for key in configuration.propagatedMetadataKeys where metadata.values(key).isEmpty {
                for value in serving.requestMetadata.values(key) { metadata.add(key, value: value) }
            }
        }
        HeaderCoding.append(metadata, to: &headers)

        let call = ClientCall(path: path, eventLoop: handle.eventLoop, maxMessageSize: configuration.maxReceiveMessageSize)
        if let singleRequest { call.prepareSingleRequest(singleRequest) }
        let bound = handle.handler
        let headerList = headers
        handle.eventLoop.execute {
            bound.value.start(call, headers: headerList)
            if let deadline {
                call.deadlineTimer = handle.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
                    call.cancel(RPCStatus(.deadlineExceeded, "deadline exceeded"))
                }
            }
        }
        return call
    }

    private func pickSubchannel() -> Subchannel {
        if subchannels.count == 1 { return subchannels[0] }
        let start = next.add(1, ordering: .relaxed).oldValue
        for offset in 0..<subchannels.count {
            let candidate = subchannels[(start + offset) % subchannels.count]
            if candidate.isReady { return candidate }
        }
        return subchannels[start % subchannels.count]
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// Sends the request messages of a client- or bidirectional-streaming call.
public struct RPCRequestWriter<Message: SwiftProtobuf.Message>: Sendable {
    let call: ClientCall

    /// Sends one message; suspends while the server is not reading.
    public func write(_ message: Message) async throws {
        try await call.send(message.rpcPayload())
    }

    /// Half-closes: tells the server no more messages follow. Optional for
    /// client streaming, where the runtime does it after the producer returns.
    public func finish() {
        call.finishSending()
    }
}

/// The response messages of a streaming call. Iterating starts the call if it
/// has not started; a non-OK status is thrown after the messages before it.
/// Dropping the stream before its end cancels the call.
public struct RPCResponseStream<Message: SwiftProtobuf.Message>: AsyncSequence, Sendable {
    public typealias Element = Message

    final class Box: Sendable {
        let starter: (@Sendable () async throws -> ClientCall)?
        let call = Mutex<ClientCall?>(nil)

        init(starter: (@Sendable () async throws -> ClientCall)?, call: ClientCall?) {
            self.starter = starter
            self.call.withLock { $0 = call }
        }

        func started() async throws -> ClientCall {
            if let call = call.withLock({ $0 }) { return call }
            let started = try await starter!()
            call.withLock { $0 = started }
            return started
        }

        deinit {
            call.withLock { $0 }?.cancel(RPCStatus(.cancelled, "response stream dropped"))
        }
    }

    let box: Box

    init(start: @escaping @Sendable () async throws -> ClientCall) {
        box = Box(starter: start, call: nil)
    }

    init(started call: ClientCall) {
        box = Box(starter: nil, call: call)
    }

    /// The response headers; waits for them (starting the call if needed).
    public func headers() async throws -> Metadata {
        try await box.started().headers()
    }

    /// The trailers, once the stream has ended.
    public var trailers: Metadata {
        box.call.withLock { $0?.trailers } ?? Metadata()
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let box: Box
        public mutating func next() async throws -> Message? {
            let call = try await box.started()
            guard let payload = try await call.next() else { return nil }
            return try Message(rpcPayload: payload)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(box: box) }
}
