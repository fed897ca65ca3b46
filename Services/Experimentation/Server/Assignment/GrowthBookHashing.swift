/// GrowthBook's bucketing functions, bit-compatible with its SDKs (checked by
/// the cross-SDK cases in the test suite). A unit's bucket is a number in
/// [0, 1) derived from its hash attribute; variations own half-open ranges
/// of it.
public enum GrowthBookHashing {
    static let fnvOffsetBasis: UInt32 = 0x811C_9DC5
    static let fnvPrime: UInt32 = 0x0100_0193

    /// FNV-1a 32 over UTF-16 code units, as JavaScript's `charCodeAt` sees
    /// the string, continuing from `state` (FNV is a stream: hashing `a + b`
    /// is hashing `b` from the state after `a`, so no string is built).
    @inlinable
    public static func fnv1a32(_ text: String, from state: UInt32 = 0x811C_9DC5) -> UInt32 {
        // ASCII (the usual id) is the same in UTF-8 and UTF-16: hash the bytes
        // in place; anything else takes the UTF-16 view.
        let ascii = text.utf8.withContiguousStorageIfAvailable { bytes -> UInt32? in
            var hash = state
            for byte in bytes {
                guard byte < 0x80 else { return nil }
                hash = (hash ^ UInt32(byte)) &* 0x0100_0193
            }
            return hash
        }
        if let hash = ascii ?? nil { return hash }
        var hash = state
        for unit in text.utf16 {
            hash = (hash ^ UInt32(unit)) &* 0x0100_0193
        }
        return hash
    }

    /// FNV-1a 32 of the decimal digits of `number`, without building them:
    /// the digits are taken off by dividing by the constant 10 (a multiply),
    /// packed four bits each, then hashed from the most significant.
    @inlinable
    static func fnv1a32(decimal number: UInt32) -> UInt32 {
        var packed: UInt64 = 0
        var count = 0
        var remaining = number
        repeat {
            packed = packed << 4 | UInt64(remaining % 10)
            remaining /= 10
            count += 1
        } while remaining > 0
        var hash: UInt32 = 0x811C_9DC5
        for position in 0..<count {
            hash = (hash ^ (48 + UInt32(truncatingIfNeeded: packed >> (4 * position)) & 0xF)) &* 0x0100_0193
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
        case 1: hashV1(value: value, seed: seed)
        case 2: hashV2(seedState: fnv1a32(seed), value: value)
        default: nil
        }
    }

    @inlinable
    static func hashV1(value: String, seed: String) -> Double {
        Double(fnv1a32(seed, from: fnv1a32(value)) % 1000) / 1000
    }

    /// Version 2 from the seed's precomputed FNV state.
    @inlinable
    static func hashV2(seedState: UInt32, value: String) -> Double {
        Double(fnv1a32(decimal: fnv1a32(value, from: seedState)) % 10000) / 10000
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
        let bucket = namespaceBucket(hashValue: hashValue, seed: "__" + id)
        return bucket >= start && bucket < end
    }

    /// The unit's place in a namespace, from its seed `"__" + id`.
    @inlinable
    static func namespaceBucket(hashValue: String, seed: String) -> Double {
        hashV1(value: hashValue, seed: seed)
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
