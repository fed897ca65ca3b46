// Micro-benchmark of the raw assignment function: units × the 50 running
// experiments of BenchmarkExperiments (the same set the GetAssignments load
// benchmark serves), in one thread. Prints assignments per second; the
// median of `--runs` runs is the figure to report.
//
//   swift build -c release --product assignment-benchmark
//   taskset -c 0 .build/release/assignment-benchmark [units] [runs]
//   .build/release/assignment-benchmark --print-experiments   # as JSON Lines
import Contracts
import ExperimentationServer
import Foundation
import NIOCore
import SwiftProtobuf

// Each measurement runs inside a function: top-level variables are
// globals, and every access to one pays a dynamic exclusivity check the
// service's code never does.

/// The per-request work of GetAssignments outside the runtime: decode the
/// request, assign every experiment, encode the response.
func measureRequestPath() throws {
    let request = Platform_Experimentation_V1_GetAssignmentsRequest.with {
        $0.attributes = Google_Protobuf_Struct(fields: ["id": .init(stringValue: "user-4242"), "country": .init(stringValue: "DE"),
                                                        "plan": .init(stringValue: "pro"), "app_version": .init(stringValue: "3.7.1")])
    }
    let requestBytes: [UInt8] = try request.serializedBytes()
    let prepared = BenchmarkExperiments.all.map(AssignableExperiment.init)
    let iterations = 20_000
    var decode = Duration.zero, assign = Duration.zero, encode = Duration.zero, size = 0
    let clock = ContinuousClock()
    for _ in 0..<iterations {
        var start = clock.now
        let decoded = try Platform_Experimentation_V1_GetAssignmentsRequest(serializedBytes: requestBytes)
        let attributes = decoded.attributes.fields.mapValues(JSONValue.init)
        decode += start.duration(to: clock.now)
        start = clock.now
        let now = Date()
        var lookups = AssignableExperiment.UnitLookups()
        let decisions = prepared.map { $0.decide(attributes, now: now, lookups: &lookups) }
        assign += start.duration(to: clock.now)
        start = clock.now
        let encoded = decisions.withUnsafeBufferPointer { AssignmentsEncoder.encode($0, of: prepared, units: lookups.units) }
        // What the server sends: the encoded fields, then the returned message.
        var bytes = Array(encoded.readableBytesView)
        bytes += try Platform_Experimentation_V1_GetAssignmentsResponse().serializedBytes() as [UInt8]
        size = bytes.count
        encode += start.duration(to: clock.now)
    }
    print("per request: decode \(decode / iterations), assign \(assign / iterations), encode \(encode / iterations); response \(size) bytes")
}

/// Assignments per second of `units` units against every experiment, per run.
func measureAssignments(units: Int, runs: Int) -> (rates: [Double], experiments: Int, checksum: Int) {
    let experiments = BenchmarkExperiments.all.map(AssignableExperiment.init)
    let countries: [JSONValue] = ["DE", "FR", "US", "GB", "AT"].map { .string($0) }
    let attributeSets = (0..<1024).map { index -> [String: JSONValue] in
        ["id": .string("user-\(index)"), "country": countries[index % countries.count], "plan": .string(index % 3 == 0 ? "pro" : "free"),
         "app_version": .string("3.\(index % 20).0"), "visits": .number(Double(index % 50))]
    }
    let now = Date()
    var rates: [Double] = []
    var checksum = 0
    for _ in 0..<runs {
        let start = ContinuousClock.now
        for unit in 0..<units {
            var attributes = attributeSets[unit & 1023]
            attributes["id"] = .string("user-\(unit)")
            var lookups = AssignableExperiment.UnitLookups()
            for experiment in experiments {
                checksum &+= experiment.decide(attributes, now: now, lookups: &lookups).index
            }
        }
        let elapsed = start.duration(to: .now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        rates.append(Double(units * experiments.count) / seconds)
    }
    return (rates.sorted(), experiments.count, checksum)
}

let arguments = CommandLine.arguments
if arguments.contains("--print-experiments") {
    // The same set as JSON Lines, for `experimentation apply` in the load benchmark.
    for experiment in BenchmarkExperiments.all { print(try experiment.jsonString()) }
} else if arguments.contains("--request-path") {
    try measureRequestPath()
} else {
    let units = arguments.count > 1 ? Int(arguments[1]) ?? 200_000 : 200_000
    let runs = arguments.count > 2 ? Int(arguments[2]) ?? 5 : 5
    let (rates, experiments, checksum) = measureAssignments(units: units, runs: runs)
    print(String(format: "assignments/s median %.0f (min %.0f, max %.0f) over %d runs of %d units x %d experiments [checksum %d]",
                 rates[rates.count / 2], rates.first!, rates.last!, runs, units, experiments, checksum))
}
