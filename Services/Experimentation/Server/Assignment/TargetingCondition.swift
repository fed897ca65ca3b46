import Foundation

/// GrowthBook's targeting language: MongoDB-like conditions over a unit's
/// attributes, e.g. `{"country": {"$in": ["DE", "AT"]}, "age": {"$gte": 18}}`.
/// Evaluation follows the JavaScript SDK's rules, coercions included, so a
/// condition targets the same units here as in any GrowthBook SDK.
public struct TargetingCondition: Sendable {
    /// Values of saved groups, by id (`$inGroup`, `$notInGroup`).
    public typealias SavedGroups = [String: [JSONValue]]

    public let condition: JSONValue
    /// The condition compiled once: evaluating it walks prepared nodes
    /// instead of re-reading the JSON (operator names, version padding,
    /// regular expressions) on every request.
    private let compiled: ConditionNode

    public init(_ condition: JSONValue) {
        self.condition = condition
        compiled = ConditionNode(condition)
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
        compiled.matches(attributes, savedGroups)
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
                if ValueTest.regex(pattern, insensitive: op == "$regexi") == nil { problems.append("\(here): invalid regular expression") }
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
