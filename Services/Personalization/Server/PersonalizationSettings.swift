import ServiceKit

/// How personalization ranks and how patient it is with its dependencies.
/// `defaults` is what the executable runs; tests adjust single fields.
public struct PersonalizationSettings: Sendable {
    /// The inference model that scores (user, item) pairs.
    public var modelName = "ranker"
    /// The experiment whose variation picks the model version: its
    /// variation value `{"<modelVersionKey>": "<version>"}` names it.
    public var rankingExperiment = "ranker-v2"
    public var modelVersionKey = "ranker_version"
    /// The version the control variation serves: used when experimentation
    /// cannot be asked. Nil lets the inference service's routing choose.
    public var controlModelVersion: String? = "1"
    /// The model input "features", one column per feature reference, in the
    /// order the model was trained on. `user_stats` is keyed by user_id,
    /// `catalog_items` by item_id.
    public var modelInputName = "features"
    public var modelOutputName = "score"
    public var userFeatureView = "user_stats"
    public var userFeatures = ["purchases", "spend"]
    public var itemFeatureView = "catalog_items"
    public var itemFeatures = ["price", "in_stock", "available_quantity"]
    /// The user feature naming their favourite category (candidate retrieval).
    public var affinityFeature = "favorite_category"
    /// The product attribute holding recent sales, the popularity signal.
    public var popularityAttribute = "sales_30d"

    /// Candidates scored per Recommend (at most 1000, the batch limits of
    /// the feature store and the model).
    public var candidateCount = 500
    /// Of those, at most this share comes from the user's favourite category.
    public var affinityShare = 0.5
    /// Results when the request asks for 0.
    public var defaultResults = 20
    /// Diversity: at most this many results of one category among the
    /// first `num_results` (others follow once the quota is spent).
    public var maxPerCategory = 5

    /// The whole request's budget when the caller sets no deadline.
    public var requestBudget: Duration = .milliseconds(500)
    /// Per-dependency call timeouts; each is also cut to what is left of
    /// the request's budget.
    public var timeouts = Timeouts()
    public var circuitBreaker = CircuitBreaker.Configuration.defaults

    /// User features and candidate lists are reused this long; catalog
    /// changes invalidate candidate lists at once.
    public var userFeatureCacheTTL: Duration = .seconds(5)
    public var candidateCacheTTL: Duration = .seconds(10)
    /// Item features (derived from the catalog) are reused this long, and
    /// dropped at once when the tenant's catalog changes.
    public var itemFeatureCacheTTL: Duration = .seconds(10)
    public var cacheCapacity = 100_000
    /// Tenants whose catalog is mirrored from the change feed from the start
    /// (others start on their first request), and at most how many tenants
    /// are followed at once.
    public var preloadTenants: [String] = []
    public var maxFollowedTenants = 64

    public struct Timeouts: Sendable {
        public var experimentation: Duration = .milliseconds(60)
        public var featureStore: Duration = .milliseconds(80)
        public var catalog: Duration = .milliseconds(120)
        public var inference: Duration = .milliseconds(120)
        /// Exposure logging runs after the answer is sent.
        public var exposureLogging: Duration = .seconds(2)

        public init() {}
    }

    public init() {}

    public static var defaults: PersonalizationSettings { PersonalizationSettings() }
}
