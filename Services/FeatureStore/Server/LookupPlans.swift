import Synchronization

/// What one feature selection of GetOnlineFeatures resolves to under one
/// registry: its columns, their views, the response's column names and the
/// join keys the request must carry. A model asks for the same features on
/// every call, so each registry keeps the plans it has made (`LookupPlans`)
/// and a lookup resolves its references once, not per request.
struct LookupPlan: Sendable {
    let columns: [FeatureColumn]
    /// The columns' views, each once, in order of first use.
    let views: [ResolvedView]
    /// One per column: "feature", or "view__feature" with full feature names.
    let names: [String]
    /// Every join key the views use, sorted.
    let joinKeys: [String]
    /// The response's metadata field, the same for every lookup of the
    /// plan: the join keys' names, then `names`.
    let encodedMetadata: [UInt8]

    init(columns: [FeatureColumn], views: [ResolvedView], names: [String], joinKeys: [String]) {
        self.columns = columns
        self.views = views
        self.names = names
        self.joinKeys = joinKeys
        encodedMetadata = ResultsEncoding.metadata(names: joinKeys + names)
    }
}

/// The plans made under one registry, by selection. It lives in the
/// registry value, so a registry change starts an empty one. Bounded: a
/// caller sending ever-new selections only ever fills `limit` entries.
final class LookupPlans: Sendable {
    enum Selection: Hashable, Sendable {
        case service(String)
        case references([String])
        /// A reference list as its request encoded it (`OnlineFeaturesQuery`):
        /// equal bytes, equal references.
        case encodedReferences([UInt8])

        // By hand: the synthesized hash feeds an encoded list to the hasher
        // one byte per call, which was 8% of a 1 x 50 lookup.
        func hash(into hasher: inout Hasher) {
            switch self {
            case .service(let name):
                hasher.combine(0)
                hasher.combine(name)
            case .references(let references):
                hasher.combine(1)
                hasher.combine(references)
            case .encodedReferences(let bytes):
                hasher.combine(2)
                hasher.combine(bytes.count)
                bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
            }
        }
    }

    struct Key: Hashable, Sendable {
        var selection: Selection
        var fullFeatureNames: Bool
    }

    private let plans = Mutex<[Key: LookupPlan]>([:])
    private let limit: Int

    init(limit: Int = 512) { self.limit = limit }

    /// The plan for `key`, made by `make` (outside the lock) when missing;
    /// `make`'s errors are the request's, and nothing is kept for them.
    func plan(for key: Key, make: () throws -> LookupPlan) rethrows -> LookupPlan {
        if let plan = plans.withLock({ $0[key] }) { return plan }
        let plan = try make()
        plans.withLock { plans in
            if plans.count >= limit { plans.removeAll(keepingCapacity: true) }
            plans[key] = plan
        }
        return plan
    }
}
