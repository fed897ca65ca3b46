import Contracts
import Metrics

typealias DegradationReason = Platform_Personalization_V1_DegradationReason

/// The fallbacks one answer used: at most one reason per failed dependency,
/// each counted in `personalization_degraded_total{dependency,fallback}`.
struct Degradation: Sendable {
    private(set) var reasons: [DegradationReason] = []

    mutating func record(_ failure: DependencyFailure, fallback: DegradationReason.Fallback) {
        guard !reasons.contains(where: { $0.dependency == failure.dependency }) else { return }
        reasons.append(.with {
            $0.dependency = failure.dependency
            $0.reason = failure.reason
            $0.fallback = fallback
        })
        Counter(label: "personalization_degraded_total", dimensions: [("dependency", failure.dependency), ("fallback", Self.name(fallback))]).increment()
    }

    static func name(_ fallback: DegradationReason.Fallback) -> String {
        switch fallback {
        case .popularityRanking: "popularity_ranking"
        case .defaultFeatures: "default_features"
        case .controlVariation: "control_variation"
        case .staleCache: "stale_cache"
        default: "unspecified"
        }
    }
}
