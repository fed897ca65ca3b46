@testable import ExperimentationServer
import Foundation
import Testing

/// The statistics GetResults reports, against reference values computed
/// with scipy (scripts/generate-statistics-fixtures.py).
@Suite struct ExperimentStatisticsTests {
    nonisolated(unsafe) static let fixture: [String: Any] = {  // read-only after load
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/experiment_statistics.json")
        guard let data = try? Data(contentsOf: url), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return object
    }()

    static var cases: [[String: Any]] { fixture["cases"] as? [[String: Any]] ?? [] }

    static func close(_ actual: Double, _ expected: Double, tolerance: Double = 1e-7) -> Bool {
        abs(actual - expected) <= tolerance * max(1, abs(expected))
    }

    static func number(_ object: [String: Any], _ key: String) -> Double { (object[key] as? NSNumber)?.doubleValue ?? .nan }
    static func values(_ object: [String: Any], _ key: String) -> [Double] { (object[key] as? [NSNumber])?.map(\.doubleValue) ?? [] }

    func check(_ estimate: LiftEstimate, against reference: [String: Any], _ name: String) {
        #expect(Self.close(estimate.lift, Self.number(reference, "lift")), "\(name): lift \(estimate.lift)")
        #expect(Self.close(estimate.lower, Self.number(reference, "lower")), "\(name): lower \(estimate.lower) vs \(Self.number(reference, "lower"))")
        #expect(Self.close(estimate.upper, Self.number(reference, "upper")), "\(name): upper \(estimate.upper) vs \(Self.number(reference, "upper"))")
        #expect(Self.close(estimate.pValue, Self.number(reference, "p_value"), tolerance: 1e-6), "\(name): p \(estimate.pValue) vs \(Self.number(reference, "p_value"))")
    }

    @Test func welchAndSequentialMatchScipy() throws {
        let lifts = Self.cases.filter { $0["kind"] as? String == "lift" }
        #expect(lifts.count >= 5)
        for reference in lifts {
            let name = reference["name"] as? String ?? "?"
            let control = SampleSummary(values: Self.values(reference, "control"))
            let treatment = SampleSummary(values: Self.values(reference, "treatment"))
            #expect(Self.close(control.mean, Self.number(reference, "control_mean")), "\(name)")
            #expect(Self.close(treatment.variance, Self.number(reference, "treatment_variance")), "\(name)")
            let alpha = Self.number(reference, "alpha")
            check(ExperimentStatistics.welch(control: control, treatment: treatment, alpha: alpha),
                  against: try #require(reference["welch"] as? [String: Any]), name + " (welch)")
            check(ExperimentStatistics.sequential(control: control, treatment: treatment, alpha: alpha),
                  against: try #require(reference["sequential"] as? [String: Any]), name + " (sequential)")
        }
    }

    @Test func cupedMatchesScipy() throws {
        let reference = try #require(Self.cases.first { $0["kind"] as? String == "cuped" })
        let (adjusted, theta) = ExperimentStatistics.cupedAdjust(arms: [
            (metric: Self.values(reference, "control"), covariate: Self.values(reference, "control_covariate")),
            (metric: Self.values(reference, "treatment"), covariate: Self.values(reference, "treatment_covariate")),
        ])
        #expect(Self.close(theta, Self.number(reference, "theta")))
        let control = SampleSummary(values: adjusted[0]), treatment = SampleSummary(values: adjusted[1])
        #expect(Self.close(control.mean, Self.number(reference, "adjusted_control_mean")))
        #expect(Self.close(treatment.variance, Self.number(reference, "adjusted_treatment_variance")))
        // CUPED shrinks the variance, so the interval is narrower than without it.
        #expect(treatment.variance < SampleSummary(values: Self.values(reference, "treatment")).variance / 2)
        check(ExperimentStatistics.welch(control: control, treatment: treatment, alpha: 0.05),
              against: try #require(reference["welch"] as? [String: Any]), "cuped")
    }

    @Test func sampleRatioMismatchMatchesScipy() {
        let cases = Self.cases.filter { $0["kind"] as? String == "srm" }
        #expect(cases.count == 4)
        for reference in cases {
            let observed = (reference["observed"] as? [NSNumber] ?? []).map(\.intValue)
            let p = ExperimentStatistics.srmPValue(observed: observed, weights: Self.values(reference, "weights"))
            #expect(Self.close(p, Self.number(reference, "p_value"), tolerance: 1e-8), "\(reference["name"] ?? ""): \(p)")
        }
    }

    @Test func studentTQuantilesMatchScipy() {
        let quantiles = Self.fixture["t_quantiles"] as? [[String: Any]] ?? []
        #expect(quantiles.count >= 20)
        for reference in quantiles {
            let p = Self.number(reference, "p"), df = Self.number(reference, "df")
            #expect(Self.close(StudentT.quantile(p, degreesOfFreedom: df), Self.number(reference, "t"), tolerance: 1e-9), "t(\(p), \(df))")
        }
    }

    @Test func undefinedWhereTheStatisticsAre() {
        let one = SampleSummary(values: [3])
        let some = SampleSummary(values: [1, 2, 3])
        #expect(one.variance.isNaN)
        #expect(ExperimentStatistics.welch(control: one, treatment: some, alpha: 0.05).pValue.isNaN)
        #expect(ExperimentStatistics.welch(control: SampleSummary(values: [0, 0, 0]), treatment: some, alpha: 0.05).lift.isNaN)
        #expect(ExperimentStatistics.srmPValue(observed: [0, 0], weights: [0.5, 0.5]) == 1)
    }
}
