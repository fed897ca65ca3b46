import Contracts
import Foundation
import SwiftProtobuf

public typealias Experiment = Platform_Experimentation_V1_Experiment
public typealias Assignment = Platform_Experimentation_V1_Assignment

/// An experiment prepared for assignment: defaults, bucket ranges and the
/// targeting condition resolved once when it is loaded, so assigning a unit
/// is a few hashes and comparisons.
public struct AssignableExperiment: Sendable {
    public let experiment: Experiment
    let ranges: [ClosedOpenRange]
    let condition: TargetingCondition?
    let hashAttribute: String
    let fallbackAttribute: String
    let seed: String
    let hashVersion: Int
    /// FNV state after the seed, for version 2 hashes.
    let seedState: UInt32
    let forcedIndex: Int?
    let filters: [PreparedFilter]
    let start: Date?
    let end: Date?
    // Copied out of the message once: reading through its storage on every
    // assignment costs more than the hashing.
    let key: String
    let status: Experiment.Status
    let variationKeys: [String]
    let variationValues: [Google_Protobuf_Value?]
    let namespace: (id: String, start: Double, end: Double)?

    struct PreparedFilter: Sendable {
        var attribute: String
        var seed: String
        var hashVersion: Int
        var ranges: [ClosedOpenRange]
    }

    public init(_ experiment: Experiment) {
        self.experiment = experiment
        ranges = GrowthBookHashing.bucketRanges(
            variations: experiment.variations.count,
            coverage: experiment.hasCoverage ? experiment.coverage : nil,
            weights: experiment.variations.map(\.weight))
        condition = experiment.hasCondition && !experiment.condition.fields.isEmpty
            ? TargetingCondition(JSONValue(experiment.condition)) : nil
        hashAttribute = experiment.hashAttribute.isEmpty ? "id" : experiment.hashAttribute
        fallbackAttribute = experiment.fallbackAttribute
        seed = experiment.seed.isEmpty ? experiment.key : experiment.seed
        hashVersion = experiment.hashVersion == 0 ? 2 : Int(experiment.hashVersion)
        seedState = GrowthBookHashing.fnv1a32(seed)
        forcedIndex = experiment.forcedVariationKey.isEmpty ? nil : experiment.variations.firstIndex { $0.key == experiment.forcedVariationKey }
        filters = experiment.filters.map { filter in
            PreparedFilter(attribute: filter.attribute.isEmpty ? "id" : filter.attribute, seed: filter.seed,
                           hashVersion: filter.hashVersion == 0 ? 2 : Int(filter.hashVersion),
                           ranges: filter.ranges.map { ClosedOpenRange($0.start, $0.end) })
        }
        key = experiment.key
        status = experiment.status
        variationKeys = experiment.variations.map(\.key)
        variationValues = experiment.variations.map { $0.hasValue ? $0.value : nil }
        namespace = experiment.hasNamespace && !experiment.namespace.id.isEmpty
            ? (experiment.namespace.id, experiment.namespace.rangeStart, experiment.namespace.rangeEnd) : nil
        start = experiment.hasStartTime ? experiment.startTime.date : nil
        end = experiment.hasEndTime ? experiment.endTime.date : nil
    }

    /// The variation `attributes` get, and why; the checks run in the order
    /// GetAssignments documents (GrowthBook's order).
    public func assign(_ attributes: [String: JSONValue], now: Date) -> Assignment {
        var result = Assignment()
        result.experimentKey = key
        switch status {
        case .running:
            if let start, now < start { return finish(&result, .notRunning) }
            if let end, now >= end { return finish(&result, .notRunning) }
        case .stopped:
            guard let forcedIndex else { return finish(&result, .notRunning) }
            if let condition, !condition.matches(.object(attributes)) { return finish(&result, .notTargeted) }
            return finish(&result, .forced, index: forcedIndex)
        default:
            return finish(&result, .notRunning)
        }

        guard let (attribute, unitHash) = hashInput(attributes) else { return finish(&result, .noHashAttribute) }
        result.hashAttribute = attribute
        result.hashValue_p = unitHash

        if !filters.isEmpty {
            if filters.contains(where: { isFilteredOut($0, attributes) }) { return finish(&result, .filtered) }
        } else if let namespace {
            if !GrowthBookHashing.inNamespace(hashValue: unitHash, id: namespace.id, start: namespace.start, end: namespace.end) {
                return finish(&result, .notInNamespace)
            }
        }
        if let condition, !condition.matches(.object(attributes)) { return finish(&result, .notTargeted) }

        let bucket: Double
        switch hashVersion {
        case 1: bucket = GrowthBookHashing.hashV1(value: unitHash, seed: seed)
        case 2: bucket = GrowthBookHashing.hashV2(seedState: seedState, value: unitHash)
        default: return finish(&result, .notInCoverage)
        }
        result.bucket = bucket
        let index = GrowthBookHashing.chooseVariation(bucket: bucket, ranges: ranges)
        guard index >= 0 else { return finish(&result, .notInCoverage) }
        result.inExperiment = true
        return finish(&result, .assigned, index: index)
    }

    private func finish(_ result: inout Assignment, _ reason: Assignment.Reason, index: Int = 0) -> Assignment {
        result.reason = reason
        result.variationIndex = Int32(index)
        if variationKeys.indices.contains(index) {
            result.variationKey = variationKeys[index]
            if let value = variationValues[index] { result.value = value }
        }
        return result
    }

    /// The hashed attribute and its value as JavaScript's `String()` prints
    /// it; falsy values (missing, null, "", 0, false) count as absent, as in
    /// GrowthBook.
    private func hashInput(_ attributes: [String: JSONValue]) -> (String, String)? {
        if let value = attributes[hashAttribute], value.isTruthy { return (hashAttribute, value.jsString) }
        if !fallbackAttribute.isEmpty, let value = attributes[fallbackAttribute], value.isTruthy { return (fallbackAttribute, value.jsString) }
        return nil
    }

    private func isFilteredOut(_ filter: PreparedFilter, _ attributes: [String: JSONValue]) -> Bool {
        guard let value = attributes[filter.attribute], value.isTruthy,
              let bucket = GrowthBookHashing.hash(seed: filter.seed, value: value.jsString, version: filter.hashVersion)
        else { return true }
        return !filter.ranges.contains { $0.contains(bucket) }
    }
}
