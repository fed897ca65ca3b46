import Contracts
import Foundation
import MeridianRPC
import ServiceKit
import SwiftProtobuf

/// The user's experiment variations, and the model version they imply.
struct UserAssignments: Sendable {
    /// Variations of experiments the user is in.
    var variations: [Platform_Personalization_V1_VariationInfo] = []
    /// The ranking model version the variation names; nil lets inference route.
    var modelVersion: String?
    /// What to log as exposures once the answer is made.
    var exposures: [Platform_Experimentation_V1_Exposure] = []
}

/// What the model knows of the user, and where their taste lies.
struct UserFeatures: Sendable {
    /// One value per user feature column of the model; NaN when missing.
    var modelValues: [Float]
    var favoriteCategory: String?

    static func missing(count: Int) -> UserFeatures { UserFeatures(modelValues: Array(repeating: .nan, count: count)) }
}

/// The calls personalization makes, one per dependency step, each turning a
/// response into what ranking needs.
struct DependencySteps: Sendable {
    let settings: PersonalizationSettings
    let catalog: Dependency
    let featureStore: Dependency
    let inference: Dependency
    let experimentation: Dependency

    // MARK: Experimentation

    func assignments(user: String, context: [String: String], tenant: TenantID, budget: RequestBudget) async -> Result<UserAssignments, DependencyFailure> {
        let client = Platform_Experimentation_V1_ExperimentationServiceClient(channel: experimentation.channel)
        let request = ProviderRequests.assignments(user: user, context: context)
        return await experimentation.call("assignment", budget: budget, tenant: tenant) { options in
            try await client.getAssignments(request, options: options)
        }.map { response in
            var result = UserAssignments()
            for assignment in response.assignments where assignment.inExperiment {
                result.variations.append(.with { $0.experimentKey = assignment.experimentKey; $0.variationKey = assignment.variationKey })
                result.exposures.append(.with {
                    $0.experimentKey = assignment.experimentKey
                    $0.variationKey = assignment.variationKey
                    $0.unitID = user
                })
                if assignment.experimentKey == settings.rankingExperiment,
                   case .structValue(let value)? = assignment.value.kind,
                   case .stringValue(let version)? = value.fields[settings.modelVersionKey]?.kind {
                    result.modelVersion = version
                }
            }
            return result
        }
    }

    func logExposures(_ exposures: [Platform_Experimentation_V1_Exposure], tenant: TenantID) async -> Result<Void, DependencyFailure> {
        let client = Platform_Experimentation_V1_ExperimentationServiceClient(channel: experimentation.channel)
        let budget = RequestBudget(callerTimeRemaining: nil, default: settings.timeouts.exposureLogging)
        return await experimentation.call("exposures", budget: budget, tenant: tenant, timeout: settings.timeouts.exposureLogging) { options in
            var options = options
            options.inheritsFromServerContext = false
            _ = try await client.logExposures(ProviderRequests.exposures(exposures), options: options)
        }
    }

    // MARK: Feature store

    func userFeatures(user: String, tenant: TenantID, budget: RequestBudget) async -> Result<UserFeatures, DependencyFailure> {
        let names = settings.userFeatures + [settings.affinityFeature]
        let request = ProviderRequests.features(names.map { "\(settings.userFeatureView):\($0)" }, joinKey: "user_id", ids: [user])
        return await lookup(request, step: "user_features", tenant: tenant, budget: budget).map { columns in
            let modelValues = columns.prefix(settings.userFeatures.count).map { $0.first.flatMap { $0 } .map(Self.float) ?? .nan }
            let favorite: String? = columns.last?.first.flatMap { $0 }.flatMap {
                if case .stringVal(let text)? = $0.val, !text.isEmpty { return text }
                return nil
            }
            return UserFeatures(modelValues: Array(modelValues), favoriteCategory: favorite)
        }
    }

    /// One row of model values per item, in order; NaN where missing.
    func itemFeatures(items: [String], tenant: TenantID, budget: RequestBudget) async -> Result<[[Float]], DependencyFailure> {
        let request = ProviderRequests.features(settings.itemFeatures.map { "\(settings.itemFeatureView):\($0)" }, joinKey: "item_id", ids: items)
        return await lookup(request, step: "item_features", tenant: tenant, budget: budget).map { columns in
            (0..<items.count).map { row in columns.map { column in column[row].map(Self.float) ?? .nan } }
        }
    }

    /// The feature columns of a lookup (join keys dropped): per row the
    /// value when PRESENT, nil otherwise.
    private func lookup(_ request: Platform_Featurestore_V1_GetOnlineFeaturesRequest, step: String, tenant: TenantID,
                        budget: RequestBudget) async -> Result<[[Platform_Featurestore_V1_Value?]], DependencyFailure> {
        let client = Platform_Featurestore_V1_FeatureStoreServiceClient(channel: featureStore.channel)
        let joinKeys = request.entities.count
        return await featureStore.call(step, budget: budget, tenant: tenant) { options in
            try await client.getOnlineFeatures(request, options: options)
        }.map { response in
            response.results.dropFirst(joinKeys).map { vector in
                zip(vector.values, vector.statuses).map { value, status in status == .present ? value : nil }
            }
        }
    }

    static func float(_ value: Platform_Featurestore_V1_Value) -> Float {
        switch value.val {
        case .int64Val(let number): Float(number)
        case .doubleVal(let number): Float(number)
        case .floatVal(let number): number
        case .boolVal(let flag): flag ? 1 : 0
        default: .nan
        }
    }

    // MARK: Inference

    /// Scores for each row of `features` (rows × columns, row-major) and the
    /// model version that answered.
    func scores(rows: Int, features: [Float], modelVersion: String?, user: String, requestID: String,
                tenant: TenantID, budget: RequestBudget) async -> Result<(scores: [Float], version: String), DependencyFailure> {
        let client = Inference_GRPCInferenceServiceClient(channel: inference.channel)
        let request = ProviderRequests.scores(model: settings.modelName, version: modelVersion, input: settings.modelInputName,
                                              output: settings.modelOutputName, rows: rows, features: features,
                                              routingKey: user, requestID: requestID)
        let outputName = settings.modelOutputName
        return await inference.call("inference", budget: budget, tenant: tenant) { options in
            let response = try await client.modelInfer(request, options: options)
            guard let index = response.outputs.firstIndex(where: { $0.name == outputName }), index < response.rawOutputContents.count,
                  response.outputs[index].datatype == "FP32" else {
                throw RPCError(.internal, "the model's answer has no FP32 output \(outputName)")
            }
            let raw = response.rawOutputContents[index]
            guard raw.count == rows * 4 else { throw RPCError(.internal, "output \(outputName) holds \(raw.count / 4) scores for \(rows) rows") }
            let scores = raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            return (scores, response.modelVersion)
        }
    }
}
