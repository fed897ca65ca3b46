/// One node of the plan: the operator with its attributes already read and
/// checked, so running it is a switch and a call.
enum Kernel: Sendable {
    enum Arithmetic: Sendable { case add, subtract, multiply, divide }
    enum Activation: Sendable { case relu, sigmoid, tanh }
    enum Reduction: Sendable { case sum, mean }

    case gemm(alpha: Float, beta: Float, transA: Bool, transB: Bool)
    case matMul
    /// MatMul by a constant [K, N] matrix followed by Add of a constant
    /// length-N bias, fused at load: the bias seeds the output and BLAS adds
    /// the product to it, saving a pass and a buffer.
    case matMulBias
    case arithmetic(Arithmetic)
    case activation(Activation)
    /// `flattened`: before opset 13 Softmax works on the input coerced to
    /// 2-D at `axis`, from 13 on along that one axis.
    case softmax(axis: Int, flattened: Bool)
    case concat(axis: Int)
    case reshape(allowZero: Bool)
    case flatten(axis: Int)
    case gather(axis: Int)
    /// `axes` nil: taken from the second input when there is one (opset 13+ / 18+).
    case reduce(Reduction, axes: [Int]?, keepDims: Bool, noopWithEmptyAxes: Bool)
    case squeeze(axes: [Int]?)
    case unsqueeze(axes: [Int]?)
    case identity
    case cast(ONNXElementType)

    /// Runs on the node's inputs (nil for omitted optional ones). Inputs the
    /// plan moved in may be consumed: their buffers become the output.
    func run(_ arguments: inout [ONNXTensor?]) throws(KernelError) -> ONNXTensor {
        switch self {
        case .gemm(let alpha, let beta, let transA, let transB):
            return try Operators.gemm(arguments[0]!, arguments[1]!, arguments.count > 2 ? arguments[2] : nil,
                                      alpha: alpha, beta: beta, transA: transA, transB: transB)
        case .matMul:
            return try Operators.matMul(arguments[0]!, arguments[1]!)
        case .matMulBias:
            return try Operators.matMulBias(arguments[0]!, arguments[1]!, arguments[2]!)
        case .arithmetic(let operation):
            var x = Self.take(&arguments, 0)
            return try Operators.arithmetic(operation, &x, arguments[1]!)
        case .activation(let activation):
            var x = Self.take(&arguments, 0)
            return try Operators.activation(activation, &x)
        case .softmax(let axis, let flattened):
            var x = Self.take(&arguments, 0)
            return try Operators.softmax(&x, axis: axis, flattened: flattened)
        case .concat(let axis):
            return try Operators.concat(arguments.map { $0! }, axis: axis)
        case .reshape(let allowZero):
            return try Operators.reshape(arguments[0]!, shape: arguments[1]!, allowZero: allowZero)
        case .flatten(let axis):
            return try Operators.flatten(arguments[0]!, axis: axis)
        case .gather(let axis):
            return try Operators.gather(arguments[0]!, indices: arguments[1]!, axis: axis)
        case .reduce(let reduction, let axes, let keepDims, let noop):
            let requested = try Self.axes(axes, arguments) ?? []
            return try Operators.reduce(reduction, arguments[0]!, axes: requested, keepDims: keepDims, noopWithEmptyAxes: noop)
        case .squeeze(let axes):
            return try Operators.squeeze(arguments[0]!, axes: Self.axes(axes, arguments))
        case .unsqueeze(let axes):
            guard let requested = try Self.axes(axes, arguments) else { throw KernelError("axes are required") }
            return try Operators.unsqueeze(arguments[0]!, axes: requested)
        case .identity:
            return arguments[0]!
        case .cast(let type):
            return try Operators.cast(arguments[0]!, to: type)
        }
    }

    private static func take(_ arguments: inout [ONNXTensor?], _ index: Int) -> ONNXTensor {
        let tensor = arguments[index]!
        arguments[index] = nil
        return tensor
    }

    /// Axes from the attribute, else from the optional second input.
    private static func axes(_ attribute: [Int]?, _ arguments: [ONNXTensor?]) throws(KernelError) -> [Int]? {
        if let attribute { return attribute }
        guard arguments.count > 1, let tensor = arguments[1] else { return nil }
        return try Shapes.int64Values(tensor, what: "the axes input")
    }

    /// The operators that accept string tensors, for error messages.
    static let stringOperators = "Identity, Reshape, Flatten, Squeeze, Unsqueeze, Concat and Gather"

    /// The element type of the output for these input types, or why the
    /// combination is not supported. Checked for every node at load, so
    /// kernels see only types they handle.
    func outputType(_ inputs: [ONNXElementType?]) -> Result<ONNXElementType, KernelError> {
        let numeric: Set<ONNXElementType> = [.float32, .float64, .int32, .int64]
        let floating: Set<ONNXElementType> = [.float32, .float64]
        let present = inputs.compactMap { $0 }
        let first = inputs.first ?? nil

        func same(_ allowed: Set<ONNXElementType>, _ what: String) -> Result<ONNXElementType, KernelError> {
            guard let first, allowed.contains(first), present.allSatisfy({ $0 == first }) else {
                return .failure(KernelError("inputs of types \(present.map(\.rawValue)) are not supported (needs \(what))"))
            }
            return .success(first)
        }
        func dataWithInt64(_ what: String) -> Result<ONNXElementType, KernelError> {
            guard let first else { return .failure(KernelError("missing data input")) }
            if inputs.count > 1, let second = inputs[1], second != .int64 {
                return .failure(KernelError("\(what) must be int64, is \(second)"))
            }
            return .success(first)
        }

        // Strings only move: a node that computes on them fails the load
        // here, before any other type check, with a message saying so.
        if present.contains(.string) {
            switch self {
            case .concat, .reshape, .flatten, .gather, .squeeze, .unsqueeze, .identity:
                break
            case .cast(let type) where type == .string && first == .string:
                break
            case .cast(let type):
                return .failure(KernelError(
                    "casts from string to \(type) are not supported (only string to string); string tensors only pass through "
                        + Self.stringOperators))
            case .gemm, .matMul, .matMulBias, .arithmetic, .activation, .softmax, .reduce:
                return .failure(KernelError(
                    "inputs of types \(present.map(\.rawValue)) are not supported: string tensors only pass through "
                        + Self.stringOperators + ", nothing computes on them"))
            }
        } else if case .cast(.string) = self {
            return .failure(KernelError(
                "casts from \(first?.rawValue ?? "none") to string are not supported (only string to string)"))
        }

        switch self {
        case .gemm, .matMul, .matMulBias, .softmax:
            return same(floating, "float32 or float64, all alike")
        case .activation(let activation):
            return same(activation == .relu ? numeric : floating, activation == .relu ? "a numeric type" : "float32 or float64")
        case .arithmetic:
            return same(numeric, "the same numeric type on both sides")
        case .concat:
            return same(Set(ONNXElementType.allCases), "one element type for all inputs")
        case .reduce:
            guard let first, numeric.contains(first) else {
                return .failure(KernelError("input of type \(present.first?.rawValue ?? "none") is not supported (needs a numeric type)"))
            }
            return dataWithInt64("the axes input")
        case .reshape:
            return dataWithInt64("the shape input")
        case .squeeze, .unsqueeze:
            return dataWithInt64("the axes input")
        case .flatten, .identity:
            return first.map { .success($0) } ?? .failure(KernelError("missing input"))
        case .gather:
            guard let first else { return .failure(KernelError("missing data input")) }
            guard inputs.count > 1, let indices = inputs[1], indices == .int64 || indices == .int32 else {
                return .failure(KernelError("indices must be int32 or int64"))
            }
            return .success(first)
        case .cast(let type):
            return .success(type)
        }
    }
}
