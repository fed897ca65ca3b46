import Contracts
import Foundation
import MeridianRPC
import StandardServices

/// A ModelInfer request checked against the model's config and turned into
/// raw tensors in the config's input order. Every problem is an
/// INVALID_ARGUMENT naming the tensor, found before any compute.
struct DecodedInferRequest {
    var inputs: [Tensor]
    /// Rows in the batch (1 for models without a batch dimension).
    var rows: Int
    /// Outputs to return, in the order asked (all, in config order, when none were asked).
    var outputs: [String]
}

enum InferRequestDecoder {
    static func decode(_ request: Inference_ModelInferRequest, definition: ModelDefinition) throws -> DecodedInferRequest {
        let model = definition.name
        let useRaw = !request.rawInputContents.isEmpty
        if useRaw && request.rawInputContents.count != request.inputs.count {
            throw RPCError.invalidArgument(violations: [FieldViolation("raw_input_contents",
                "has \(request.rawInputContents.count) entries for \(request.inputs.count) inputs; give one per input, in order")])
        }
        var byName: [String: Tensor] = [:]
        var rows: Int?
        for (position, input) in request.inputs.enumerated() {
            let field = "inputs[\(position)]"
            guard let spec = definition.inputs.first(where: { $0.name == input.name }) else {
                throw RPCError.invalidArgument(violations: [FieldViolation("\(field).name",
                    "unexpected input '\(input.name)' for model '\(model)' (it takes \(definition.inputs.map { "'\($0.name)'" }.joined(separator: ", ")))")])
            }
            guard byName[input.name] == nil else {
                throw RPCError.invalidArgument(violations: [FieldViolation("\(field).name", "input '\(input.name)' is given twice")])
            }
            guard input.datatype == spec.dataType.rawValue else {
                throw RPCError.invalidArgument(violations: [FieldViolation("\(field).datatype",
                    "input '\(input.name)' has datatype \(input.datatype.isEmpty ? "(none)" : input.datatype), model '\(model)' expects \(spec.dataType.rawValue)")])
            }
            let shape = input.shape.map { Int($0) }
            try checkShape(shape, spec: spec, definition: definition, field: "\(field).shape")
            let batch = definition.maxBatchSize > 0 ? shape[0] : 1
            if let rows, rows != batch {
                throw RPCError.invalidArgument(violations: [FieldViolation("\(field).shape",
                    "input '\(input.name)' has batch size \(batch) but other inputs have \(rows)")])
            }
            rows = batch
            let elements = shape.reduce(1, *)
            let raw: Data
            if useRaw {
                if input.hasContents && TypedContents.count(input.contents, as: spec.dataType) > 0 {
                    throw RPCError.invalidArgument(violations: [FieldViolation("\(field).contents",
                        "input '\(input.name)' has both contents and raw_input_contents; use one")])
                }
                raw = request.rawInputContents[position]
            } else {
                let count = TypedContents.count(input.contents, as: spec.dataType)
                guard count == elements else {
                    throw RPCError.invalidArgument(violations: [FieldViolation("\(field).contents",
                        "input '\(input.name)' has \(count) values in contents but shape \(shape) holds \(elements)")])
                }
                switch TypedContents.raw(input.contents, as: spec.dataType) {
                case .success(let bytes): raw = bytes
                case .failure(.outOfRange(let value)):
                    throw RPCError.invalidArgument(violations: [FieldViolation("\(field).contents",
                        "input '\(input.name)' value \(value) is out of range for \(spec.dataType.rawValue)")])
                }
            }
            if let size = spec.dataType.elementSize {
                guard raw.count == elements * size else {
                    throw RPCError.invalidArgument(violations: [FieldViolation(useRaw ? "raw_input_contents[\(position)]" : "\(field).contents",
                        "input '\(input.name)' has \(raw.count) bytes but shape \(shape) of \(spec.dataType.rawValue) needs \(elements * size)")])
                }
            } else {
                guard let parts = Tensor.splitBytesElements(raw), parts.count == elements else {
                    throw RPCError.invalidArgument(violations: [FieldViolation(useRaw ? "raw_input_contents[\(position)]" : "\(field).contents",
                        "input '\(input.name)' must hold \(elements) BYTES elements, each a 4-byte little-endian length then the bytes")])
                }
            }
            byName[input.name] = Tensor(name: input.name, dataType: spec.dataType, shape: shape, raw: raw)
        }
        var ordered: [Tensor] = []
        for spec in definition.inputs {
            if let tensor = byName[spec.name] {
                ordered.append(tensor)
            } else if !spec.optional {
                throw RPCError.invalidArgument(violations: [FieldViolation("inputs",
                    "model '\(model)' needs input '\(spec.name)' (\(spec.dataType.rawValue), shape \(definition.wireShape(spec)))")])
            }
        }
        var outputs: [String] = []
        for (position, output) in request.outputs.enumerated() {
            guard definition.outputs.contains(where: { $0.name == output.name }) else {
                throw RPCError.invalidArgument(violations: [FieldViolation("outputs[\(position)].name",
                    "unexpected output '\(output.name)' for model '\(model)' (it gives \(definition.outputs.map { "'\($0.name)'" }.joined(separator: ", ")))")])
            }
            outputs.append(output.name)
        }
        if outputs.isEmpty { outputs = definition.outputs.map(\.name) }
        return DecodedInferRequest(inputs: ordered, rows: rows ?? 1, outputs: outputs)
    }

    private static func checkShape(_ shape: [Int], spec: ModelDefinition.TensorSpec, definition: ModelDefinition, field: String) throws {
        let expected = definition.wireShape(spec)
        var matches = shape.count == expected.count && zip(shape, expected).allSatisfy { $1 == -1 ? $0 >= 0 : $0 == $1 }
        if definition.maxBatchSize > 0, matches {
            let batch = shape[0]
            if batch < 1 || batch > definition.maxBatchSize {
                throw RPCError.invalidArgument(violations: [FieldViolation(field,
                    "input '\(spec.name)' has batch size \(batch); model '\(definition.name)' takes 1 to \(definition.maxBatchSize)")])
            }
        }
        if shape.contains(where: { $0 < 0 }) { matches = false }
        guard matches else {
            throw RPCError.invalidArgument(violations: [FieldViolation(field,
                "input '\(spec.name)' has shape \(shape), model '\(definition.name)' expects \(expected) (-1: any size)")])
        }
    }
}
