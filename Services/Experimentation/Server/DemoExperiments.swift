import Contracts
import Foundation
import SwiftProtobuf

/// The demo tenant's experiments (`--demo-data`): `ranker-v2` splits users
/// between the two ranking model versions personalization serves.
public enum DemoExperiments {
    public static let tenant = "demo"

    public static var rankerV2: Experiment {
        .with {
            $0.key = "ranker-v2"
            $0.name = "Ranker v2"
            $0.description_p = "Does the v2 ranking model raise purchases? Half of users get recommendations ranked by v2."
            $0.variations = [
                .with { $0.key = "control"; $0.weight = 0.5; $0.name = "Ranker v1"; $0.value = Google_Protobuf_Value(structValue: .init(fields: ["ranker_version": .init(stringValue: "1")])) },
                .with { $0.key = "treatment"; $0.weight = 0.5; $0.name = "Ranker v2"; $0.value = Google_Protobuf_Value(structValue: .init(fields: ["ranker_version": .init(stringValue: "2")])) },
            ]
            $0.hashAttribute = "id"
            $0.hashVersion = 2
            $0.status = .running
            $0.owner = "recommendations"
            $0.metricKeys = ["purchase", "revenue"]
        }
    }
}
