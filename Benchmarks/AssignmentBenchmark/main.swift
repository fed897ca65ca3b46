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
import SwiftProtobuf

let arguments = CommandLine.arguments
if arguments.contains("--print-experiments") {
    // The same set as JSON Lines, for `experimentation apply` in the load benchmark.
    for experiment in BenchmarkExperiments.all { print(try experiment.jsonString()) }
    exit(0)
}
if arguments.contains("--request-path") {
    // The per-request work of GetAssignments outside the runtime: decode the
    // request, assign every experiment, encode the response.
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
        var response = Platform_Experimentation_V1_GetAssignmentsResponse()
        response.assignments = prepared.map { $0.assign(attributes, now: Date(), payload: .encoded) }
        assign += start.duration(to: clock.now)
        start = clock.now
        let bytes: [UInt8] = try response.serializedBytes()
        size = bytes.count
        encode += start.duration(to: clock.now)
    }
    print("per request: decode \(decode / iterations), assign \(assign / iterations), encode \(encode / iterations); response \(size) bytes")
    exit(0)
}
let units = arguments.count > 1 ? Int(arguments[1]) ?? 200_000 : 200_000
let runs = arguments.count > 2 ? Int(arguments[2]) ?? 5 : 5
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
        for experiment in experiments {
            checksum &+= Int(experiment.assign(attributes, now: now).variationIndex)
        }
    }
    let elapsed = start.duration(to: .now)
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    rates.append(Double(units * experiments.count) / seconds)
}
rates.sort()
print(String(format: "assignments/s median %.0f (min %.0f, max %.0f) over %d runs of %d units x %d experiments [checksum %d]",
             rates[rates.count / 2], rates.first!, rates.last!, runs, units, experiments.count, checksum))
