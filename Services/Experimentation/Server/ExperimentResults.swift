import Contracts
import Foundation
import SwiftProtobuf

/// GetResults' analysis of one metric: per-variation summaries, lift over
/// control with a fixed-horizon or sequential test, optional CUPED, and the
/// sample-ratio-mismatch check.
enum ExperimentResults {
    /// Below this SRM p-value the split is flagged as a mismatch.
    static let srmThreshold = 0.001

    static func compute(experiment: Experiment, metricKey: String, units: [UnitMetric], cuped: Bool, sequential: Bool,
                        alpha: Double) -> Platform_Experimentation_V1_GetResultsResponse {
        // Units that saw more than one variation are contaminated: left out of every arm.
        let clean = units.filter { $0.variationCount == 1 }
        let keys = experiment.variations.map(\.key)
        var metric = Array(repeating: [Double](), count: keys.count)
        var covariate = Array(repeating: [Double](), count: keys.count)
        let position = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, $0) })
        for unit in clean {
            guard let arm = position[unit.variationKey] else { continue }
            metric[arm].append(unit.value)
            covariate[arm].append(unit.covariate)
        }
        if cuped {
            metric = ExperimentStatistics.cupedAdjust(arms: zip(metric, covariate).map { (metric: $0, covariate: $1) }).adjusted
        }
        let summaries = metric.map { SampleSummary(values: $0) }
        var response = Platform_Experimentation_V1_GetResultsResponse()
        response.experimentKey = experiment.key
        response.metricKey = metricKey
        response.computedAt = Google_Protobuf_Timestamp(date: Date())
        response.totalExposures = Int64(units.reduce(0) { $0 + $1.exposures })
        response.variations = summaries.enumerated().map { arm, summary in
            var result = Platform_Experimentation_V1_VariationResult()
            result.variationKey = keys[arm]
            result.units = Int64(summary.count)
            result.mean = summary.count > 0 ? summary.mean : .nan
            result.variance = summary.variance
            if arm == 0 {
                result.lift = 0
                result.liftCi = .with { $0.lower = 0; $0.upper = 0 }
                result.pValue = 1
            } else {
                let estimate = sequential
                    ? ExperimentStatistics.sequential(control: summaries[0], treatment: summary, alpha: alpha)
                    : ExperimentStatistics.welch(control: summaries[0], treatment: summary, alpha: alpha)
                result.lift = estimate.lift
                result.liftCi = .with { $0.lower = estimate.lower; $0.upper = estimate.upper }
                result.pValue = estimate.pValue
            }
            return result
        }
        let observed = summaries.map(\.count)
        if observed.reduce(0, +) > 0 {
            response.srmPValue = ExperimentStatistics.srmPValue(observed: observed, weights: experiment.variations.map(\.weight))
            response.srmDetected = response.srmPValue < srmThreshold
        } else {
            response.srmPValue = 1
        }
        return response
    }
}
