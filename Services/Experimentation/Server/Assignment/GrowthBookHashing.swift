/// GrowthBook's bucketing functions, bit-compatible with its SDKs (checked by
/// the cross-SDK cases in the test suite). A unit's bucket is a number in
/// [0, 1) derived from its hash attribute; variations own half-open ranges
/// of it.
public enum GrowthBookHashing {
    /// FNV-1a 32 over UTF-16 code units, as JavaScript's `charCodeAt` sees
    /// the string.
    @inlinable
    public static func fnv1a32(_ text: String) -> UInt32 {
        var hash: UInt32 = 0x811C_9DC5
        for unit in text.utf16 {
            hash ^= UInt32(unit)
            hash = hash &* 0x0100_0193
        }
        return hash
    }

    /// The bucket of `value` under `seed`: version 1 is
    /// `(fnv(value + seed) % 1000) / 1000`, version 2 hashes the decimal
    /// string of `fnv(seed + value)` again, `% 10000 / 10000`. Nil for an
    /// unknown version.
    @inlinable
    public static func hash(seed: String, value: String, version: Int) -> Double? {
        switch version {
        case 1: Double(fnv1a32(value + seed) % 1000) / 1000
        case 2: Double(fnv1a32(String(fnv1a32(seed + value))) % 10000) / 10000
        default: nil
        }
    }

    /// `n` equal weights; none for `n <= 0`.
    public static func equalWeights(_ count: Int) -> [Double] {
        count <= 0 ? [] : Array(repeating: 1 / Double(count), count: count)
    }

    /// The hash range of each variation: weights default to equal when
    /// missing, of the wrong length or not summing to 1 within 0.01; each
    /// range starts at the cumulative weight and spans `coverage × weight`,
    /// so raising coverage adds units without moving any.
    public static func bucketRanges(variations: Int, coverage: Double?, weights: [Double]?) -> [ClosedOpenRange] {
        let coverage = min(max(coverage ?? 1, 0), 1)
        let equal = equalWeights(variations)
        var weights = weights ?? equal
        if weights.count != variations { weights = equal }
        let total = weights.reduce(0, +)
        if total < 0.99 || total > 1.01 { weights = equal }
        var cumulative = 0.0
        return weights.map { weight in
            let start = cumulative
            cumulative += weight
            return ClosedOpenRange(start, start + coverage * weight)
        }
    }

    /// The index of the range holding `bucket`, or -1.
    public static func chooseVariation(bucket: Double, ranges: [ClosedOpenRange]) -> Int {
        ranges.firstIndex { $0.contains(bucket) } ?? -1
    }

    /// Whether the unit lies in a namespace slice: its version 1 hash,
    /// seeded with `"__" + id`, in `[start, end)`.
    public static func inNamespace(hashValue: String, id: String, start: Double, end: Double) -> Bool {
        guard let bucket = hash(seed: "__" + id, value: hashValue, version: 1) else { return false }
        return bucket >= start && bucket < end
    }
}

/// `[lower, upper)` of bucket values.
public struct ClosedOpenRange: Sendable, Hashable {
    public var lower: Double
    public var upper: Double

    public init(_ lower: Double, _ upper: Double) {
        self.lower = lower
        self.upper = upper
    }

    @inlinable
    public func contains(_ value: Double) -> Bool { value >= lower && value < upper }
}
