import Foundation
import Synchronization

/// GrowthBook's targeting language: MongoDB-like conditions over a unit's
/// attributes, e.g. `{"country": {"$in": ["DE", "AT"]}, "age": {"$gte": 18}}`.
/// Evaluation follows the JavaScript SDK's rules, coercions included, so a
/// condition targets the same units here as in any GrowthBook SDK.
public struct TargetingCondition: Sendable {
    /// Values of saved groups, by id (`$inGroup`, `$notInGroup`).
    public typealias SavedGroups = [String: [JSONValue]]

    public let condition: JSONValue

    public init(_ condition: JSONValue) {
        self.condition = condition
    }

    /// Operators the language knows, with the shape of their argument.
    public static let valueOperators: Set<String> = [
        "$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$ini", "$nin", "$nini", "$all", "$alli", "$elemMatch",
        "$size", "$exists", "$type", "$not", "$regex", "$regexi", "$veq", "$vne", "$vlt", "$vlte", "$vgt", "$vgte",
        "$inGroup", "$notInGroup",
    ]
    public static let logicalOperators: Set<String> = ["$or", "$nor", "$and", "$not"]

    /// Whether `attributes` satisfy the condition.
    public func matches(_ attributes: JSONValue, savedGroups: SavedGroups = [:]) -> Bool {
        Evaluator(savedGroups: savedGroups).evalCondition(attributes, condition)
    }

    /// What is wrong with a condition, as messages naming the path; empty
    /// when it is well formed. Unknown operators are errors here, because
    /// the SDKs would silently evaluate them as false.
    public static func problems(_ condition: JSONValue, path: String = "condition") -> [String] {
        guard case .object(let fields) = condition else { return ["\(path) must be an object"] }
        var problems: [String] = []
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            let here = "\(path).\(key)"
            switch key {
            case "$or", "$nor", "$and":
                guard case .array(let items) = value else { problems.append("\(here) must be an array of conditions"); continue }
                for (index, item) in items.enumerated() { problems += Self.problems(item, path: "\(here)[\(index)]") }
            case "$not":
                problems += Self.problems(value, path: here)
            default:
                if key.hasPrefix("$") { problems.append("\(here): unknown operator \(key)"); continue }
                problems += valueProblems(value, path: here)
            }
        }
        return problems
    }

    private static func valueProblems(_ value: JSONValue, path: String) -> [String] {
        guard case .object(let fields) = value, !fields.isEmpty, fields.keys.allSatisfy({ $0.hasPrefix("$") }) else { return [] }
        var problems: [String] = []
        for (op, argument) in fields.sorted(by: { $0.key < $1.key }) {
            let here = "\(path).\(op)"
            guard valueOperators.contains(op) else { problems.append("\(here): unknown operator \(op)"); continue }
            switch op {
            case "$in", "$ini", "$nin", "$nini", "$all", "$alli":
                if case .array = argument {} else { problems.append("\(here) needs an array") }
            case "$regex", "$regexi":
                guard case .string(let pattern) = argument else { problems.append("\(here) needs a string"); continue }
                if Evaluator.regex(pattern, insensitive: op == "$regexi") == nil { problems.append("\(here): invalid regular expression") }
            case "$inGroup", "$notInGroup":
                problems.append("\(here): saved groups are not supported; list the values with $in")
            case "$not", "$size":
                problems += valueProblems(argument, path: here)
            case "$elemMatch":
                if case .object(let inner) = argument, !inner.isEmpty, inner.keys.allSatisfy({ $0.hasPrefix("$") }) {
                    problems += valueProblems(argument, path: here)
                } else {
                    problems += Self.problems(argument, path: here)
                }
            default: break
            }
        }
        return problems
    }
}

/// The evaluation itself, one function per rule of the JavaScript SDK.
private struct Evaluator {
    let savedGroups: TargetingCondition.SavedGroups

    func evalCondition(_ object: JSONValue, _ condition: JSONValue) -> Bool {
        guard case .object(let fields) = condition else { return true }
        for (key, value) in fields {
            switch key {
            case "$or": if !evalOr(object, value) { return false }
            case "$nor": if evalOr(object, value) { return false }
            case "$and": if !evalAnd(object, value) { return false }
            case "$not": if evalCondition(object, value) { return false }
            default: if !evalConditionValue(value, object.value(atPath: key[...])) { return false }
            }
        }
        return true
    }

    private func evalOr(_ object: JSONValue, _ conditions: JSONValue) -> Bool {
        guard case .array(let items) = conditions, !items.isEmpty else { return true }
        return items.contains { evalCondition(object, $0) }
    }

    private func evalAnd(_ object: JSONValue, _ conditions: JSONValue) -> Bool {
        guard case .array(let items) = conditions else { return true }
        return items.allSatisfy { evalCondition(object, $0) }
    }

    private static func isOperatorObject(_ value: JSONValue) -> Bool {
        guard case .object(let fields) = value, !fields.isEmpty else { return false }
        return fields.keys.allSatisfy { $0.hasPrefix("$") }
    }

    func evalConditionValue(_ condition: JSONValue, _ value: JSONValue, insensitive: Bool = false) -> Bool {
        switch condition {
        case .string(let expected):
            return insensitive ? value.jsString.lowercased() == expected.lowercased() : value.jsString == expected
        case .number(let expected):
            return value.jsNumber == expected
        case .bool(let expected):
            return value != .null && value.isTruthy == expected
        case .null:
            return value == .null
        case .array:
            return value.structurallyEquals(condition)
        case .object(let operators):
            guard Self.isOperatorObject(condition) else { return value.structurallyEquals(condition) }
            return operators.allSatisfy { evalOperator($0.key, actual: value, expected: $0.value) }
        }
    }

    private func evalOperator(_ op: String, actual: JSONValue, expected: JSONValue) -> Bool {
        switch op {
        case "$veq": return Self.paddedVersion(actual) == Self.paddedVersion(expected)
        case "$vne": return Self.paddedVersion(actual) != Self.paddedVersion(expected)
        case "$vgt": return JSONValue.compareUTF16(Self.paddedVersion(actual), Self.paddedVersion(expected)) == .orderedDescending
        case "$vgte": return JSONValue.compareUTF16(Self.paddedVersion(actual), Self.paddedVersion(expected)) != .orderedAscending
        case "$vlt": return JSONValue.compareUTF16(Self.paddedVersion(actual), Self.paddedVersion(expected)) == .orderedAscending
        case "$vlte": return JSONValue.compareUTF16(Self.paddedVersion(actual), Self.paddedVersion(expected)) != .orderedDescending
        case "$eq": return actual.strictlyEquals(expected)
        case "$ne": return !actual.strictlyEquals(expected)
        case "$lt": return actual.jsCompare(expected) { $0 == .orderedAscending }
        case "$lte": return actual.jsCompare(expected) { $0 != .orderedDescending }
        case "$gt": return actual.jsCompare(expected) { $0 == .orderedDescending }
        case "$gte": return actual.jsCompare(expected) { $0 != .orderedAscending }
        case "$exists": return expected.isTruthy ? actual != .null : actual == .null
        case "$in", "$ini", "$nin", "$nini":
            guard case .array(let values) = expected else { return false }
            let found = Self.isIn(actual, values, insensitive: op.hasSuffix("i"))
            return op.hasPrefix("$n") ? !found : found
        case "$inGroup", "$notInGroup":
            let found = Self.isIn(actual, savedGroups[expected.jsString] ?? [], insensitive: false)
            return op == "$inGroup" ? found : !found
        case "$not": return !evalConditionValue(expected, actual)
        case "$size":
            guard case .array(let values) = actual else { return false }
            return evalConditionValue(expected, .number(Double(values.count)))
        case "$elemMatch":
            guard case .array(let values) = actual else { return false }
            let isOperator = Self.isOperatorObject(expected)
            return values.contains { element in
                element.isTruthy && (isOperator ? evalConditionValue(expected, element) : evalCondition(element, expected))
            }
        case "$all", "$alli":
            guard case .array(let wanted) = expected, case .array(let values) = actual else { return false }
            return wanted.allSatisfy { item in values.contains { evalConditionValue(item, $0, insensitive: op == "$alli") } }
        case "$regex", "$regexi":
            guard case .string(let pattern) = expected, let regex = Self.regex(pattern, insensitive: op == "$regexi") else { return false }
            let text = actual.jsString
            return regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
        case "$type":
            guard case .string(let name) = expected else { return false }
            return Self.typeName(actual) == name
        default: return false
        }
    }

    /// `$in`: membership by strict equality; an array attribute matches when
    /// any element is in the list.
    private static func isIn(_ actual: JSONValue, _ expected: [JSONValue], insensitive: Bool) -> Bool {
        func fold(_ value: JSONValue) -> JSONValue {
            if insensitive, case .string(let text) = value { return .string(text.lowercased()) }
            return value
        }
        let candidates: [JSONValue] = if case .array(let elements) = actual { elements } else { [actual] }
        return candidates.contains { element in expected.contains { fold($0).strictlyEquals(fold(element)) } }
    }

    private static func typeName(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// A version string that compares correctly as text: leading `v` and
    /// build info dropped, numeric parts left-padded to 5, and `~` appended
    /// to plain x.y.z so a release sorts after its pre-releases.
    static func paddedVersion(_ value: JSONValue) -> String {
        // Versions repeat (a condition's operand, the app versions in use):
        // remember recent ones instead of rebuilding them on every request.
        if case .string(let text) = value, let cached = versionCache.withLock({ $0[text] }) { return cached }
        let padded = computePaddedVersion(value)
        if case .string(let text) = value {
            versionCache.withLock { cache in
                if cache.count > 10_000 { cache.removeAll() }
                cache[text] = padded
            }
        }
        return padded
    }

    private static let versionCache = Mutex<[String: String]>([:])

    private static func computePaddedVersion(_ value: JSONValue) -> String {
        var text: String
        switch value {
        case .number(let number): text = JSONValue.jsNumberString(number)
        case .string(let string) where !string.isEmpty: text = string
        default: text = "0"
        }
        if text.hasPrefix("v") { text.removeFirst() }
        if let plus = text.firstIndex(of: "+") { text = String(text[..<plus]) }
        var parts = text.split(omittingEmptySubsequences: false) { $0 == "-" || $0 == "." }.map(String.init)
        if parts.count == 3 { parts.append("~") }
        return parts.map { part in
            !part.isEmpty && part.allSatisfy(\.isASCIIDigit) && part.count < 5 ? String(repeating: " ", count: 5 - part.count) + part : part
        }.joined(separator: "-")
    }

    private static let regexCache = Mutex<[String: NSRegularExpression]>([:])

    /// Compiled patterns, cached: conditions are evaluated on every request.
    static func regex(_ pattern: String, insensitive: Bool) -> NSRegularExpression? {
        let key = (insensitive ? "i/" : "s/") + pattern
        if let cached = regexCache.withLock({ $0[key] }) { return cached }
        guard let regex = try? NSRegularExpression(pattern: pattern, options: insensitive ? [.caseInsensitive] : []) else { return nil }
        regexCache.withLock { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[key] = regex
        }
        return regex
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
