import Contracts
import Foundation
import SwiftProtobuf

public typealias Experiment = Platform_Experimentation_V1_Experiment
public typealias Assignment = Platform_Experimentation_V1_Assignment

/// An experiment prepared for assignment: defaults, bucket ranges and the
/// targeting condition resolved once when it is loaded, so assigning a unit
/// is a few hashes and comparisons.
public final class AssignableExperiment: Sendable {
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
    /// Each variation's `Assignment.value` field already encoded, carried as
    /// unknown fields: SwiftProtobuf writes those bytes as they are, where
    /// encoding the Struct anew for every response cost more than assigning.
    let encodedValues: [UnknownStorage]
    let namespace: (id: String, start: Double, end: Double)?
    /// Whether first assignments are stored and kept (sticky assignment).
    public let isSticky: Bool

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
        isSticky = experiment.stickyAssignment
        variationKeys = experiment.variations.map(\.key)
        variationValues = experiment.variations.map { $0.hasValue ? $0.value : nil }
        encodedValues = experiment.variations.map { variation in
            guard variation.hasValue, let value: Data = try? variation.value.serializedBytes() else { return UnknownStorage() }
            var field = Data([9 << 3 | 2])  // Assignment.value: field 9, length-delimited
            var length = value.count
            while length >= 0x80 {
                field.append(UInt8(length & 0x7F | 0x80))
                length >>= 7
            }
            field.append(UInt8(length))
            field.append(value)
            // An Empty message keeps every field it reads as unknown.
            return (try? Google_Protobuf_Empty(serializedBytes: field))?.unknownFields ?? UnknownStorage()
        }
        namespace = experiment.hasNamespace && !experiment.namespace.id.isEmpty
            ? (experiment.namespace.id, experiment.namespace.rangeStart, experiment.namespace.rangeEnd) : nil
        start = experiment.hasStartTime ? experiment.startTime.date : nil
        end = experiment.hasEndTime ? experiment.endTime.date : nil
    }

    /// How `assign` returns the variation's payload.
    public enum PayloadForm: Sendable {
        /// In `Assignment.value`.
        case message
        /// Pre-encoded in the unknown fields, for an Assignment that is only
        /// serialized (it decodes as `value` on the other side).
        case encoded
    }

    /// The value a sticky assignment of `attributes` is stored under (the
    /// hash value), or nil when the unit has none.
    public func stickyUnit(_ attributes: [String: JSONValue]) -> String? {
        isSticky ? hashInput(attributes)?.1 : nil
    }

    /// The variation `attributes` get, and why; the checks run in the order
    /// GetAssignments documents (GrowthBook's order). `stickyVariation` is
    /// the unit's stored sticky assignment: as in GrowthBook, it skips the
    /// filter, namespace and coverage checks, not targeting.
    public func assign(_ attributes: [String: JSONValue], now: Date, stickyVariation: String? = nil,
                       payload: PayloadForm = .message) -> Assignment {
        var result = Assignment()
        result.experimentKey = key
        switch status {
        case .running:
            if let start, now < start { return finish(&result, .notRunning, payload: payload) }
            if let end, now >= end { return finish(&result, .notRunning, payload: payload) }
        case .stopped:
            guard let forcedIndex else { return finish(&result, .notRunning, payload: payload) }
            if let condition, !condition.matches(.object(attributes)) { return finish(&result, .notTargeted, payload: payload) }
            return finish(&result, .forced, index: forcedIndex, payload: payload)
        default:
            return finish(&result, .notRunning, payload: payload)
        }

        guard let (attribute, unitHash) = hashInput(attributes) else { return finish(&result, .noHashAttribute, payload: payload) }
        result.hashAttribute = attribute
        result.hashValue_p = unitHash

        let stickyIndex = stickyVariation.flatMap { variationKeys.firstIndex(of: $0) }
        if stickyIndex != nil {
            // Already in: filters and namespace only decide who enters.
        } else if !filters.isEmpty {
            if filters.contains(where: { isFilteredOut($0, attributes) }) { return finish(&result, .filtered, payload: payload) }
        } else if let namespace {
            if !GrowthBookHashing.inNamespace(hashValue: unitHash, id: namespace.id, start: namespace.start, end: namespace.end) {
                return finish(&result, .notInNamespace, payload: payload)
            }
        }
        if let condition, !condition.matches(.object(attributes)) { return finish(&result, .notTargeted, payload: payload) }
        if let stickyIndex {
            result.inExperiment = true
            result.sticky = true
            return finish(&result, .assigned, index: stickyIndex, payload: payload)
        }

        let bucket: Double
        switch hashVersion {
        case 1: bucket = GrowthBookHashing.hashV1(value: unitHash, seed: seed)
        case 2: bucket = GrowthBookHashing.hashV2(seedState: seedState, value: unitHash)
        default: return finish(&result, .notInCoverage, payload: payload)
        }
        result.bucket = bucket
        let index = GrowthBookHashing.chooseVariation(bucket: bucket, ranges: ranges)
        guard index >= 0 else { return finish(&result, .notInCoverage, payload: payload) }
        result.inExperiment = true
        return finish(&result, .assigned, index: index, payload: payload)
    }

    private func finish(_ result: inout Assignment, _ reason: Assignment.Reason, index: Int = 0, payload: PayloadForm) -> Assignment {
        result.reason = reason
        result.variationIndex = Int32(index)
        if variationKeys.indices.contains(index) {
            result.variationKey = variationKeys[index]
            switch payload {
            case .message: if let value = variationValues[index] { result.value = value }
            case .encoded: result.unknownFields = encodedValues[index]
            }
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
