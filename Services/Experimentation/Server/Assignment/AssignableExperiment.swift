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
    /// Experiments prepared together (`prepare`) share one slot per distinct
    /// condition: assigning a unit to all of them evaluates each once.
    let conditionSlot: Int?
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
    /// The parts of an encoded `Assignment` fixed by the experiment.
    let wire: AssignmentWireFields
    private let wireStorage: AssignmentWireFields.Storage
    /// The namespace slice, with its hash seed `"__" + id` made once.
    let namespace: (seed: String, start: Double, end: Double)?
    /// Whether first assignments are stored and kept (sticky assignment).
    public let isSticky: Bool

    struct PreparedFilter: Sendable {
        var attribute: String
        var seed: String
        var hashVersion: Int
        var ranges: [ClosedOpenRange]
    }

    /// Distinct targeting conditions of experiments prepared together,
    /// each compiled once and given a slot in `UnitLookups`.
    public struct ConditionTable {
        private var slots: [JSONValue: (condition: TargetingCondition, slot: Int)] = [:]

        public init() {}

        public var count: Int { slots.count }

        mutating func intern(_ condition: JSONValue) -> (condition: TargetingCondition, slot: Int) {
            if let known = slots[condition] { return known }
            let made = (TargetingCondition(condition), slots.count)
            slots[condition] = made
            return made
        }
    }

    /// A tenant's experiments prepared together: those with equal targeting
    /// conditions share them (audiences like "country in DE, AT" are usually
    /// reused). Pass `conditionCount` to `UnitLookups`.
    public static func prepare(_ experiments: [Experiment]) -> (experiments: [AssignableExperiment], conditionCount: Int) {
        var table: ConditionTable? = ConditionTable()
        let prepared = experiments.map { AssignableExperiment($0, conditions: &table) }
        return (prepared, table?.count ?? 0)
    }

    public convenience init(_ experiment: Experiment) {
        var alone: ConditionTable?
        self.init(experiment, conditions: &alone)
    }

    init(_ experiment: Experiment, conditions: inout ConditionTable?) {
        self.experiment = experiment
        ranges = GrowthBookHashing.bucketRanges(
            variations: experiment.variations.count,
            coverage: experiment.hasCoverage ? experiment.coverage : nil,
            weights: experiment.variations.map(\.weight))
        if experiment.hasCondition && !experiment.condition.fields.isEmpty {
            let json = JSONValue(experiment.condition)
            if let shared = conditions?.intern(json) {
                condition = shared.condition
                conditionSlot = shared.slot
            } else {
                condition = TargetingCondition(json)
                conditionSlot = nil
            }
        } else {
            condition = nil
            conditionSlot = nil
        }
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
        (wire, wireStorage) = AssignmentWireFields.make(experiment, hashAttribute: hashAttribute)
        namespace = experiment.hasNamespace && !experiment.namespace.id.isEmpty
            ? ("__" + experiment.namespace.id, experiment.namespace.rangeStart, experiment.namespace.rangeEnd) : nil
        start = experiment.hasStartTime ? experiment.startTime.date : nil
        end = experiment.hasEndTime ? experiment.endTime.date : nil
    }

    /// What assignment decided for one unit: everything an `Assignment`
    /// says, without building one (GetAssignments writes it straight to
    /// bytes with `AssignmentsEncoder`). Plain values only, so deciding 50
    /// experiments copies no reference: the hashed value itself is in
    /// `UnitLookups.units`.
    public struct Decision: Sendable {
        public var reason: Assignment.Reason
        /// The variation shown: the assigned one, the winner for FORCED,
        /// control (0) otherwise.
        public var index = 0
        /// The unit that was hashed, as an index into `UnitLookups.units`;
        /// nil when none was.
        public var unitIndex: Int?
        /// Set once the unit was hashed into the experiment.
        public var bucket: Double?
        /// The variation is the unit's stored sticky assignment.
        public var sticky = false

        init(_ reason: Assignment.Reason, index: Int = 0) {
            self.reason = reason
            self.index = index
        }

        /// Only ASSIGNED units count in the analysis.
        public var inExperiment: Bool { reason == .assigned }
    }

    /// One unit's hash input as the last experiment found it: most
    /// experiments hash the same attribute, so assigning a unit to many looks
    /// it up once rather than once per experiment.
    public struct UnitLookups {
        fileprivate var last: (hashAttribute: String, fallbackAttribute: String, unit: Int?)?
        /// The distinct hash inputs this unit's decisions used, which their
        /// `unitIndex` points at (usually one: most experiments hash `id`).
        public fileprivate(set) var units: [HashedUnit] = []
        /// Whether the unit meets each shared condition, once evaluated.
        fileprivate var conditions: [Bool?]
        /// The unit's bucket in the namespace last checked: experiments
        /// made mutually exclusive share their namespace, so a unit is
        /// hashed into it once.
        fileprivate var namespace: (seed: String, value: String, bucket: Double)?

        /// `conditionCount` from `prepare`; 0 evaluates every condition.
        public init(conditionCount: Int = 0) {
            conditions = Array(repeating: nil, count: conditionCount)
        }
    }

    /// The attribute a unit was hashed by, and its value as hashed.
    public struct HashedUnit: Sendable {
        /// `fallback_attribute` was used because `hash_attribute` had no value.
        public var isFallback: Bool
        public var value: String
    }

    /// The value a sticky assignment of `attributes` is stored under (the
    /// hash value), or nil when the unit has none.
    public func stickyUnit(_ attributes: [String: JSONValue]) -> String? {
        isSticky ? hashInput(attributes)?.value : nil
    }

    /// The variation `attributes` get, and why, as an `Assignment` message.
    public func assign(_ attributes: [String: JSONValue], now: Date, stickyVariation: String? = nil) -> Assignment {
        var lookups = UnitLookups()
        let decision = decide(attributes, now: now, stickyVariation: stickyVariation, lookups: &lookups)
        var result = Assignment()
        result.experimentKey = key
        result.reason = decision.reason
        result.variationIndex = Int32(decision.index)
        result.inExperiment = decision.inExperiment
        result.sticky = decision.sticky
        if let index = decision.unitIndex {
            let unit = lookups.units[index]
            result.hashAttribute = unit.isFallback ? fallbackAttribute : hashAttribute
            result.hashValue_p = unit.value
        }
        if let bucket = decision.bucket { result.bucket = bucket }
        if variationKeys.indices.contains(decision.index) {
            result.variationKey = variationKeys[decision.index]
            if let value = variationValues[decision.index] { result.value = value }
        }
        return result
    }

    /// The variation `attributes` get, and why; the checks run in the order
    /// GetAssignments documents (GrowthBook's order). `stickyVariation` is
    /// the unit's stored sticky assignment: as in GrowthBook, it skips the
    /// filter, namespace and coverage checks, not targeting. `lookups`
    /// carries the unit's hash input from one experiment to the next that
    /// hashes the same attributes, and holds the value the decision's
    /// `unitIndex` points at.
    public func decide(_ attributes: [String: JSONValue], now: Date, stickyVariation: String? = nil,
                       lookups: inout UnitLookups) -> Decision {
        switch status {
        case .running:
            if let start, now < start { return Decision(.notRunning) }
            if let end, now >= end { return Decision(.notRunning) }
        case .stopped:
            guard let forcedIndex else { return Decision(.notRunning) }
            if !isTargeted(attributes, lookups: &lookups) { return Decision(.notTargeted) }
            return Decision(.forced, index: forcedIndex)
        default:
            return Decision(.notRunning)
        }

        let unitIndex: Int?
        if let last = lookups.last, last.hashAttribute == hashAttribute, last.fallbackAttribute == fallbackAttribute {
            unitIndex = last.unit
        } else {
            unitIndex = hashInput(attributes).map { unit in
                lookups.units.append(unit)
                return lookups.units.count - 1
            }
            lookups.last = (hashAttribute, fallbackAttribute, unitIndex)
        }
        guard let unitIndex else { return Decision(.noHashAttribute) }
        let unit = lookups.units[unitIndex]
        var decision = Decision(.notInCoverage)
        decision.unitIndex = unitIndex

        let stickyIndex = stickyVariation.flatMap { variationKeys.firstIndex(of: $0) }
        if stickyIndex != nil {
            // Already in: filters and namespace only decide who enters.
        } else if !filters.isEmpty {
            if filters.contains(where: { isFilteredOut($0, attributes) }) { decision.reason = .filtered; return decision }
        } else if let namespace {
            let bucket: Double
            if let last = lookups.namespace, last.seed == namespace.seed, last.value == unit.value {
                bucket = last.bucket
            } else {
                bucket = GrowthBookHashing.namespaceBucket(hashValue: unit.value, seed: namespace.seed)
                lookups.namespace = (namespace.seed, unit.value, bucket)
            }
            if !(bucket >= namespace.start && bucket < namespace.end) {
                decision.reason = .notInNamespace
                return decision
            }
        }
        if !isTargeted(attributes, lookups: &lookups) { decision.reason = .notTargeted; return decision }
        if let stickyIndex {
            decision.reason = .assigned
            decision.index = stickyIndex
            decision.sticky = true
            return decision
        }

        let bucket: Double
        switch hashVersion {
        case 1: bucket = GrowthBookHashing.hashV1(value: unit.value, seed: seed)
        case 2: bucket = GrowthBookHashing.hashV2(seedState: seedState, value: unit.value)
        default: return decision
        }
        decision.bucket = bucket
        let index = GrowthBookHashing.chooseVariation(bucket: bucket, ranges: ranges)
        guard index >= 0 else { return decision }
        decision.reason = .assigned
        decision.index = index
        return decision
    }

    /// Whether the unit meets the targeting condition (true without one),
    /// from `lookups` when another experiment shares it.
    private func isTargeted(_ attributes: [String: JSONValue], lookups: inout UnitLookups) -> Bool {
        guard let condition else { return true }
        guard let slot = conditionSlot, lookups.conditions.indices.contains(slot) else { return condition.matches(.object(attributes)) }
        if let known = lookups.conditions[slot] { return known }
        let result = condition.matches(.object(attributes))
        lookups.conditions[slot] = result
        return result
    }

    /// The hashed attribute and its value as JavaScript's `String()` prints
    /// it; falsy values (missing, null, "", 0, false) count as absent, as in
    /// GrowthBook.
    private func hashInput(_ attributes: [String: JSONValue]) -> HashedUnit? {
        if let value = attributes[hashAttribute], value.isTruthy { return HashedUnit(isFallback: false, value: value.jsString) }
        if !fallbackAttribute.isEmpty, let value = attributes[fallbackAttribute], value.isTruthy {
            return HashedUnit(isFallback: true, value: value.jsString)
        }
        return nil
    }

    private func isFilteredOut(_ filter: PreparedFilter, _ attributes: [String: JSONValue]) -> Bool {
        guard let value = attributes[filter.attribute], value.isTruthy,
              let bucket = GrowthBookHashing.hash(seed: filter.seed, value: value.jsString, version: filter.hashVersion)
        else { return true }
        return !filter.ranges.contains { $0.contains(bucket) }
    }
}
