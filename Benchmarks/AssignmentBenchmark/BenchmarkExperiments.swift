import Contracts
import ExperimentationServer
import SwiftProtobuf

/// 50 running experiments shaped like a real tenant's: plain splits,
/// targeted ones (country, plan, app version), partial coverage with three
/// arms, and a namespace of mutually exclusive tests.
enum BenchmarkExperiments {
    static var all: [Experiment] {
        (0..<50).map { index in
            var experiment = Experiment()
            experiment.key = String(format: "bench-%02d", index)
            experiment.status = .running
            experiment.hashVersion = 2
            let arms = index % 5 == 2 ? 3 : 2
            experiment.variations = (0..<arms).map { arm in
                .with {
                    $0.key = arm == 0 ? "control" : "treatment\(arm)"
                    $0.weight = 1 / Double(arms)
                    $0.value = Google_Protobuf_Value(structValue: .init(fields: ["arm": .init(numberValue: Double(arm))]))
                }
            }
            switch index % 5 {
            case 1:
                experiment.condition = condition(["country": .init(structValue: .init(fields: [
                    "$in": .init(listValue: .init(values: ["DE", "AT", "FR"].map { .init(stringValue: $0) })),
                ]))])
            case 2:
                experiment.coverage = 0.5
            case 3:
                experiment.condition = condition([
                    "plan": .init(stringValue: "pro"),
                    "app_version": .init(structValue: .init(fields: ["$vgte": .init(stringValue: "3.5.0")])),
                ])
            case 4:
                experiment.namespace = .with {
                    $0.id = "checkout"
                    $0.rangeStart = Double(index % 10) / 10
                    $0.rangeEnd = Double(index % 10) / 10 + 0.1
                }
            default:
                break
            }
            return experiment
        }
    }

    private static func condition(_ fields: [String: Google_Protobuf_Value]) -> Google_Protobuf_Struct {
        Google_Protobuf_Struct(fields: fields)
    }
}
