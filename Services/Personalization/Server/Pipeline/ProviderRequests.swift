import Contracts
import Foundation
import SwiftProtobuf

/// Every request personalization sends to the services it depends on, built
/// in one place: the pipeline sends them, and the consumer contract tests
/// record them (with what personalization reads from the answers) in
/// `Tests/Contract/consumers/`, which each provider's tests replay.
public enum ProviderRequests {
    /// Catalog: candidates of one category (or any), newest first.
    public static func candidates(filter: String, pageSize: Int32) -> Platform_Catalog_V1_ListProductsRequest {
        .with {
            $0.pageSize = pageSize
            $0.filter = filter
            $0.orderBy = "update_time desc"
        }
    }

    /// Catalog: the products RankItems was given.
    public static func products(_ ids: [String]) -> Platform_Catalog_V1_BatchGetProductsRequest {
        .with { $0.productIds = ids }
    }

    /// Catalog: one page of the whole catalog, for the mirror.
    public static func catalogPage(token: String) -> Platform_Catalog_V1_ListProductsRequest {
        .with { $0.pageSize = 1000; $0.pageToken = token }
    }

    /// Experimentation: every running experiment's assignment for the user,
    /// without logging exposures (those follow the answer).
    public static func assignments(user: String, context: [String: String]) -> Platform_Experimentation_V1_GetAssignmentsRequest {
        var attributes = Google_Protobuf_Struct()
        for (key, value) in context { attributes.fields[key] = Google_Protobuf_Value(stringValue: value) }
        attributes.fields["id"] = Google_Protobuf_Value(stringValue: user)
        return .with { $0.attributes = attributes }
    }

    /// Experimentation: the exposures of one answer.
    public static func exposures(_ exposures: [Platform_Experimentation_V1_Exposure]) -> Platform_Experimentation_V1_LogExposuresRequest {
        .with { $0.exposures = exposures }
    }

    /// Feature store: features of entities of one join key.
    public static func features(_ references: [String], joinKey: String, ids: [String]) -> Platform_Featurestore_V1_GetOnlineFeaturesRequest {
        .with {
            $0.features.val = references
            $0.entities = [joinKey: .with { $0.val = ids.map { id in .with { $0.stringVal = id } } }]
        }
    }

    /// Inference: one batch of (user, item) rows, FP32 [rows, columns].
    public static func scores(model: String, version: String?, input: String, output: String, rows: Int, features: [Float],
                              routingKey: String, requestID: String) -> Inference_ModelInferRequest {
        let columns = rows == 0 ? 0 : features.count / rows
        return .with {
            $0.modelName = model
            $0.modelVersion = version ?? ""
            $0.id = requestID
            $0.inputs = [.with { $0.name = input; $0.datatype = "FP32"; $0.shape = [Int64(rows), Int64(columns)] }]
            $0.rawInputContents = [features.withUnsafeBytes { Data($0) }]
            $0.outputs = [.with { $0.name = output }]
            // Callers that name no version are split by the model's routing, sticky per user.
            $0.parameters["routing_key"] = .with { $0.stringParam = routingKey }
        }
    }
}
