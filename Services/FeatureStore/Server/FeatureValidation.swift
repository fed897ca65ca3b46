import Contracts
import Foundation
import StandardServices
import SwiftProtobuf

/// The rules definitions and rows must satisfy.
enum FeatureValidation {
    /// `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters.
    static func isName(_ text: String) -> Bool {
        guard let first = text.utf8.first, text.utf8.count <= 128 else { return false }
        func letter(_ byte: UInt8) -> Bool { (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == UInt8(ascii: "_") }
        return letter(first) && text.utf8.allSatisfy { letter($0) || ($0 >= 0x30 && $0 <= 0x39) }
    }

    static func nameViolations(_ name: String, field: String) -> [FieldViolation] {
        isName(name) ? [] : [FieldViolation(field, "must match [A-Za-z_][A-Za-z0-9_]* and be at most 128 characters, got \"\(name.prefix(140))\"")]
    }

    static let valueTypes: Set<Platform_Featurestore_V1_ValueType> = [
        .bytes, .string, .int64, .double, .float, .bool, .unixTimestamp, .bytesList, .stringList, .int64List, .doubleList,
        .floatList, .boolList, .unixTimestampList,
    ]

    static func viewViolations(_ view: FeatureView) -> [FieldViolation] {
        var violations = nameViolations(view.name, field: "feature_view.name")
        if view.name.contains("__") { violations.append(FieldViolation("feature_view.name", "must not contain \"__\" (it separates view and feature in full feature names)")) }
        if !(1...5).contains(view.entities.count) {
            violations.append(FieldViolation("feature_view.entities", "needs 1 to 5 join keys, got \(view.entities.count)"))
        }
        if Set(view.entities).count != view.entities.count { violations.append(FieldViolation("feature_view.entities", "join keys must be distinct")) }
        for (index, key) in view.entities.enumerated() { violations += nameViolations(key, field: "feature_view.entities[\(index)]") }
        if !(1...1000).contains(view.features.count) {
            violations.append(FieldViolation("feature_view.features", "needs 1 to 1000 features, got \(view.features.count)"))
        }
        var seen = Set<String>()
        for (index, feature) in view.features.enumerated() {
            let field = "feature_view.features[\(index)]"
            violations += nameViolations(feature.name, field: "\(field).name")
            if !seen.insert(feature.name).inserted { violations.append(FieldViolation("\(field).name", "duplicate feature \"\(feature.name)\"")) }
            if view.entities.contains(feature.name) { violations.append(FieldViolation("\(field).name", "\"\(feature.name)\" is a join key")) }
            if !valueTypes.contains(feature.type) { violations.append(FieldViolation("\(field).type", "a value type is required, got \(feature.type)")) }
            if feature.description_p.count > 2048 { violations.append(FieldViolation("\(field).description", "at most 2048 characters")) }
            if feature.labels.count > 64 || feature.labels.contains(where: { $0.key.count > 256 || $0.value.count > 256 }) {
                violations.append(FieldViolation("\(field).labels", "at most 64 entries, keys and values at most 256 characters"))
            }
        }
        if view.hasTtl, view.ttl.seconds < 0 || view.ttl.nanos < 0 {
            violations.append(FieldViolation("feature_view.ttl", "must not be negative"))
        }
        if view.description_p.count > 2048 { violations.append(FieldViolation("feature_view.description", "at most 2048 characters")) }
        if view.owner.count > 256 { violations.append(FieldViolation("feature_view.owner", "at most 256 characters")) }
        if view.tags.count > 64 || view.tags.contains(where: { $0.key.count > 256 || $0.value.count > 256 }) {
            violations.append(FieldViolation("feature_view.tags", "at most 64 entries, keys and values at most 256 characters"))
        }
        return violations
    }

    static func serviceViolations(_ service: FeatureService) -> [FieldViolation] {
        var violations = nameViolations(service.name, field: "feature_service.name")
        if !(1...100).contains(service.projections.count) {
            violations.append(FieldViolation("feature_service.projections", "needs 1 to 100 projections, got \(service.projections.count)"))
        }
        if Set(service.projections.map(\.featureViewName)).count != service.projections.count {
            violations.append(FieldViolation("feature_service.projections", "each view at most once"))
        }
        if service.description_p.count > 2048 { violations.append(FieldViolation("feature_service.description", "at most 2048 characters")) }
        if service.owner.count > 256 { violations.append(FieldViolation("feature_service.owner", "at most 256 characters")) }
        return violations
    }

    /// Why `value` cannot be stored for a feature of `type`, or nil. Null
    /// (no case, or null_val) is valid for every type.
    static func typeProblem(_ value: FeatureValue, expected type: Platform_Featurestore_V1_ValueType) -> String? {
        guard let val = value.val else { return nil }
        let matches: Bool
        switch (val, type) {
        case (.nullVal, _): return nil
        case (.bytesVal, .bytes), (.stringVal, .string), (.int64Val, .int64), (.doubleVal, .double), (.floatVal, .float),
             (.boolVal, .bool), (.unixTimestampVal, .unixTimestamp), (.bytesListVal, .bytesList), (.stringListVal, .stringList),
             (.int64ListVal, .int64List), (.doubleListVal, .doubleList), (.floatListVal, .floatList), (.boolListVal, .boolList),
             (.unixTimestampListVal, .unixTimestampList):
            matches = true
        default:
            matches = false
        }
        return matches ? nil : "expected \(typeName(type)), got \(caseName(val))"
    }

    static func typeName(_ type: Platform_Featurestore_V1_ValueType) -> String {
        switch type {
        case .bytes: "VALUE_TYPE_BYTES"
        case .string: "VALUE_TYPE_STRING"
        case .int64: "VALUE_TYPE_INT64"
        case .double: "VALUE_TYPE_DOUBLE"
        case .float: "VALUE_TYPE_FLOAT"
        case .bool: "VALUE_TYPE_BOOL"
        case .unixTimestamp: "VALUE_TYPE_UNIX_TIMESTAMP"
        case .bytesList: "VALUE_TYPE_BYTES_LIST"
        case .stringList: "VALUE_TYPE_STRING_LIST"
        case .int64List: "VALUE_TYPE_INT64_LIST"
        case .doubleList: "VALUE_TYPE_DOUBLE_LIST"
        case .floatList: "VALUE_TYPE_FLOAT_LIST"
        case .boolList: "VALUE_TYPE_BOOL_LIST"
        case .unixTimestampList: "VALUE_TYPE_UNIX_TIMESTAMP_LIST"
        default: "VALUE_TYPE_UNSPECIFIED"
        }
    }

    static func caseName(_ val: FeatureValue.OneOf_Val) -> String {
        switch val {
        case .bytesVal: "bytes_val"
        case .stringVal: "string_val"
        case .int64Val: "int64_val"
        case .doubleVal: "double_val"
        case .floatVal: "float_val"
        case .boolVal: "bool_val"
        case .unixTimestampVal: "unix_timestamp_val"
        case .bytesListVal: "bytes_list_val"
        case .stringListVal: "string_list_val"
        case .int64ListVal: "int64_list_val"
        case .doubleListVal: "double_list_val"
        case .floatListVal: "float_list_val"
        case .boolListVal: "bool_list_val"
        case .unixTimestampListVal: "unix_timestamp_list_val"
        case .nullVal: "null_val"
        }
    }

    /// Join key values are non-null strings or int64s.
    static func isJoinKeyValue(_ value: FeatureValue) -> Bool {
        switch value.val {
        case .stringVal, .int64Val: true
        default: false
        }
    }
}
