import Foundation

/// A loaded model artifact that computes outputs from inputs. Backends see
/// validated tensors only: names, types and shapes were checked against the
/// model's config before a request gets here, and batches are already
/// stacked along the first dimension.
public protocol ModelBackend: Sendable {
    /// Runs the model. `inputs` follow the config's input order; the result
    /// holds every output the config declares.
    func execute(_ inputs: [Tensor]) throws(BackendError) -> [Tensor]
}

/// A request the model itself could not compute.
public struct BackendError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Opens artifacts for a model definition.
enum Backends {
    static func load(_ definition: ModelDefinition, artifact: URL) throws(ModelLoadError) -> any ModelBackend {
        switch definition.backend {
        case .xgboost: try XGBoostBackend(definition: definition, artifact: artifact)
        case .onnx: try ONNXBackend(definition: definition, artifact: artifact)
        }
    }
}
