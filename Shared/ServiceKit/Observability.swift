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
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return { registry.emitToBuffer() }
    }
}
