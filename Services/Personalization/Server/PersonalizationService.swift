import Foundation
import Logging
import MeridianRPC
import NIOCore
import ServiceKit

/// Builds the personalization service from its configuration: what the
/// executable runs and what tests start in-process. The four services it
/// orchestrates are at `configuration.dependencies` ("catalog",
/// "feature-store", "inference", "experimentation"; default the platform's
/// ports on this machine). Idempotent answers are kept in SQLite under
/// `dataDirectory`.
public func buildService(
    configuration: ServiceConfiguration,
    settings: PersonalizationSettings = .defaults,
    logger: Logger = Logger(label: "personalization"),
    metricsExporter: (@Sendable () -> [UInt8])? = nil
) async throws -> ServiceHost {
    let directory = configuration.dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("meridian-personalization").path
    let answers = try AnswerLog(path: (directory as NSString).appendingPathComponent("personalization.sqlite"))

    func dependency(_ name: String, service: String, timeout: Duration) throws -> Dependency {
        let address = configuration.dependencies[name] ?? "127.0.0.1:\(PlatformPorts.defaultPort(for: name))"
        var channelConfiguration = RPCChannel.Configuration.defaults
        // Every call personalization makes is a read (exposures carry ids),
        // so one quick retry of an unreachable instance is safe; the
        // request's budget bounds it.
        channelConfiguration.retryPolicies = ["/\(service)/": RetryPolicy(maxAttempts: 2, initialBackoff: .milliseconds(5), maxBackoff: .milliseconds(20))]
        // A dependency that comes back is used again within a second; the
        // circuit breaker, not connection backoff, keeps load off one that is down.
        channelConfiguration.initialReconnectBackoff = .milliseconds(100)
        channelConfiguration.maxReconnectBackoff = .seconds(1)
        let channel = try RPCChannel(target: address, configuration: channelConfiguration)
        return Dependency(name: name, channel: channel, timeout: timeout, breaker: settings.circuitBreaker)
    }
    let steps = DependencySteps(
        settings: settings,
        catalog: try dependency("catalog", service: "platform.catalog.v1.CatalogService", timeout: settings.timeouts.catalog),
        featureStore: try dependency("feature-store", service: "platform.featurestore.v1.FeatureStoreService", timeout: settings.timeouts.featureStore),
        inference: try dependency("inference", service: "inference.GRPCInferenceService", timeout: settings.timeouts.inference),
        experimentation: try dependency("experimentation", service: "platform.experimentation.v1.ExperimentationService", timeout: settings.timeouts.experimentation))
    let mirror = CatalogMirror(channel: steps.catalog.channel, popularityAttribute: settings.popularityAttribute,
                               maxTenants: settings.maxFollowedTenants, logger: logger)
    for tenant in settings.preloadTenants { mirror.follow(TenantID(tenant)) }
    let exposures = ExposureBatcher(steps: steps, logger: logger)
    exposures.start()
    let pipeline = RecommendationPipeline(settings: settings, steps: steps, mirror: mirror, exposures: exposures, logger: logger)
    let handler = PersonalizationHandler(pipeline: pipeline, answers: answers, settings: settings)
    let pruning = startHousekeeping { try await answers.prune() }
    logger.info("dependencies", metadata: ["addresses": "\(configuration.dependencies)"])
    return ServiceHost(
        configuration: configuration, services: [handler], logger: logger, metricsExporter: metricsExporter,
        // Ready once the preloaded tenants' catalogs are mirrored: from then
        // on a catalog outage degrades answers instead of failing them.
        readinessCheck: { settings.preloadTenants.allSatisfy { mirror.isReady(TenantID($0)) } },
        onShutdown: {
            pruning.cancel()
            mirror.stop()
            await exposures.stop()
            for dependency in [steps.catalog, steps.featureStore, steps.inference, steps.experimentation] {
                await dependency.channel.close()
            }
            try? answers.close()
        })
}
