/// Turns a decoded model into an `ExecutionPlan`, checking everything that
/// can be checked without data.
struct PlanBuilder {
    struct Loaded {
        let inputs: [ONNXValueInfo]
        let outputs: [ONNXValueInfo]
        let opsetVersion: Int
        let plan: ExecutionPlan
    }

    /// Opset 7 brought NumPy broadcasting to the arithmetic operators; older
    /// files use a different rule we do not implement.
    static let oldestOpset = 7

    let model: Onnx_ModelProto

    // Values by name, each with a slot, its element type and (for weights) its tensor.
    private var slots: [String: Int] = [:]
    private var types: [ONNXElementType] = []
    private var constants: [ONNXTensor?] = []

    init(model: Onnx_ModelProto) {
        self.model = model
    }

    mutating func build() throws -> Loaded {
        guard model.hasGraph else { throw ONNXError.invalidModel("the file has no graph") }
        let graph = model.graph
        let opset = try standardOpset()

        // Domains, then operators, before anything else: the most likely
        // reasons a real model does not load. A foreign domain says more
        // about the model than any single operator, so it is reported first.
        for (index, node) in graph.node.enumerated() where !(node.domain.isEmpty || node.domain == "ai.onnx") {
            throw ONNXError.unsupportedDomain(node: Self.name(of: node, index), opType: node.opType, domain: node.domain)
        }
        for (index, node) in graph.node.enumerated() where !ONNXModel.supportedOperators.contains(node.opType) {
            throw ONNXError.unsupportedOperator(node: Self.name(of: node, index), opType: node.opType)
        }

        for initializer in graph.initializer {
            guard !initializer.name.isEmpty else { throw ONNXError.invalidModel("an initializer has no name") }
            let tensor = try ONNXTensor(proto: initializer, what: "initializer \(initializer.name)")
            _ = try define(initializer.name, tensor.elementType, constant: tensor)
        }

        var bindings: [ExecutionPlan.InputBinding] = []
        var seenInputs: Set<String> = []
        for input in graph.input {
            guard seenInputs.insert(input.name).inserted else { throw ONNXError.invalidModel("input \(input.name) is declared twice") }
            let info = try Self.valueInfo(input, role: "input")
            if let slot = slots[input.name] {
                // Older files list weights among the inputs; the weight is the default.
                guard types[slot] == info.elementType else {
                    throw ONNXError.invalidModel("input \(input.name) is declared \(info.elementType) but its initializer is \(types[slot])")
                }
                bindings.append(.init(info: info, slot: slot, required: false))
            } else {
                bindings.append(.init(info: info, slot: try define(input.name, info.elementType), required: true))
            }
        }

        var steps: [PendingStep] = []
        for (index, node) in graph.node.enumerated() {
            let name = Self.name(of: node, index)
            let context = "node \(name) (\(node.opType))"
            guard let output = node.output.first, !output.isEmpty else {
                throw ONNXError.invalidModel("\(context) has no output")
            }
            guard node.output.dropFirst().allSatisfy(\.isEmpty) else {
                throw ONNXError.unsupportedModel("\(context) asks for \(node.output.count) outputs; the executor computes only the first")
            }
            let attributes = try Attributes(node, context: context)
            if node.opType == "Constant" {
                guard node.input.isEmpty else { throw ONNXError.invalidModel("\(context) has inputs") }
                let tensor = try attributes.constantValue()
                _ = try define(output, tensor.elementType, constant: tensor)
                continue
            }

            var inputs: [Int] = []
            for input in node.input {
                if input.isEmpty {
                    inputs.append(-1)
                    continue
                }
                guard let slot = slots[input] else {
                    throw ONNXError.invalidModel(
                        "\(context) reads \(input) before it is produced: the nodes are not in topological order or \(input) does not exist")
                }
                inputs.append(slot)
            }
            let kernel = try Self.kernel(node.opType, attributes, inputs: inputs, opset: opset, context: context)
            let type: ONNXElementType
            switch kernel.outputType(inputs.map { $0 < 0 ? nil : types[$0] }) {
            case .success(let result): type = result
            case .failure(let error): throw ONNXError.unsupportedModel("\(context): \(error.message)")
            }
            steps.append((name, node.opType, kernel, inputs, try define(output, type)))
        }

        guard !graph.output.isEmpty else { throw ONNXError.invalidModel("the graph has no outputs") }
        var outputs: [ONNXValueInfo] = []
        var outputSlots: [(String, Int)] = []
        for output in graph.output {
            guard let slot = slots[output.name] else {
                throw ONNXError.invalidModel("output \(output.name) is not produced by any node")
            }
            var info = try Self.valueInfo(output, role: "output", inferred: types[slot])
            guard info.elementType == types[slot] else {
                throw ONNXError.invalidModel("output \(output.name) is declared \(info.elementType) but computed as \(types[slot])")
            }
            if info.dimensions == nil, let constant = constants[slot] {
                info = ONNXValueInfo(name: info.name, elementType: info.elementType, dimensions: constant.shape.map { .fixed($0) })
            }
            outputs.append(info)
            outputSlots.append((output.name, slot))
        }

        Self.fuseBiasAdds(&steps, constants: constants, keep: Set(bindings.map(\.slot) + outputSlots.map(\.1)))

        // Keep only the nodes the outputs depend on.
        var needed = [Bool](repeating: false, count: types.count)
        for (_, slot) in outputSlots { needed[slot] = true }
        var live: [Bool] = Array(repeating: false, count: steps.count)
        for index in steps.indices.reversed() where needed[steps[index].output] {
            live[index] = true
            for slot in steps[index].inputs where slot >= 0 { needed[slot] = true }
        }
        let kept = steps.indices.filter { live[$0] }.map { steps[$0] }

        // Drop every value after its last use (outputs are kept to the end).
        var lastUse = [Int](repeating: -1, count: types.count)
        for (index, step) in kept.enumerated() {
            for slot in step.inputs where slot >= 0 { lastUse[slot] = index }
        }
        let isOutput = Set(outputSlots.map(\.1))
        let planned: [ExecutionPlan.Step] = kept.enumerated().map { index, step in
            var moves = [Bool](repeating: false, count: step.inputs.count)
            var release: [Int] = []
            for (position, slot) in step.inputs.enumerated() where slot >= 0 && lastUse[slot] == index && !isOutput.contains(slot) {
                if step.inputs.filter({ $0 == slot }).count == 1 {
                    moves[position] = true
                } else if !release.contains(slot) {
                    release.append(slot)
                }
            }
            return .init(node: step.node, opType: step.opType, kernel: step.kernel, inputs: step.inputs,
                         moves: moves, output: step.output, release: release)
        }

        let plan = ExecutionPlan(initialSlots: constants, inputs: bindings, steps: planned, outputs: outputSlots)
        return Loaded(inputs: bindings.filter(\.required).map(\.info), outputs: outputs, opsetVersion: opset, plan: plan)
    }

    typealias PendingStep = (node: String, opType: String, kernel: Kernel, inputs: [Int], output: Int)

    /// Rewrites MatMul by a constant [K, N] matrix whose only use is an Add
    /// of a constant N-element bias into one `matMulBias` step (the shape of
    /// every dense layer a converter writes). `keep` are slots whose values
    /// callers see or may replace: inputs (an initializer that is also an
    /// input can be fed) and outputs.
    private static func fuseBiasAdds(_ steps: inout [PendingStep], constants: [ONNXTensor?], keep: Set<Int>) {
        var uses: [Int: Int] = [:]
        for step in steps {
            for slot in step.inputs where slot >= 0 { uses[slot, default: 0] += 1 }
        }
        func constant(_ slot: Int) -> ONNXTensor? { keep.contains(slot) ? nil : constants[slot] }
        var fused: Set<Int> = []
        for index in steps.indices {
            let matMul = steps[index]
            guard case .matMul = matMul.kernel, !keep.contains(matMul.output), uses[matMul.output] == 1,
                  let weights = constant(matMul.inputs[1]), weights.shape.count == 2,
                  let consumer = steps.indices.first(where: { $0 > index && steps[$0].inputs.contains(matMul.output) }),
                  case .arithmetic(.add) = steps[consumer].kernel else { continue }
            let add = steps[consumer]
            let biasSlot = add.inputs[0] == matMul.output ? add.inputs[1] : add.inputs[0]
            guard let bias = constant(biasSlot), bias.elementType == weights.elementType,
                  bias.storage.count == weights.shape[1], bias.shape.last == weights.shape[1] else { continue }
            steps[consumer] = (node: "\(matMul.node)+\(add.node)", opType: "MatMul+Add", kernel: .matMulBias,
                               inputs: [matMul.inputs[0], matMul.inputs[1], biasSlot], output: add.output)
            fused.insert(index)
        }
        steps = steps.indices.filter { !fused.contains($0) }.map { steps[$0] }
    }

    private func standardOpset() throws -> Int {
        let versions = model.opsetImport.filter { $0.domain.isEmpty || $0.domain == "ai.onnx" }.map { Int($0.version) }
        guard let opset = versions.max() else {
            throw ONNXError.invalidModel("the model does not import the standard operator set (opset_import)")
        }
        guard opset >= Self.oldestOpset else {
            throw ONNXError.unsupportedModel("operator set \(opset) is older than \(Self.oldestOpset); convert the model to a newer opset")
        }
        return opset
    }

    /// Gives a new value a slot; every value is produced exactly once.
    private mutating func define(_ name: String, _ type: ONNXElementType, constant: ONNXTensor? = nil) throws -> Int {
        guard slots[name] == nil else { throw ONNXError.invalidModel("value \(name) is produced more than once") }
        slots[name] = types.count
        types.append(type)
        constants.append(constant)
        return types.count - 1
    }

    private static func name(of node: Onnx_NodeProto, _ index: Int) -> String {
        node.name.isEmpty ? "#\(index)" : node.name
    }

    private static func valueInfo(_ proto: Onnx_ValueInfoProto, role: String, inferred: ONNXElementType? = nil) throws -> ONNXValueInfo {
        guard !proto.name.isEmpty else { throw ONNXError.invalidModel("an \(role) has no name") }
        guard case .tensorType(let tensor)? = proto.type.value else {
            if let inferred, !proto.hasType {
                return ONNXValueInfo(name: proto.name, elementType: inferred, dimensions: nil)
            }
            throw ONNXError.unsupportedModel("\(role) \(proto.name) is not a tensor (sequences, maps and sparse tensors are not supported)")
        }
        let type: ONNXElementType
        if let declared = ONNXElementType(onnxCode: tensor.elemType) {
            type = declared
        } else if tensor.elemType == 0, let inferred {
            type = inferred
        } else {
            throw ONNXError.unsupportedModel(
                "\(role) \(proto.name) has element type \(ONNXElementType.onnxName(tensor.elemType)), which the executor does not support")
        }
        let dimensions: [ONNXValueInfo.Dimension]? = tensor.hasShape ? tensor.shape.dim.map { dimension in
            switch dimension.value {
            case .dimValue(let size)?: size >= 0 ? .fixed(Int(size)) : .unknown
            case .dimParam(let name)?: name.isEmpty ? .unknown : .symbolic(name)
            case nil: .unknown
            }
        } : nil
        return ONNXValueInfo(name: proto.name, elementType: type, dimensions: dimensions)
    }

    /// Reads and checks the attributes and input count of a node.
    private static func kernel(_ opType: String, _ attributes: Attributes, inputs: [Int], opset: Int, context: String) throws -> Kernel {
        func arity(_ range: ClosedRange<Int>, required: Int) throws {
            guard range.contains(inputs.count) else {
                let expected = range.count == 1 ? "\(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)"
                throw ONNXError.invalidModel("\(context) has \(inputs.count) inputs, needs \(expected)")
            }
            guard inputs.prefix(required).allSatisfy({ $0 >= 0 }) else {
                throw ONNXError.invalidModel("\(context) leaves out a required input")
            }
        }
        switch opType {
        case "Gemm":
            try arity(2...3, required: 2)
            return .gemm(alpha: try attributes.float("alpha") ?? 1, beta: try attributes.float("beta") ?? 1,
                         transA: try attributes.int("transA") ?? 0 != 0, transB: try attributes.int("transB") ?? 0 != 0)
        case "MatMul":
            try arity(2...2, required: 2)
            return .matMul
        case "Add", "Sub", "Mul", "Div":
            try arity(2...2, required: 2)
            let operation: Kernel.Arithmetic = switch opType {
            case "Add": .add
            case "Sub": .subtract
            case "Mul": .multiply
            default: .divide
            }
            return .arithmetic(operation)
        case "Relu", "Sigmoid", "Tanh":
            try arity(1...1, required: 1)
            return .activation(opType == "Relu" ? .relu : opType == "Sigmoid" ? .sigmoid : .tanh)
        case "Softmax":
            try arity(1...1, required: 1)
            let flattened = opset < 13
            return .softmax(axis: try attributes.int("axis") ?? (flattened ? 1 : -1), flattened: flattened)
        case "Concat":
            guard !inputs.isEmpty else { throw ONNXError.invalidModel("\(context) has no inputs") }
            try arity(1...inputs.count, required: inputs.count)
            guard let axis = try attributes.int("axis") else { throw ONNXError.invalidModel("\(context) has no axis attribute") }
            return .concat(axis: axis)
        case "Reshape":
            try arity(2...2, required: 2)
            return .reshape(allowZero: try attributes.int("allowzero") ?? 0 != 0)
        case "Flatten":
            try arity(1...1, required: 1)
            return .flatten(axis: try attributes.int("axis") ?? 1)
        case "Gather":
            try arity(2...2, required: 2)
            return .gather(axis: try attributes.int("axis") ?? 0)
        case "ReduceSum", "ReduceMean":
            try arity(1...2, required: 1)
            let axes = try attributes.ints("axes")
            if axes != nil && inputs.count > 1 && inputs[1] >= 0 {
                throw ONNXError.invalidModel("\(context) has axes both as attribute and as input")
            }
            return .reduce(opType == "ReduceSum" ? .sum : .mean, axes: axes,
                           keepDims: try attributes.int("keepdims") ?? 1 != 0,
                           noopWithEmptyAxes: try attributes.int("noop_with_empty_axes") ?? 0 != 0)
        case "Squeeze":
            try arity(1...2, required: 1)
            return .squeeze(axes: try attributes.ints("axes"))
        case "Unsqueeze":
            try arity(1...2, required: 1)
            let axes = try attributes.ints("axes")
            guard axes != nil || (inputs.count > 1 && inputs[1] >= 0) else {
                throw ONNXError.invalidModel("\(context) has no axes (attribute or input)")
            }
            return .unsqueeze(axes: axes)
        case "Identity":
            try arity(1...1, required: 1)
            return .identity
        case "Cast":
            try arity(1...1, required: 1)
            guard let code = try attributes.int("to") else { throw ONNXError.invalidModel("\(context) has no 'to' attribute") }
            guard let type = ONNXElementType(onnxCode: Int32(truncatingIfNeeded: code)) else {
                throw ONNXError.unsupportedModel("\(context) casts to \(ONNXElementType.onnxName(Int32(truncatingIfNeeded: code))), which the executor does not support")
            }
            return .cast(type)
        default:
            throw ONNXError.unsupportedOperator(node: context, opType: opType)
        }
    }
}

/// A node's attributes by name, read with their declared types checked.
struct Attributes {
    private var byName: [String: Onnx_AttributeProto] = [:]
    let context: String

    init(_ node: Onnx_NodeProto, context: String) throws {
        self.context = context
        for attribute in node.attribute {
            guard attribute.refAttrName.isEmpty else {
                throw ONNXError.unsupportedModel("\(context): attribute \(attribute.name) refers to a function attribute")
            }
            guard byName.updateValue(attribute, forKey: attribute.name) == nil else {
                throw ONNXError.invalidModel("\(context) sets attribute \(attribute.name) twice")
            }
        }
    }

    /// The attribute if present, after checking its type (files that leave
    /// `type` unset are trusted to use the right field).
    private func attribute(_ name: String, _ type: Onnx_AttributeProto.AttributeType) throws -> Onnx_AttributeProto? {
        guard let attribute = byName[name] else { return nil }
        guard !attribute.hasType || attribute.type == type else {
            throw ONNXError.invalidModel("\(context): attribute \(name) should be \(type), is \(attribute.type)")
        }
        return attribute
    }

    func int(_ name: String) throws -> Int? {
        try attribute(name, .int).map { Int($0.i) }
    }

    func float(_ name: String) throws -> Float? {
        try attribute(name, .float).map(\.f)
    }

    func ints(_ name: String) throws -> [Int]? {
        try attribute(name, .ints).map { $0.ints.map { Int($0) } }
    }

    /// The value of a Constant node, from whichever value attribute it sets.
    func constantValue() throws -> ONNXTensor {
        if let tensor = try attribute("value", .tensor) {
            return try ONNXTensor(proto: tensor.t, what: "the value of \(context)")
        }
        if let value = try attribute("value_float", .float) { return ONNXTensor(shape: [], float32: [value.f]) }
        if let value = try attribute("value_floats", .floats) { return ONNXTensor(shape: [value.floats.count], float32: value.floats) }
        if let value = try attribute("value_int", .int) { return ONNXTensor(shape: [], int64: [value.i]) }
        if let value = try attribute("value_ints", .ints) { return ONNXTensor(shape: [value.ints.count], int64: value.ints) }
        if let value = try attribute("value_string", .string) { return ONNXTensor(shape: [], strings: [value.s]) }
        if let value = try attribute("value_strings", .strings) { return ONNXTensor(shape: [value.strings.count], strings: value.strings) }
        throw ONNXError.unsupportedModel("\(context) has no tensor, float, int or string value (sparse constants are not supported)")
    }
}
