/// Why a model did not load or a run failed. Every problem the model itself
/// has (operators, domains, types, structure) is reported when it loads, so a
/// model that loads only fails at run time on bad feeds or on shapes that
/// do not fit together.
public enum ONNXError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The bytes are not an ONNX model, or the graph is malformed.
    case invalidModel(String)
    /// A node uses an operator the executor does not implement.
    case unsupportedOperator(node: String, opType: String)
    /// A node belongs to an operator domain other than the standard one
    /// (for example `ai.onnx.ml`).
    case unsupportedDomain(node: String, opType: String, domain: String)
    /// Valid ONNX the executor does not handle (an element type, external
    /// tensor data, an attribute value, an old operator set).
    case unsupportedModel(String)
    /// A graph input without a feed.
    case missingInput(String)
    /// A feed whose name is not a graph input.
    case unknownInput(String)
    /// A feed of the wrong element type.
    case inputTypeMismatch(input: String, expected: ONNXElementType, actual: ONNXElementType)
    /// A feed whose shape does not fit the declared one, or whose element
    /// count does not match its shape.
    case inputShapeMismatch(input: String, expected: String, actual: [Int])
    /// A node failed while running, for example on shapes that do not
    /// broadcast or an index out of range.
    case runFailed(node: String, opType: String, message: String)

    public var description: String {
        switch self {
        case .invalidModel(let message):
            "invalid ONNX model: \(message)"
        case .unsupportedOperator(let node, let opType):
            "unsupported ONNX operator \(opType) (node \(node)); supported: \(ONNXModel.supportedOperators.sorted().joined(separator: ", "))"
        case .unsupportedDomain(let node, let opType, let domain):
            "unsupported ONNX operator domain \(domain) (node \(node), operator \(opType)); only the standard ai.onnx operators are supported"
        case .unsupportedModel(let message):
            "unsupported ONNX model: \(message)"
        case .missingInput(let name):
            "missing input \(name)"
        case .unknownInput(let name):
            "\(name) is not an input of the model"
        case .inputTypeMismatch(let name, let expected, let actual):
            "input \(name) must be \(expected), got \(actual)"
        case .inputShapeMismatch(let name, let expected, let actual):
            "input \(name) has shape \(actual), expected \(expected)"
        case .runFailed(let node, let opType, let message):
            "\(opType) node \(node) failed: \(message)"
        }
    }
}

/// A kernel's failure, before the plan adds which node it was.
struct KernelError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
