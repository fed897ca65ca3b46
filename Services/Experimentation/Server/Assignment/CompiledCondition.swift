import Foundation
import Synchronization

// A targeting condition compiled into nodes, one kind per rule of
// GrowthBook's JavaScript evaluator. Everything that depends only on the
// condition (operator names, version padding, case folding, regular
// expressions, attribute paths) is worked out once here, so evaluating a
// unit is a walk over prepared nodes. The rules, and their JavaScript
// coercions, are those of the SDK's `evalCondition`; the conformance cases
// in the test suite check them.

/// `evalCondition(object, condition)`: every clause of a condition object
/// holds. Anything but an object is true.
struct ConditionNode: Sendable {
    let clauses: [Clause]

    init(_ condition: JSONValue) {
        guard case .object(let fields) = condition else {
            clauses = []
            return
        }
        clauses = fields.sorted { $0.key < $1.key }.map { Clause(key: $0.key, value: $0.value) }
    }

    func matches(_ object: JSONValue, _ savedGroups: TargetingCondition.SavedGroups) -> Bool {
        for clause in clauses where !clause.holds(object, savedGroups) { return false }
        return true
    }
}

/// One key of a condition object.
enum Clause: Sendable {
    /// `$or`: true when empty or not an array.
    case any([ConditionNode])
    /// `$nor`: the negation of `$or`, so false when empty.
    case none([ConditionNode])
    /// `$and`.
    case every([ConditionNode])
    /// `$not`.
    case not(ConditionNode)
    /// An attribute path and the test its value must pass.
    case attribute(AttributePath, ValueTest)

    init(key: String, value: JSONValue) {
        func nodes(_ value: JSONValue) -> [ConditionNode]? {
            guard case .array(let items) = value else { return nil }
            return items.map(ConditionNode.init)
        }
        switch key {
        case "$or": self = .any(nodes(value) ?? [])
        case "$nor": self = .none(nodes(value) ?? [])
        case "$and": self = .every(nodes(value) ?? [])
        case "$not": self = .not(ConditionNode(value))
        default: self = .attribute(AttributePath(key), ValueTest(value))
        }
    }

    func holds(_ object: JSONValue, _ savedGroups: TargetingCondition.SavedGroups) -> Bool {
        switch self {
        case .any(let nodes): nodes.isEmpty || nodes.contains { $0.matches(object, savedGroups) }
        case .none(let nodes): !nodes.isEmpty && !nodes.contains { $0.matches(object, savedGroups) }
        case .every(let nodes): nodes.allSatisfy { $0.matches(object, savedGroups) }
        case .not(let node): !node.matches(object, savedGroups)
        case .attribute(let path, let test): test.passes(path.value(in: object), savedGroups)
        }
    }
}

/// A dot-separated attribute path; most are one plain key.
enum AttributePath: Sendable {
    case key(String)
    case path(Substring)

    init(_ text: String) {
        self = text.utf8.contains(UInt8(ascii: ".")) ? .path(text[...]) : .key(text)
    }

    func value(in object: JSONValue) -> JSONValue {
        switch self {
        case .key(let key):
            guard case .object(let fields) = object else { return .null }
            return fields[key] ?? .null
        case .path(let path):
            return object.value(atPath: path)
        }
    }
}

/// `evalConditionValue(condition, value)`: what a condition says about one
/// value, by the condition's JSON type.
indirect enum ValueTest: Sendable {
    /// Loose string equality (`String(value) === expected`), or with
    /// `$alli`, case-insensitive (`folded` is the lowercased operand).
    case string(String, folded: String?)
    case number(Double)
    case bool(Bool)
    case null
    /// Arrays and objects that are not operator objects compare by their
    /// JSON text.
    case structurallyEquals(JSONValue)
    /// An operator object: every operator holds.
    case operators([OperatorTest])

    init(_ condition: JSONValue, insensitive: Bool = false) {
        switch condition {
        case .string(let text): self = .string(text, folded: insensitive ? text.lowercased() : nil)
        case .number(let number): self = .number(number)
        case .bool(let bool): self = .bool(bool)
        case .null: self = .null
        case .array: self = .structurallyEquals(condition)
        case .object(let fields):
            guard Self.isOperatorObject(condition) else {
                self = .structurallyEquals(condition)
                return
            }
            self = .operators(fields.sorted { $0.key < $1.key }.map { OperatorTest(op: $0.key, expected: $0.value) })
        }
    }

    func passes(_ value: JSONValue, _ savedGroups: TargetingCondition.SavedGroups) -> Bool {
        switch self {
        case .string(let expected, let folded):
            if let folded { return value.jsString.lowercased() == folded }
            if case .string(let text) = value { return text == expected }
            return value.jsString == expected
        case .number(let expected): return value.jsNumber == expected
        case .bool(let expected): return value != .null && value.isTruthy == expected
        case .null: return value == .null
        case .structurallyEquals(let expected): return value.structurallyEquals(expected)
        case .operators(let tests): return tests.allSatisfy { $0.holds(value, savedGroups) }
        }
    }

    static func isOperatorObject(_ value: JSONValue) -> Bool {
        guard case .object(let fields) = value, !fields.isEmpty else { return false }
        return fields.keys.allSatisfy { $0.hasPrefix("$") }
    }

    private static let regexCache = Mutex<[String: SharedRegex]>([:])

    /// Compiles a pattern (cached: the same patterns recur across
    /// experiments and validation); nil when it is invalid.
    static func regex(_ pattern: String, insensitive: Bool) -> SharedRegex? {
        let key = (insensitive ? "i/" : "s/") + pattern
        if let cached = regexCache.withLock({ $0[key] }) { return cached }
        guard let regex = try? NSRegularExpression(pattern: pattern, options: insensitive ? [.caseInsensitive] : []) else { return nil }
        let shared = SharedRegex(regex)
        regexCache.withLock { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[key] = shared
        }
        return shared
    }
}

/// A compiled pattern. NSRegularExpression is immutable once built and safe
/// to match from any thread.
final class SharedRegex: @unchecked Sendable {
    let expression: NSRegularExpression

    init(_ expression: NSRegularExpression) { self.expression = expression }

    func matches(_ text: String) -> Bool {
        expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}

/// One `$operator: operand` of an operator object.
indirect enum OperatorTest: Sendable {
    enum Order: Sendable {
        case equal, notEqual, less, lessOrEqual, greater, greaterOrEqual

        func accepts(_ result: ComparisonResult) -> Bool {
            switch self {
            case .equal: result == .orderedSame
            case .notEqual: result != .orderedSame
            case .less: result == .orderedAscending
            case .lessOrEqual: result != .orderedDescending
            case .greater: result == .orderedDescending
            case .greaterOrEqual: result != .orderedAscending
            }
        }
    }

    /// `$veq` … `$vgte` against the operand's padded form.
    case version(Order, padded: String)
    /// `$eq` / `$ne`: strict equality.
    case strictlyEquals(JSONValue, negated: Bool)
    /// `$lt` … `$gte`: JavaScript's relational comparison.
    case compare(Order, JSONValue)
    case exists(Bool)
    /// `$in`, `$nin` and their case-insensitive forms; `values` are folded
    /// already when `insensitive`.
    case membership([JSONValue], insensitive: Bool, negated: Bool)
    case savedGroup(String, negated: Bool)
    case not(ValueTest)
    case size(ValueTest)
    /// `$elemMatch` with an operator object (tests each element) or a
    /// condition (evaluated against each element).
    case elementMatches(ValueTest)
    case elementSatisfies(ConditionNode)
    /// `$all` / `$alli`: every wanted item matches some element.
    case containsAll([ValueTest])
    case regex(SharedRegex)
    case type(String)
    /// Unknown operators and malformed operands are false, as in the SDK.
    case never

    init(op: String, expected: JSONValue) {
        switch op {
        case "$veq": self = .version(.equal, padded: VersionText.padded(expected))
        case "$vne": self = .version(.notEqual, padded: VersionText.padded(expected))
        case "$vlt": self = .version(.less, padded: VersionText.padded(expected))
        case "$vlte": self = .version(.lessOrEqual, padded: VersionText.padded(expected))
        case "$vgt": self = .version(.greater, padded: VersionText.padded(expected))
        case "$vgte": self = .version(.greaterOrEqual, padded: VersionText.padded(expected))
        case "$eq": self = .strictlyEquals(expected, negated: false)
        case "$ne": self = .strictlyEquals(expected, negated: true)
        case "$lt": self = .compare(.less, expected)
        case "$lte": self = .compare(.lessOrEqual, expected)
        case "$gt": self = .compare(.greater, expected)
        case "$gte": self = .compare(.greaterOrEqual, expected)
        case "$exists": self = .exists(expected.isTruthy)
        case "$in", "$ini", "$nin", "$nini":
            guard case .array(let values) = expected else { self = .never; return }
            let insensitive = op.hasSuffix("i")
            self = .membership(insensitive ? values.map(Self.folded) : values, insensitive: insensitive, negated: op.hasPrefix("$n"))
        case "$inGroup": self = .savedGroup(expected.jsString, negated: false)
        case "$notInGroup": self = .savedGroup(expected.jsString, negated: true)
        case "$not": self = .not(ValueTest(expected))
        case "$size": self = .size(ValueTest(expected))
        case "$elemMatch":
            self = ValueTest.isOperatorObject(expected) ? .elementMatches(ValueTest(expected)) : .elementSatisfies(ConditionNode(expected))
        case "$all", "$alli":
            guard case .array(let wanted) = expected else { self = .never; return }
            self = .containsAll(wanted.map { ValueTest($0, insensitive: op == "$alli") })
        case "$regex", "$regexi":
            guard case .string(let pattern) = expected, let regex = ValueTest.regex(pattern, insensitive: op == "$regexi") else {
                self = .never
                return
            }
            self = .regex(regex)
        case "$type":
            guard case .string(let name) = expected else { self = .never; return }
            self = .type(name)
        default: self = .never
        }
    }

    func holds(_ actual: JSONValue, _ savedGroups: TargetingCondition.SavedGroups) -> Bool {
        switch self {
        case .version(let order, let padded):
            let mine = VersionText.padded(actual)
            switch order {
            case .equal: return mine == padded
            case .notEqual: return mine != padded
            default: return order.accepts(JSONValue.compareUTF16(mine, padded))
            }
        case .strictlyEquals(let expected, let negated): return actual.strictlyEquals(expected) != negated
        case .compare(let order, let expected): return actual.jsCompare(expected, order.accepts)
        case .exists(let present): return present ? actual != .null : actual == .null
        case .membership(let values, let insensitive, let negated):
            return Self.isIn(actual, values, insensitive: insensitive) != negated
        case .savedGroup(let id, let negated): return Self.isIn(actual, savedGroups[id] ?? [], insensitive: false) != negated
        case .not(let test): return !test.passes(actual, savedGroups)
        case .size(let test):
            guard case .array(let values) = actual else { return false }
            return test.passes(.number(Double(values.count)), savedGroups)
        case .elementMatches(let test):
            guard case .array(let values) = actual else { return false }
            return values.contains { $0.isTruthy && test.passes($0, savedGroups) }
        case .elementSatisfies(let node):
            guard case .array(let values) = actual else { return false }
            return values.contains { $0.isTruthy && node.matches($0, savedGroups) }
        case .containsAll(let wanted):
            guard case .array(let values) = actual else { return false }
            return wanted.allSatisfy { item in values.contains { item.passes($0, savedGroups) } }
        case .regex(let regex): return regex.matches(actual.jsString)
        case .type(let name): return Self.typeName(actual) == name
        case .never: return false
        }
    }

    private static func folded(_ value: JSONValue) -> JSONValue {
        if case .string(let text) = value { return .string(text.lowercased()) }
        return value
    }

    /// `$in`: membership by strict equality; an array attribute matches when
    /// any of its elements is in the list.
    private static func isIn(_ actual: JSONValue, _ values: [JSONValue], insensitive: Bool) -> Bool {
        func listed(_ element: JSONValue) -> Bool {
            let element = insensitive ? folded(element) : element
            return values.contains { $0.strictlyEquals(element) }
        }
        if case .array(let elements) = actual { return elements.contains(where: listed) }
        return listed(actual)
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
}

/// Version strings made comparable as text, GrowthBook's `paddedVersionString`.
enum VersionText {
    private static let cache = Mutex<[String: String]>([:])

    /// A leading `v` and build info dropped, numeric parts left-padded to 5,
    /// and `~` appended to plain x.y.z so a release sorts after its
    /// pre-releases.
    static func padded(_ value: JSONValue) -> String {
        // The versions in use repeat from request to request: remember them.
        if case .string(let text) = value, let cached = cache.withLock({ $0[text] }) { return cached }
        let padded = computePadded(value)
        if case .string(let text) = value {
            cache.withLock { cache in
                if cache.count > 10_000 { cache.removeAll() }
                cache[text] = padded
            }
        }
        return padded
    }

    private static func computePadded(_ value: JSONValue) -> String {
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
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
