import Foundation

/// Count, mean and sample variance of one arm's per-unit values.
public struct SampleSummary: Sendable, Equatable {
    public var count: Int
    public var mean: Double
    /// Sample variance (n − 1 denominator); NaN below 2 values.
    public var variance: Double

    public init(count: Int, mean: Double, variance: Double) {
        self.count = count
        self.mean = mean
        self.variance = variance
    }

    public init(values: [Double]) {
        count = values.count
        mean = values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
        if values.count < 2 {
            variance = .nan
        } else {
            let mean = self.mean
            variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
        }
    }
}

/// A treatment arm against control: relative lift, its interval, p-value.
public struct LiftEstimate: Sendable, Equatable {
    public var lift: Double
    public var lower: Double
    public var upper: Double
    public var pValue: Double

    static let undefined = LiftEstimate(lift: .nan, lower: .nan, upper: .nan, pValue: .nan)
}

/// The tests GetResults runs. Reference values for each come from scipy
/// (scripts/generate-statistics-fixtures.py → Tests/PlatformTests/Fixtures).
public enum ExperimentStatistics {
    /// Fixed-horizon test: Welch's t-test on the difference of means
    /// (Welch–Satterthwaite degrees of freedom) for the p-value, and the
    /// relative lift `(t − c) / c` with a delta-method interval at the same
    /// degrees of freedom. NaN when an arm has fewer than 2 units or the
    /// control mean is 0.
    public static func welch(control: SampleSummary, treatment: SampleSummary, alpha: Double) -> LiftEstimate {
        guard let parts = LiftParts(control: control, treatment: treatment) else { return .undefined }
        let t = parts.difference / parts.differenceStandardError
        let pValue = parts.differenceStandardError == 0 ? (parts.difference == 0 ? 1 : 0) : StudentT.twoSidedPValue(t, degreesOfFreedom: parts.degreesOfFreedom)
        let critical = StudentT.quantile(1 - alpha / 2, degreesOfFreedom: parts.degreesOfFreedom)
        let halfWidth = critical * parts.liftStandardError
        return LiftEstimate(lift: parts.lift, lower: parts.lift - halfWidth, upper: parts.lift + halfWidth, pValue: pValue)
    }

    /// Always-valid test: the interval is an asymptotic confidence sequence
    /// (Waudby-Smith et al.; GrowthBook's sequential testing), tightest near
    /// `tuning` total units; the p-value is the smallest alpha whose sequence
    /// excludes no lift, so results may be read at any time.
    public static func sequential(control: SampleSummary, treatment: SampleSummary, alpha: Double, tuning: Double = 5000) -> LiftEstimate {
        guard let parts = LiftParts(control: control, treatment: treatment) else { return .undefined }
        let n = Double(control.count + treatment.count)
        let rho = confidenceSequenceRho(alpha: alpha, tuning: tuning)
        let scaledVariance = parts.liftStandardError * parts.liftStandardError * n
        let nRho2 = n * rho * rho
        let halfWidth = (scaledVariance * 2 * (nRho2 + 1) / (n * n * rho * rho) * log((nRho2 + 1).squareRoot() / alpha)).squareRoot()
        // Solving halfWidth(α) = |lift| for α.
        let pValue = scaledVariance == 0 ? (parts.lift == 0 ? 1 : 0)
            : min(1, (nRho2 + 1).squareRoot() * exp(-parts.lift * parts.lift * n * n * rho * rho / (2 * scaledVariance * (nRho2 + 1))))
        return LiftEstimate(lift: parts.lift, lower: parts.lift - halfWidth, upper: parts.lift + halfWidth, pValue: pValue)
    }

    /// The mixing parameter that makes the sequence tightest at `tuning`
    /// units.
    static func confidenceSequenceRho(alpha: Double, tuning: Double) -> Double {
        let l = -2 * log(alpha)
        return ((l + log(l + 1)) / tuning).squareRoot()
    }

    /// CUPED: each value minus θ·(covariate − its mean), θ = cov(y, x) /
    /// var(x) pooled over all arms, so the arms stay comparable.
    public static func cupedAdjust(arms: [(metric: [Double], covariate: [Double])]) -> (adjusted: [[Double]], theta: Double) {
        let ys = arms.flatMap(\.metric), xs = arms.flatMap(\.covariate)
        guard xs.count >= 2 else { return (arms.map(\.metric), 0) }
        let meanX = xs.reduce(0, +) / Double(xs.count), meanY = ys.reduce(0, +) / Double(ys.count)
        var covariance = 0.0, varianceX = 0.0
        for (x, y) in zip(xs, ys) {
            covariance += (x - meanX) * (y - meanY)
            varianceX += (x - meanX) * (x - meanX)
        }
        let theta = varianceX == 0 ? 0 : covariance / varianceX
        return (arms.map { arm in zip(arm.metric, arm.covariate).map { $0 - theta * ($1 - meanX) } }, theta)
    }

    /// Sample-ratio mismatch: the chi-square goodness-of-fit p-value of the
    /// units per arm against the weights (normalised), k − 1 degrees of
    /// freedom.
    public static func srmPValue(observed: [Int], weights: [Double]) -> Double {
        let total = Double(observed.reduce(0, +)), weightSum = weights.reduce(0, +)
        guard observed.count >= 2, observed.count == weights.count, total > 0, weightSum > 0 else { return 1 }
        var chiSquare = 0.0
        for (count, weight) in zip(observed, weights) {
            let expected = total * weight / weightSum
            guard expected > 0 else { continue }
            chiSquare += (Double(count) - expected) * (Double(count) - expected) / expected
        }
        return Gamma.upperRegularized(Double(observed.count - 1) / 2, chiSquare / 2)
    }
}

/// The quantities both lift tests share.
private struct LiftParts {
    var difference: Double
    var differenceStandardError: Double
    var degreesOfFreedom: Double
    var lift: Double
    var liftStandardError: Double

    init?(control c: SampleSummary, treatment t: SampleSummary) {
        guard c.count >= 2, t.count >= 2, c.mean != 0, c.variance.isFinite, t.variance.isFinite else { return nil }
        let nc = Double(c.count), nt = Double(t.count)
        let vc = c.variance / nc, vt = t.variance / nt
        difference = t.mean - c.mean
        differenceStandardError = (vc + vt).squareRoot()
        let denominator = vc * vc / (nc - 1) + vt * vt / (nt - 1)
        degreesOfFreedom = denominator == 0 ? nc + nt - 2 : (vc + vt) * (vc + vt) / denominator
        lift = difference / c.mean
        // Delta method for the ratio of means.
        liftStandardError = (vt / (c.mean * c.mean) + t.mean * t.mean * vc / (c.mean * c.mean * c.mean * c.mean)).squareRoot()
    }
}

/// Student's t distribution through the regularized incomplete beta.
enum StudentT {
    static func twoSidedPValue(_ t: Double, degreesOfFreedom df: Double) -> Double {
        guard t.isFinite else { return t.isNaN ? .nan : 0 }
        return Beta.regularized(df / (df + t * t), df / 2, 0.5)
    }

    static func cdf(_ t: Double, degreesOfFreedom df: Double) -> Double {
        let tail = 0.5 * Beta.regularized(df / (df + t * t), df / 2, 0.5)
        return t >= 0 ? 1 - tail : tail
    }

    /// The quantile by bisection on the CDF: 200 halvings of a bracket are
    /// exact to double precision and cost nothing next to a database read.
    static func quantile(_ p: Double, degreesOfFreedom df: Double) -> Double {
        guard p > 0, p < 1, df > 0 else { return .nan }
        if p == 0.5 { return 0 }
        var low = -1.0, high = 1.0
        while cdf(low, degreesOfFreedom: df) > p { low *= 2 }
        while cdf(high, degreesOfFreedom: df) < p { high *= 2 }
        for _ in 0..<200 {
            let middle = (low + high) / 2
            if cdf(middle, degreesOfFreedom: df) < p { low = middle } else { high = middle }
            if high - low <= 1e-15 * max(1, abs(middle)) { break }
        }
        return (low + high) / 2
    }
}

/// The regularized incomplete beta function I_x(a, b).
enum Beta {
    static func regularized(_ x: Double, _ a: Double, _ b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logBeta: Double = lgamma(a) + lgamma(b) - lgamma(a + b)
        let logFront: Double = a * log(x) + b * log(1 - x) - logBeta
        // The continued fraction converges fast below the mean; use the
        // symmetry I_x(a, b) = 1 − I_{1−x}(b, a) above it.
        if x < (a + 1) / (a + b + 2) {
            return exp(logFront) * continuedFraction(x, a, b) / a
        }
        return 1 - exp(logFront) * continuedFraction(1 - x, b, a) / b
    }

    /// Lentz's method for the incomplete beta continued fraction.
    private static func continuedFraction(_ x: Double, _ a: Double, _ b: Double) -> Double {
        let tiny = 1e-300
        var c = 1.0
        var d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var result = d
        for m in 1...10_000 {
            let m = Double(m)
            let even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + even * d; if abs(d) < tiny { d = tiny }
            c = 1 + even / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            result *= d * c
            let odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + odd * d; if abs(d) < tiny { d = tiny }
            c = 1 + odd / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            result *= delta
            if abs(delta - 1) < 1e-16 { break }
        }
        return result
    }
}

/// The regularized upper incomplete gamma function Q(a, x).
enum Gamma {
    static func upperRegularized(_ a: Double, _ x: Double) -> Double {
        if x <= 0 { return 1 }
        if x < a + 1 { return 1 - lowerSeries(a, x) }
        return upperContinuedFraction(a, x)
    }

    /// P(a, x) by its power series (converges fast for x < a + 1).
    private static func lowerSeries(_ a: Double, _ x: Double) -> Double {
        var term = 1 / a, sum = term, n = a
        for _ in 0..<10_000 {
            n += 1
            term *= x / n
            sum += term
            if abs(term) < abs(sum) * 1e-16 { break }
        }
        let logFront: Double = a * log(x) - x - lgamma(a)
        return sum * exp(logFront)
    }

    /// Q(a, x) by Lentz's continued fraction (for x ≥ a + 1).
    private static func upperContinuedFraction(_ a: Double, _ x: Double) -> Double {
        let tiny = 1e-300
        var b = x + 1 - a
        var c = 1 / tiny
        var d = 1 / b
        var result = d
        for i in 1...10_000 {
            let an = -Double(i) * (Double(i) - a)
            b += 2
            d = an * d + b; if abs(d) < tiny { d = tiny }
            c = b + an / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            result *= delta
            if abs(delta - 1) < 1e-16 { break }
        }
        let logFront: Double = a * log(x) - x - lgamma(a)
        return exp(logFront) * result
    }
}
