import Logging
import MeridianRPC
import ServiceKit

/// Builds the experimentation service from its configuration: what the executable runs
/// and what tests start in-process.
public func buildService(
    configuration: ServiceConfiguration,
    logger: Logger = Logger(label: "experimentation"),
    metricsExporter: (@Sendable () -> [UInt8])? = nil
) async throws -> ServiceHost {
    ServiceHost(configuration: configuration, services: [], logger: logger, metricsExporter: metricsExporter)
}
