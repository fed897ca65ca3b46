import Foundation
import ONNXExecutor

/// ONNX graphs through our own executor (`Services/Inference/ONNX`). The
/// config's tensors must name the graph's inputs and outputs with matching
/// element types; an unsupported operator fails the load, naming it.
final class ONNXBackend: ModelBackend {
    private let model: ONNXModel
    private let outputs: [(name: String, type: TensorDataType)]

    init(definition: ModelDefinition, artifact: URL) throws(ModelLoadError) {
        do {
            model = try ONNXModel(contentsOf: artifact)
        } catch {
            throw .artifact("\(artifact.lastPathComponent): \(error)")
        }
        for spec in definition.inputs {
            guard let info = model.inputs.first(where: { $0.name == spec.name }) else {
                throw .invalidConfig("input '\(spec.name)' is not an input of the graph (it takes \(model.inputs.map { "'\($0.name)'" }.joined(separator: ", ")))")
            }
            guard Self.elementType(spec.dataType) == info.elementType else {
                throw .invalidConfig("input '\(spec.name)' is \(spec.dataType.rawValue) in config.pbtxt but \(info.elementType) in the graph")
            }
        }
        for spec in definition.outputs {
            guard let info = model.outputs.first(where: { $0.name == spec.name }) else {
                throw .invalidConfig("output '\(spec.name)' is not an output of the graph (it gives \(model.outputs.map { "'\($0.name)'" }.joined(separator: ", ")))")
            }
            guard Self.elementType(spec.dataType) == info.elementType else {
                throw .invalidConfig("output '\(spec.name)' is \(spec.dataType.rawValue) in config.pbtxt but \(info.elementType) in the graph")
            }
        }
        outputs = definition.outputs.map { ($0.name, $0.dataType) }
    }

    func execute(_ inputs: [Tensor]) throws(BackendError) -> [Tensor] {
        var feeds: [String: ONNXTensor] = [:]
        for input in inputs { feeds[input.name] = try Self.onnxTensor(input) }
        let results: [String: ONNXTensor]
        do {
            results = try model.run(feeds)
        } catch {
            throw BackendError("\(error)")
        }
        return try outputs.map { output throws(BackendError) in
            guard let result = results[output.name] else { throw BackendError("the graph gave no output '\(output.name)'") }
            return Tensor(name: output.name, dataType: output.type, shape: result.shape, raw: Self.raw(result.storage))
        }
    }

    static func elementType(_ type: TensorDataType) -> ONNXElementType? {
        switch type {
        case .fp32: .float32
        case .fp64: .float64
        case .int32: .int32
        case .int64: .int64
        case .bool: .bool
        case .bytes: .string
        default: nil
        }
    }

    private static func onnxTensor(_ tensor: Tensor) throws(BackendError) -> ONNXTensor {
        func values<T>(_: T.Type) -> [T] {
            var values = [T]()
            values.reserveCapacity(tensor.elementCount)
            tensor.raw.withUnsafeBytes { bytes in
                for offset in stride(from: 0, to: bytes.count, by: MemoryLayout<T>.size) {
                    values.append(bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
                }
            }
            return values
        }
        switch tensor.dataType {
        case .fp32: return ONNXTensor(shape: tensor.shape, float32: values(Float.self))
        case .fp64: return ONNXTensor(shape: tensor.shape, float64: values(Double.self))
        case .int32: return ONNXTensor(shape: tensor.shape, int32: values(Int32.self))
        case .int64: return ONNXTensor(shape: tensor.shape, int64: values(Int64.self))
        case .bool: return ONNXTensor(shape: tensor.shape, bool: tensor.raw.map { $0 != 0 })
        case .bytes:
            // Length-prefixed elements (checked when the request was decoded)
            // become one Data each, copied out of the request's buffer.
            guard let elements = Tensor.splitBytesElements(tensor.raw) else {
                throw BackendError("input '\(tensor.name)' is not a sequence of length-prefixed BYTES elements")
            }
            return ONNXTensor(shape: tensor.shape, strings: elements.map { Data($0) })
        default: preconditionFailure("checked at load: \(tensor.dataType) has no ONNX element type here")
        }
    }

    private static func raw(_ storage: ONNXTensor.Storage) -> Data {
        switch storage {
        case .float32(let values): values.withUnsafeBytes { Data($0) }
        case .float64(let values): values.withUnsafeBytes { Data($0) }
        case .int32(let values): values.withUnsafeBytes { Data($0) }
        case .int64(let values): values.withUnsafeBytes { Data($0) }
        case .bool(let values): Data(values.map { $0 ? 1 : 0 })
        case .string(let values): Tensor.joinBytesElements(values)
        }
    }
}
