import Logging
import MeridianRPC
import Metrics
import NIOCore
import Synchronization

/// Logs every call that fails, and every call at debug level, with its
/// method, status and duration (from when its headers were read).
public struct LoggingInterceptor: ServerCallObserver {
    let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    public func callStarting(context: ServerContext) {}

    public func callEnded(context: ServerContext, error: (any Error)?) {
        switch error {
        case nil:
            if logger.logLevel <= .debug { logger.debug("rpc ok", metadata: metadata(context, code: "OK")) }
        case let error as RPCError:
            let level: Logger.Level = Self.isServerFault(error.code) ? .warning : .debug
            guard logger.logLevel <= level else { return }
            var fields = metadata(context, code: "\(error.code)")
            fields["rpc.message"] = "\(error.message)"
            logger.log(level: level, "rpc failed", metadata: fields)
        case let error?:
            if logger.logLevel <= .debug { logger.debug("rpc failed", metadata: metadata(context, code: "\(type(of: error))")) }
        }
    }

    private func metadata(_ context: ServerContext, code: String) -> Logger.Metadata {
        var fields: Logger.Metadata = [
            "rpc.method": "\(context.path)",
            "rpc.code": "\(code)",
            "rpc.duration_ms": "\(Double((NIODeadline.now() - context.receivedAt).nanoseconds) / 1e6)",
            "peer": "\(context.peer)",
        ]
        if let tenant = context.requestMetadata["x-tenant-id"] { fields["tenant"] = "\(tenant)" }
        if let requestID = context.requestMetadata["x-request-id"] { fields["request_id"] = "\(requestID)" }
        return fields
    }

    static func isServerFault(_ code: RPCStatus.Code) -> Bool {
        [.unknown, .internal, .dataLoss, .unavailable, .deadlineExceeded].contains(code)
    }
}

/// Counts calls and times them per method and status code through
/// swift-metrics: `rpc_server_calls_total` and `rpc_server_duration_seconds`
/// (from when the call's headers were read). Whatever metrics backend the
/// executable bootstrapped receives them.
public struct MetricsInterceptor: ServerCallObserver {
    let service: String
    private let handles = MetricHandles()

    public init(service: String) {
        self.service = service
    }

    public func callStarting(context: ServerContext) {}

    public func callEnded(context: ServerContext, error: (any Error)?) {
        let code: String
        switch error {
        case nil: code = "OK"
        case let error as RPCError: code = "\(error.code)"
        case is CancellationError: code = "CANCELLED"
        default: code = "UNKNOWN"
        }
        let (calls, duration) = handles.handles(service: service, context: context, code: code)
        calls.increment()
        duration.recordNanoseconds((NIODeadline.now() - context.receivedAt).nanoseconds)
    }
}

/// The counter and timer of each method and status code, made once: asking
/// the metrics factory for them on every call (building the label list,
/// looking it up under the factory's lock) cost more than recording.
private final class MetricHandles: Sendable {
    private let byMethod = Mutex<[String: [String: (Counter, Metrics.Timer)]]>([:])

    func handles(service: String, context: ServerContext, code: String) -> (Counter, Metrics.Timer) {
        if let cached = byMethod.withLock({ $0[context.path]?[code] }) { return cached }
        let dimensions = [("service", service), ("method", String(context.methodName)), ("code", code)]
        let made = (Counter(label: "rpc_server_calls_total", dimensions: dimensions),
                    Metrics.Timer(label: "rpc_server_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds))
        byMethod.withLock { $0[context.path, default: [:]][code] = made }
        return made
    }
}

extension Duration {
    /// The duration in (fractional) milliseconds, for logs.
    public var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}
