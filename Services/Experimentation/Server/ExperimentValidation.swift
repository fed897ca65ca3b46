import Contracts
import Foundation
import StandardServices
import SwiftProtobuf

/// The rules an experiment must satisfy to be stored, as field violations.
enum ExperimentValidation {
    static let maxConditionBytes = 64 * 1024

    static func isKey(_ text: String, maxLength: Int) -> Bool {
        !text.isEmpty && text.utf8.count <= maxLength && text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
    }

    static func keyViolations(_ key: String, field: String) -> [FieldViolation] {
        isKey(key, maxLength: 128) ? [] : [FieldViolation(field, "must be 1-128 characters of [A-Za-z0-9._-], got \"\(key.prefix(140))\"")]
    }

    /// Everything wrong with `experiment`, each violation naming its field
    /// under `prefix` (e.g. `experiment.variations[2].weight`).
    static func violations(_ experiment: Experiment, prefix: String = "experiment") -> [FieldViolation] {
        var violations = keyViolations(experiment.key, field: "\(prefix).key")
        func check(_ ok: Bool, _ field: String, _ description: @autoclosure () -> String) {
            if !ok { violations.append(FieldViolation("\(prefix).\(field)", description())) }
        }
        check(experiment.name.count <= 256, "name", "at most 256 characters")
        check(experiment.description_p.count <= 10_000, "description", "at most 10,000 characters")
        check((2...20).contains(experiment.variations.count), "variations", "needs 2 to 20 variations, got \(experiment.variations.count)")
        var seen = Set<String>()
        for (index, variation) in experiment.variations.enumerated() {
            let field = "variations[\(index)]"
            check(isKey(variation.key, maxLength: 64), "\(field).key", "must be 1-64 characters of [A-Za-z0-9._-]")
            check(seen.insert(variation.key).inserted, "\(field).key", "duplicate variation key \"\(variation.key)\"")
            check(variation.weight >= 0 && variation.weight <= 1 && variation.weight.isFinite, "\(field).weight", "must be in [0, 1], got \(variation.weight)")
            check(variation.name.count <= 256, "\(field).name", "at most 256 characters")
            check(!variation.hasValue || ((try? variation.value.serializedBytes() as Data)?.count ?? 0) <= maxConditionBytes, "\(field).value", "at most 64 KiB")
        }
        let total = experiment.variations.reduce(0) { $0 + $1.weight }
        if experiment.variations.count >= 2 {
            check(abs(total - 1) <= 0.01, "variations", "weights must sum to 1 within 0.01, got \(total)")
        }
        if experiment.hasCoverage {
            check(experiment.coverage >= 0 && experiment.coverage <= 1, "coverage", "must be in [0, 1], got \(experiment.coverage)")
        }
        check(experiment.hashAttribute.count <= 128, "hash_attribute", "at most 128 characters")
        check(experiment.fallbackAttribute.count <= 128, "fallback_attribute", "at most 128 characters")
        check(experiment.seed.count <= 128, "seed", "at most 128 characters")
        check([0, 1, 2].contains(experiment.hashVersion), "hash_version", "must be 1 or 2 (0 means 2), got \(experiment.hashVersion)")
        if experiment.hasNamespace {
            let namespace = experiment.namespace
            check(!namespace.id.isEmpty && namespace.id.count <= 128, "namespace.id", "must be 1-128 characters")
            check(rangeIsValid(namespace.rangeStart, namespace.rangeEnd), "namespace",
                  "range must satisfy 0 <= range_start < range_end <= 1, got [\(namespace.rangeStart), \(namespace.rangeEnd))")
        }
        for (index, filter) in experiment.filters.enumerated() {
            let field = "filters[\(index)]"
            check(!filter.seed.isEmpty && filter.seed.count <= 128, "\(field).seed", "must be 1-128 characters")
            check([0, 1, 2].contains(filter.hashVersion), "\(field).hash_version", "must be 1 or 2 (0 means 2)")
            check(!filter.ranges.isEmpty, "\(field).ranges", "needs at least one range")
            for (r, range) in filter.ranges.enumerated() {
                check(rangeIsValid(range.start, range.end), "\(field).ranges[\(r)]", "must satisfy 0 <= start < end <= 1")
            }
        }
        if experiment.hasCondition {
            let size = (try? experiment.condition.serializedBytes() as Data)?.count ?? 0
            check(size <= maxConditionBytes, "condition", "at most 64 KiB, got \(size) bytes")
            for problem in TargetingCondition.problems(JSONValue(experiment.condition), path: "") {
                violations.append(FieldViolation("\(prefix).condition", problem.hasPrefix(".") ? String(problem.dropFirst()) : problem))
            }
        }
        if !experiment.forcedVariationKey.isEmpty {
            check(experiment.variations.contains { $0.key == experiment.forcedVariationKey }, "forced_variation_key",
                  "names no variation: \"\(experiment.forcedVariationKey)\"")
        }
        if experiment.hasStartTime, experiment.hasEndTime {
            check(experiment.endTime.date > experiment.startTime.date, "end_time", "must be after start_time")
        }
        check(experiment.tags.count <= 50, "tags", "at most 50 tags")
        for (index, tag) in experiment.tags.enumerated() {
            check(!tag.isEmpty && tag.count <= 64, "tags[\(index)]", "must be 1-64 characters")
        }
        check(experiment.owner.count <= 256, "owner", "at most 256 characters")
        check(experiment.metricKeys.count <= 50, "metric_keys", "at most 50 metric keys")
        for (index, key) in experiment.metricKeys.enumerated() {
            check(isKey(key, maxLength: 128), "metric_keys[\(index)]", "must be 1-128 characters of [A-Za-z0-9._-]")
        }
        return violations
    }

    private static func rangeIsValid(_ start: Double, _ end: Double) -> Bool {
        start >= 0 && start < end && end <= 1
    }

    /// Status changes UpdateExperiment allows.
    static func allowedTransition(from current: Experiment.Status, to next: Experiment.Status) -> Bool {
        switch (current, next) {
        case _ where current == next: true
        case (.draft, .running), (.running, .stopped), (.stopped, .running): true
        default: false
        }
    }

    /// Fields whose change would move units already assigned by a running
    /// experiment.
    /// A sticky experiment's assigned units keep their variation whatever
    /// the split says, so only the keys, seed and hashing matter there.
    static func reassigningChanges(from current: Experiment, to next: Experiment) -> [String] {
        var fields: [String] = []
        let weightsChanged = current.variations.map(\.weight) != next.variations.map(\.weight)
        if current.variations.map(\.key) != next.variations.map(\.key) || (weightsChanged && !current.stickyAssignment) {
            fields.append("variations")
        }
        if current.seed != next.seed { fields.append("seed") }
        if current.hashAttribute != next.hashAttribute { fields.append("hash_attribute") }
        if current.fallbackAttribute != next.fallbackAttribute { fields.append("fallback_attribute") }
        if current.hashVersion != next.hashVersion { fields.append("hash_version") }
        if current.stickyAssignment { return fields }
        if current.namespace != next.namespace || current.hasNamespace != next.hasNamespace { fields.append("namespace") }
        if current.filters != next.filters { fields.append("filters") }
        let coverage = { (e: Experiment) in e.hasCoverage ? e.coverage : 1 }
        if coverage(next) < coverage(current) { fields.append("coverage (lowered)") }
        return fields
    }
}

/// AIP-134 update masks over Experiment.
enum ExperimentMask {
    static let writable: [String] = [
        "name", "description", "variations", "coverage", "hash_attribute", "fallback_attribute", "seed", "hash_version",
        "namespace", "filters", "condition", "status", "forced_variation_key", "start_time", "end_time", "tags", "owner",
        "metric_keys",
    ]
    static let outputOnly: Set<String> = ["key", "create_time", "update_time", "etag", "sticky_assignment"]

    static func violations(_ paths: [String]) -> [FieldViolation] {
        paths.compactMap { path in
            if writable.contains(path) { return nil }
            if outputOnly.contains(path) { return FieldViolation("update_mask", "\(path) cannot be changed") }
            return FieldViolation("update_mask", "unknown field path \"\(path)\"")
        }
    }

    /// `current` with the masked fields taken from `source`; an empty mask
    /// means every writable field.
    static func apply(_ paths: [String], from source: Experiment, to current: Experiment) -> Experiment {
        var result = current
        for path in paths.isEmpty ? writable : paths {
            switch path {
            case "name": result.name = source.name
            case "description": result.description_p = source.description_p
            case "variations": result.variations = source.variations
            case "coverage": if source.hasCoverage { result.coverage = source.coverage } else { result.clearCoverage() }
            case "hash_attribute": result.hashAttribute = source.hashAttribute
            case "fallback_attribute": result.fallbackAttribute = source.fallbackAttribute
            case "seed": result.seed = source.seed
            case "hash_version": result.hashVersion = source.hashVersion
            case "namespace": if source.hasNamespace { result.namespace = source.namespace } else { result.clearNamespace() }
            case "filters": result.filters = source.filters
            case "condition": if source.hasCondition { result.condition = source.condition } else { result.clearCondition() }
            case "status": result.status = source.status
            case "forced_variation_key": result.forcedVariationKey = source.forcedVariationKey
            case "start_time": if source.hasStartTime { result.startTime = source.startTime } else { result.clearStartTime() }
            case "end_time": if source.hasEndTime { result.endTime = source.endTime } else { result.clearEndTime() }
            case "tags": result.tags = source.tags
            case "owner": result.owner = source.owner
            case "metric_keys": result.metricKeys = source.metricKeys
            default: break
            }
        }
        return result
    }

    /// The writable fields whose values differ, in mask order.
    static func changedFields(from before: Experiment, to after: Experiment) -> [String] {
        let beforeJSON = jsonFields(before), afterJSON = jsonFields(after)
        return writable.filter { beforeJSON[jsonName($0)] != afterJSON[jsonName($0)] }
    }

    /// The experiment's fields in proto3 JSON form; fields at their default
    /// are absent (the audit log shows them as null).
    static func jsonFields(_ experiment: Experiment) -> [String: Google_Protobuf_Value] {
        guard let json = try? experiment.jsonString(), let object = try? Google_Protobuf_Struct(jsonString: json) else { return [:] }
        return object.fields
    }

    static func jsonName(_ path: String) -> String {
        let parts = path.split(separator: "_")
        return String(parts[0]) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }
}
