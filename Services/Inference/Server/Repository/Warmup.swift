import Foundation

/// Runs a new version before it serves, so its first real request finds
/// everything allocated and the config is proven to match the artifact:
/// a version whose outputs don't match its config never goes live.
enum Warmup {
    static func run(_ backend: any ModelBackend, definition: ModelDefinition) throws(ModelLoadError) {
        var plans: [(batch: Int, random: Bool, count: Int)] = [(1, false, 1)]
        for sample in definition.config.modelWarmup {
            let random = sample.inputs.values.contains { if case .randomData? = $0.inputDataType { true } else { false } }
            plans.append((max(Int(sample.batchSize), 1), random, max(Int(sample.count), 1)))
        }
        for plan in plans {
            let inputs = definition.inputs.map { sampleTensor($0, definition: definition, batch: plan.batch, random: plan.random) }
            for _ in 0..<plan.count {
                let outputs: [Tensor]
                do {
                    outputs = try backend.execute(inputs)
                } catch {
                    throw .warmup(error.description)
                }
                for spec in definition.outputs where !outputs.contains(where: { $0.name == spec.name }) {
                    throw .warmup("the model gives no output named '\(spec.name)' (it gives \(outputs.map(\.name)))")
                }
            }
        }
    }

    /// Zeros (or small random values) shaped as the config declares, -1 dims taken as 1.
    static func sampleTensor(_ spec: ModelDefinition.TensorSpec, definition: ModelDefinition, batch: Int, random: Bool) -> Tensor {
        let shape = (definition.maxBatchSize > 0 ? [batch] : []) + spec.dims.map { $0 == -1 ? 1 : $0 }
        let count = shape.reduce(1, *)
        guard let size = spec.dataType.elementSize else {
            return Tensor(name: spec.name, dataType: .bytes, shape: shape, raw: Tensor.joinBytesElements(Array(repeating: Data(), count: count)))
        }
        if random && spec.dataType == .fp32 {
            return Tensor(name: spec.name, shape: shape, float32: (0..<count).map { _ in Float.random(in: 0..<1) })
        }
        return Tensor(name: spec.name, dataType: spec.dataType, shape: shape, raw: Data(count: count * size))
    }
}
