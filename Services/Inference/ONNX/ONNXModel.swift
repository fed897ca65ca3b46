import Foundation
import SwiftProtobuf

/// The declared name, element type and shape of a model input or output.
public struct ONNXValueInfo: Sendable, Hashable {
    /// One dimension of a declared shape.
    public enum Dimension: Sendable, Hashable, CustomStringConvertible {
        case fixed(Int)
        /// Dynamic, with a name (for example "batch") shared by inputs that must agree.
        case symbolic(String)
        /// Dynamic and unnamed.
        case unknown

        public var description: String {
            switch self {
            case .fixed(let size): "\(size)"
            case .symbolic(let name): name
            case .unknown: "?"
            }
        }
    }

    public let name: String
    public let elementType: ONNXElementType
    /// nil when the model does not declare even the rank.
    public let dimensions: [Dimension]?

    /// The shape with -1 for every dynamic dimension (Triton's convention).
    public var shape: [Int]? {
        dimensions?.map { if case .fixed(let size) = $0 { size } else { -1 } }
    }

    public init(name: String, elementType: ONNXElementType, dimensions: [Dimension]?) {
        self.name = name
        self.elementType = elementType
        self.dimensions = dimensions
    }

    /// Whether a tensor of this shape may be fed for this value.
    func accepts(_ shape: [Int]) -> Bool {
        guard let dimensions else { return true }
        guard dimensions.count == shape.count else { return false }
        for (dimension, size) in zip(dimensions, shape) {
            if case .fixed(let expected) = dimension, expected != size { return false }
        }
        return true
    }

    var shapeDescription: String {
        guard let dimensions else { return "any" }
        return "[" + dimensions.map(\.description).joined(separator: ", ") + "]"
    }
}

/// An ONNX model ready to run. Everything about the model is checked when it
/// loads: operators, domains, element types, attributes, graph order. The
/// execution plan (nodes as kernels over numbered value slots, weights already
/// decoded) is built once; `run` only keeps per-call state on its own stack,
/// so one model serves concurrent calls.
public final class ONNXModel: Sendable {
    /// Operators of the standard domain the executor runs. `Constant` nodes
    /// are folded into weights at load.
    public static let supportedOperators: Set<String> = [
        "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Softmax", "Concat",
        "Reshape", "Flatten", "Gather", "ReduceSum", "ReduceMean", "Unsqueeze", "Squeeze", "Identity",
        "Cast", "Constant",
    ]

    /// The inputs a caller feeds (weights that older files list as inputs are left out).
    public let inputs: [ONNXValueInfo]
    public let outputs: [ONNXValueInfo]
    /// Version of the standard operator set the model was written against.
    public let opsetVersion: Int
    /// The tool that wrote the model, for logs.
    public let producer: String

    let plan: ExecutionPlan

    public convenience init(contentsOf url: URL) throws {
        try self.init(serialized: Data(contentsOf: url))
    }

    public init(serialized: Data) throws {
        let model: Onnx_ModelProto
        do {
            model = try Onnx_ModelProto(serializedBytes: serialized)
        } catch {
            throw ONNXError.invalidModel("the bytes are not an ONNX model (\(error))")
        }
        var builder = PlanBuilder(model: model)
        let loaded = try builder.build()
        inputs = loaded.inputs
        outputs = loaded.outputs
        opsetVersion = loaded.opsetVersion
        producer = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
        plan = loaded.plan
    }

    /// Runs the graph on `feeds` (one tensor per input, by name) and returns
    /// every graph output by name.
    public func run(_ feeds: [String: ONNXTensor]) throws -> [String: ONNXTensor] {
        var slots = plan.initialSlots
        var fed = 0
        for binding in plan.inputs {
            guard let tensor = feeds[binding.info.name] else {
                if binding.required { throw ONNXError.missingInput(binding.info.name) }
                continue
            }
            fed += 1
            guard tensor.elementType == binding.info.elementType else {
                throw ONNXError.inputTypeMismatch(input: binding.info.name, expected: binding.info.elementType, actual: tensor.elementType)
            }
            guard binding.info.accepts(tensor.shape), let count = Shapes.checkedCount(tensor.shape) else {
                throw ONNXError.inputShapeMismatch(input: binding.info.name, expected: binding.info.shapeDescription, actual: tensor.shape)
            }
            guard tensor.storage.count == count else {
                throw ONNXError.inputShapeMismatch(
                    input: binding.info.name, expected: "\(tensor.storage.count) elements (the data given)", actual: tensor.shape)
            }
            slots[binding.slot] = tensor
        }
        if fed != feeds.count {
            let known = Set(plan.inputs.map(\.info.name))
            if let name = feeds.keys.sorted().first(where: { !known.contains($0) }) { throw ONNXError.unknownInput(name) }
        }

        var arguments: [ONNXTensor?] = []
        arguments.reserveCapacity(plan.widestStep)
        for step in plan.steps {
            arguments.removeAll(keepingCapacity: true)
            for (position, slot) in step.inputs.enumerated() {
                if slot < 0 {
                    arguments.append(nil)
                } else {
                    arguments.append(slots[slot])
                    // Moving a dying value out lets the kernel reuse its buffer.
                    if step.moves[position] { slots[slot] = nil }
                }
            }
            do {
                slots[step.output] = try step.kernel.run(&arguments)
            } catch {
                throw ONNXError.runFailed(node: step.node, opType: step.opType, message: error.message)
            }
            for slot in step.release { slots[slot] = nil }
        }

        var results: [String: ONNXTensor] = [:]
        results.reserveCapacity(plan.outputs.count)
        for (name, slot) in plan.outputs {
            results[name] = slots[slot]
        }
        return results
    }
}

/// What `run` executes: value slots, the constants in them, and the nodes in order.
struct ExecutionPlan: Sendable {
    struct InputBinding: Sendable {
        let info: ONNXValueInfo
        let slot: Int
        /// False for inputs that also have an initializer (a default value).
        let required: Bool
    }

    struct Step: Sendable {
        let node: String
        let opType: String
        let kernel: Kernel
        /// Slot of each input; -1 for an omitted optional input.
        let inputs: [Int]
        /// Inputs whose value is not needed after this step.
        let moves: [Bool]
        let output: Int
        /// Slots last used here (and not moved), dropped so memory is reused.
        let release: [Int]
    }

    /// One entry per value; weights filled in, everything else nil.
    let initialSlots: [ONNXTensor?]
    let inputs: [InputBinding]
    let steps: [Step]
    let outputs: [(String, Int)]
    /// The most inputs any step takes.
    let widestStep: Int

    init(initialSlots: [ONNXTensor?], inputs: [InputBinding], steps: [Step], outputs: [(String, Int)]) {
        self.initialSlots = initialSlots
        self.inputs = inputs
        self.steps = steps
        self.outputs = outputs
        widestStep = steps.map(\.inputs.count).max() ?? 0
    }
}
