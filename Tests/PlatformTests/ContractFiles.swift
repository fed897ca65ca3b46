import Contracts
import Foundation
import SwiftProtobuf
import Testing

/// Consumer-driven contracts between services. A consumer records each
/// request it sends a provider and what it relies on in the answer; the
/// files live in `Tests/Contract/consumers/<consumer>--<provider>.json`,
/// written by the consumer's tests (`ConsumerContractTests`) and replayed
/// against the real provider by `ProviderContractTests`.
///
/// An expectation is a status and rules over the answer as proto JSON
/// (proto field names). A rule's `path` walks fields with `.`; `[]` stands
/// for every element of a list (`products[].availability`). Rules:
/// `present`, `absent`, `equals` (every value), `anyEquals`, `eachContains`
/// (every value is a list holding it), `order` (`ascending`/`descending`),
/// `minCount`/`maxCount` (values found), `atLeast`/`atMost` (numbers).
enum ContractFiles {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Contract/consumers").standardized

    struct Interaction {
        var description: String
        var method: String
        var tenant = "demo"
        var request: any SwiftProtobuf.Message
        var status = "OK"
        var messageContains: String?
        var rules: [[String: Any]] = []

        var json: [String: Any] {
            var options = JSONEncodingOptions()
            options.preserveProtoFieldNames = true
            options.useDeterministicOrdering = true
            let requestText = (try? request.jsonString(options: options)) ?? "{}"
            var expect: [String: Any] = ["status": status, "rules": rules]
            if let messageContains { expect["message_contains"] = messageContains }
            return [
                "description": description, "method": method, "metadata": ["x-tenant-id": tenant],
                "request": (try? JSONSerialization.jsonObject(with: Data(requestText.utf8))) ?? [:],
                "expect": expect,
            ]
        }
    }

    struct Contract {
        var consumer: String
        var provider: String
        var state: String
        var interactions: [Interaction]

        var fileName: String { "\(consumer)--\(provider).json" }

        func encoded() throws -> Data {
            let document: [String: Any] = [
                "consumer": consumer, "provider": provider,
                "provider_state": state,
                "interactions": interactions.map(\.json),
                "written_by": "Tests/PlatformTests/ConsumerContractTests.swift (RECORD_CONTRACTS=1 swift test --filter ConsumerContractTests)",
            ]
            var data = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            data.append(UInt8(ascii: "\n"))
            return data
        }
    }

    static func rule(_ path: String, _ check: [String: Any]) -> [String: Any] {
        var rule = check
        rule["path"] = path
        return rule
    }

    // MARK: Checking an answer

    /// The values at `path` in `root`; a missing field yields nil.
    static func values(at path: String, in root: Any) -> [Any?] {
        var current: [Any?] = [root]
        for component in path.split(separator: ".") {
            let each = component.hasSuffix("[]")
            let key = String(each ? component.dropLast(2) : component)
            var next: [Any?] = []
            for value in current {
                let field = (value as? [String: Any])?[key]
                if each {
                    // An absent repeated field is an empty list in proto JSON.
                    next += (field as? [Any]) ?? []
                } else {
                    next.append(field)
                }
            }
            current = next
        }
        return current
    }

    static func number(_ value: Any?) -> Double? {
        if let number = value as? NSNumber { return number.doubleValue }
        if let text = value as? String { return Double(text) ?? timestamp(text) }
        return nil
    }

    static func timestamp(_ text: String) -> Double? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date.timeIntervalSince1970 }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)?.timeIntervalSince1970
    }

    static func same(_ a: Any?, _ b: Any?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        if let x = number(a), let y = number(b), !(a is String && b is String) { return x == y }
        return (a as? NSObject)?.isEqual(b) ?? false
    }

    static func show(_ value: Any?) -> String {
        guard let value else { return "(absent)" }
        if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) {
            return String(decoding: data, as: UTF8.self)
        }
        return "\(value)"
    }

    /// What the answer breaks of one rule; empty when it keeps it.
    static func violations(of rule: [String: Any], in answer: Any) -> [String] {
        let path = rule["path"] as? String ?? ""
        let found = values(at: path, in: answer)
        let present = found.compactMap { $0 }
        var problems: [String] = []
        if rule["present"] as? Bool == true {
            if found.isEmpty { problems.append("\(path): expected values, found none") }
            if let index = found.firstIndex(where: { $0 == nil }) { problems.append("\(path): value \(index) is absent") }
        }
        if rule["absent"] as? Bool == true, !present.isEmpty {
            problems.append("\(path): expected absent, got \(show(present.first))")
        }
        if let expected = rule["equals"] {
            for (index, value) in found.enumerated() where !same(value, expected) {
                problems.append("\(path)[\(index)]: expected \(show(expected)), got \(show(value))")
            }
            if found.isEmpty { problems.append("\(path): expected \(show(expected)), found nothing") }
        }
        if let expected = rule["anyEquals"], !present.contains(where: { same($0, expected) }) {
            problems.append("\(path): expected one value to be \(show(expected)), got \(show(present))")
        }
        if let expected = rule["eachContains"] {
            for (index, value) in found.enumerated() where !((value as? [Any])?.contains { same($0, expected) } ?? false) {
                problems.append("\(path)[\(index)]: expected a list holding \(show(expected)), got \(show(value))")
            }
        }
        if let order = rule["order"] as? String {
            let numbers = present.map(number)
            for index in numbers.indices.dropFirst() {
                guard let a = numbers[index - 1], let b = numbers[index] else {
                    problems.append("\(path): values are not comparable")
                    break
                }
                if order == "descending" ? a < b : a > b {
                    problems.append("\(path): not \(order) at \(index): \(show(present[index - 1])) then \(show(present[index]))")
                    break
                }
            }
        }
        if let minimum = rule["minCount"] as? Int, present.count < minimum {
            problems.append("\(path): expected at least \(minimum) values, got \(present.count)")
        }
        if let maximum = rule["maxCount"] as? Int, present.count > maximum {
            problems.append("\(path): expected at most \(maximum) values, got \(present.count)")
        }
        if let bound = rule["atLeast"].flatMap(number) {
            for (index, value) in present.enumerated() where (number(value) ?? -.infinity) < bound {
                problems.append("\(path)[\(index)]: \(show(value)) is below \(bound)")
            }
        }
        if let bound = rule["atMost"].flatMap(number) {
            for (index, value) in present.enumerated() where (number(value) ?? .infinity) > bound {
                problems.append("\(path)[\(index)]: \(show(value)) is above \(bound)")
            }
        }
        return problems
    }
}
