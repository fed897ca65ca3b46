import Logging
import Metrics
import Prometheus

/// Process-wide observability set-up. Only executables call this (libraries
/// just use the swift-log and swift-metrics APIs), and only once.
public enum Observability {
    /// Structured logs to stdout at `level`, and Prometheus metrics. Returns
    /// the exporter the admin endpoint serves at /metrics.
    public static func bootstrap(service: String, level: Logger.Level) -> @Sendable () -> [UInt8] {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            handler.metadata["service"] = "\(service)"
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = durationBuckets
        MetricsSystem.bootstrap(factory)
        return { registry.emitToBuffer() }
    }

    /// Upper bounds of every duration histogram (timers): from 25 µs, as
    /// most calls of these services take well under a millisecond and the
    /// library's default buckets (from 5 ms) would put them all in one.
    public static let durationBuckets: [Duration] = [
        .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]
}
