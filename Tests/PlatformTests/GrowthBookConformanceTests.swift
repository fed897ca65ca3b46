import Contracts
import ExperimentationServer
import Foundation
import MeridianRPC
import ServiceKit
import StandardServices
import SwiftProtobuf
import Testing

/// GrowthBook's own cross-SDK cases (`cases.json`), so assignment here
/// matches every GrowthBook SDK bit for bit. The pure functions are checked
/// directly; the `run` cases go through CreateExperiment and GetAssignments
/// over loopback, as a client would.
@Suite struct GrowthBookConformanceTests {
    /// `MERIDIAN_GROWTHBOOK_CASES`, else `shared/conformance/growthbook/cases.json`
    /// beside the repository (where the project's shared data lives), else
    /// the development machine's copy.
    static let casesURL: URL = {
        if let path = ProcessInfo.processInfo.environment["MERIDIAN_GROWTHBOOK_CASES"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidates = [repository.deletingLastPathComponent().appendingPathComponent("shared/conformance/growthbook/cases.json"),
                          URL(fileURLWithPath: "/work/shared/conformance/growthbook/cases.json")]
        return candidates.first { FileManager.default.fileExists(atPath: $0.path) } ?? candidates[0]
    }()

    static let cases: [String: JSONValue] = {
        guard let text = try? String(contentsOf: casesURL, encoding: .utf8), case .object(let sections)? = try? JSONValue(json: text) else {
            return [:]
        }
        return sections
    }()

    static func section(_ name: String) throws -> [[JSONValue]] {
        guard case .array(let entries)? = cases[name] else {
            throw ConformanceError("section \(name) missing: is GrowthBook's cases.json at \(casesURL.path)? (set MERIDIAN_GROWTHBOOK_CASES)")
        }
        return entries.map { entry in if case .array(let fields) = entry { fields } else { [] } }
    }

    /// The suite's rule for ranges and weights: compare after flooring to 8 decimals.
    static func floored(_ value: Double) -> Double { (value * 1e8).rounded(.down) / 1e8 }

    @Test func hash() throws {
        let entries = try Self.section("hash")
        #expect(entries.count >= 10)
        for entry in entries {
            let (seed, value, version, expected) = (entry[0].jsString, entry[1].jsString, Int(entry[2].jsNumber), entry[3])
            let actual = GrowthBookHashing.hash(seed: seed, value: value, version: version)
            if expected == .null {
                #expect(actual == nil, "hash(\(seed), \(value), \(version))")
            } else {
                #expect(actual == expected.jsNumber, "hash(\(seed), \(value), \(version))")
            }
        }
    }

    @Test func getBucketRange() throws {
        let entries = try Self.section("getBucketRange")
        #expect(entries.count >= 10)
        for entry in entries {
            guard case .array(let arguments) = entry[1], case .array(let expected) = entry[2] else { Issue.record("malformed \(entry)"); continue }
            let weights: [Double]? = if case .array(let values) = arguments[2] { values.map(\.jsNumber) } else { nil }
            let coverage: Double? = arguments[1] == .null ? nil : arguments[1].jsNumber
            let ranges = GrowthBookHashing.bucketRanges(variations: Int(arguments[0].jsNumber), coverage: coverage, weights: weights)
            let expectedRanges = expected.map { range -> [Double] in
                if case .array(let bounds) = range { return bounds.map { Self.floored($0.jsNumber) } } else { return [] }
            }
            #expect(ranges.map { [Self.floored($0.lower), Self.floored($0.upper)] } == expectedRanges, "\(entry[0].jsString)")
        }
    }

    @Test func chooseVariation() throws {
        let entries = try Self.section("chooseVariation")
        #expect(entries.count >= 10)
        for entry in entries {
            guard case .array(let rangeValues) = entry[2] else { Issue.record("malformed \(entry)"); continue }
            let ranges = rangeValues.compactMap { range -> ClosedOpenRange? in
                guard case .array(let bounds) = range, bounds.count == 2 else { return nil }
                return ClosedOpenRange(bounds[0].jsNumber, bounds[1].jsNumber)
            }
            #expect(GrowthBookHashing.chooseVariation(bucket: entry[1].jsNumber, ranges: ranges) == Int(entry[3].jsNumber), "\(entry[0].jsString)")
        }
    }

    @Test func inNamespace() throws {
        let entries = try Self.section("inNamespace")
        #expect(entries.count >= 10)
        for entry in entries {
            guard case .array(let namespace) = entry[2] else { Issue.record("malformed \(entry)"); continue }
            let actual = GrowthBookHashing.inNamespace(hashValue: entry[1].jsString, id: namespace[0].jsString,
                                                       start: namespace[1].jsNumber, end: namespace[2].jsNumber)
            #expect(actual == entry[3].isTruthy, "\(entry[0].jsString)")
        }
    }

    @Test func getEqualWeights() throws {
        let entries = try Self.section("getEqualWeights")
        #expect(entries.count >= 5)
        for entry in entries {
            guard case .array(let expected) = entry[1] else { Issue.record("malformed \(entry)"); continue }
            let actual = GrowthBookHashing.equalWeights(Int(entry[0].jsNumber)).map(Self.floored)
            #expect(actual == expected.map { Self.floored($0.jsNumber) }, "getEqualWeights(\(entry[0].jsString))")
        }
    }

    @Test func evalCondition() throws {
        let entries = try Self.section("evalCondition")
        #expect(entries.count >= 200)
        var failures: [String] = []
        for entry in entries {
            var groups: TargetingCondition.SavedGroups = [:]
            if entry.count > 4, case .object(let saved) = entry[4] {
                groups = saved.mapValues { if case .array(let values) = $0 { values } else { [] } }
            }
            let actual = TargetingCondition(entry[1]).matches(entry[2], savedGroups: groups)
            if actual != entry[3].isTruthy { failures.append(entry[0].jsString) }
        }
        #expect(failures.isEmpty, "evalCondition cases that disagree with GrowthBook: \(failures)")
    }

    /// `run` cases that apply to server-side assignment: no URL or query
    /// string, forced variations, QA mode, explicit ranges, prerequisite
    /// flags or saved groups, which are client-SDK features.
    @Test func run() async throws {
        let entries = try Self.section("run")
        let fixture = try await ExperimentationFixture()
        var applicable = 0, rejectedByContract = 0
        for (number, entry) in entries.enumerated() {
            let name = entry[0].jsString
            guard case .object(let context) = entry[1], case .object(let definition) = entry[2] else { Issue.record("malformed \(name)"); continue }
            guard Set(context.keys) == ["attributes"],
                  Set(definition.keys).isDisjoint(with: ["force", "ranges", "parentConditions", "url", "include", "groups"])
            else { continue }
            applicable += 1
            let tenant = "gb-run-\(number)"
            let experiment = Self.experiment(definition)
            let expectsRejection = Self.violatesContract(definition)
            do {
                _ = try await fixture.client.createExperiment(.with { $0.experiment = experiment }, options: ExperimentationFixture.options(tenant: tenant))
                #expect(!expectsRejection, "\(name): created, but its weights or coverage break the contract")
            } catch let error as RPCError {
                #expect(expectsRejection && error.code == .invalidArgument, "\(name): \(error)")
                rejectedByContract += 1
                continue
            }
            guard case .object(let attributes)? = context["attributes"] else { continue }
            let response = try await fixture.client.getAssignments(.with {
                $0.attributes = Google_Protobuf_Struct(fields: attributes.mapValues(\.protobufValue))
                $0.experimentKeys = [experiment.key]
            }, options: ExperimentationFixture.options(tenant: tenant))
            let assignment = try #require(response.assignments.first, "\(name)")
            #expect(JSONValue(assignment.value).structurallyEquals(entry[3]), "\(name): value \(JSONValue(assignment.value)) != \(entry[3])")
            #expect(assignment.inExperiment == entry[4].isTruthy, "\(name): inExperiment")
            #expect((assignment.reason == .assigned) == entry[5].isTruthy, "\(name): hashUsed, reason \(assignment.reason)")
        }
        #expect(applicable >= 50, "only \(applicable) run cases applied")
        #expect(rejectedByContract < applicable / 4)
        await fixture.stop()
    }

    /// The experiment a `run` case describes, with GrowthBook's defaults
    /// (hash version 1, equal weights).
    static func experiment(_ definition: [String: JSONValue]) -> Experiment {
        var experiment = Experiment()
        experiment.key = definition["key"]?.jsString ?? ""
        let values: [JSONValue] = if case .array(let values)? = definition["variations"] { values } else { [] }
        let weights: [Double] = if case .array(let weights)? = definition["weights"] { weights.map(\.jsNumber) } else {
            GrowthBookHashing.equalWeights(values.count)
        }
        experiment.variations = values.enumerated().map { index, value in
            .with {
                $0.key = "v\(index)"
                $0.weight = index < weights.count ? weights[index] : 0
                $0.value = value.protobufValue
            }
        }
        if let coverage = definition["coverage"] { experiment.coverage = coverage.jsNumber }
        if case .object(let condition)? = definition["condition"] {
            experiment.condition = Google_Protobuf_Struct(fields: condition.mapValues(\.protobufValue))
        }
        if case .array(let namespace)? = definition["namespace"], namespace.count == 3 {
            experiment.namespace = .with {
                $0.id = namespace[0].jsString
                $0.rangeStart = namespace[1].jsNumber
                $0.rangeEnd = namespace[2].jsNumber
            }
        }
        if let attribute = definition["hashAttribute"] { experiment.hashAttribute = attribute.jsString }
        if let attribute = definition["fallbackAttribute"] { experiment.fallbackAttribute = attribute.jsString }
        if let seed = definition["seed"] { experiment.seed = seed.jsString }
        experiment.hashVersion = Int32(definition["hashVersion"].map { Int($0.jsNumber) } ?? 1)
        if case .array(let filters)? = definition["filters"] {
            experiment.filters = filters.compactMap { filter in
                guard case .object(let fields) = filter else { return nil }
                return .with { converted in
                    converted.seed = fields["seed"]?.jsString ?? ""
                    converted.attribute = fields["attribute"]?.jsString ?? ""
                    converted.hashVersion = Int32(fields["hashVersion"].map { Int($0.jsNumber) } ?? 2)
                    if case .array(let ranges)? = fields["ranges"] {
                        converted.ranges = ranges.compactMap { range in
                            guard case .array(let bounds) = range, bounds.count == 2 else { return nil }
                            return .with { $0.start = bounds[0].jsNumber; $0.end = bounds[1].jsNumber }
                        }
                    }
                }
            }
        }
        experiment.status = definition["active"].map { $0.isTruthy ? .running : .draft } ?? .running
        return experiment
    }

    /// Whether our contract refuses what GrowthBook silently repairs:
    /// weights of the wrong length or not summing to 1, coverage outside
    /// [0, 1], fewer than two variations.
    static func violatesContract(_ definition: [String: JSONValue]) -> Bool {
        let count: Int = if case .array(let values)? = definition["variations"] { values.count } else { 0 }
        if count < 2 { return true }
        if case .array(let weights)? = definition["weights"] {
            if weights.count != count || abs(weights.reduce(0) { $0 + $1.jsNumber } - 1) > 0.01 { return true }
            if weights.contains(where: { $0.jsNumber < 0 || $0.jsNumber > 1 }) { return true }
        }
        if let coverage = definition["coverage"]?.jsNumber, coverage < 0 || coverage > 1 { return true }
        return false
    }
}

struct ConformanceError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
