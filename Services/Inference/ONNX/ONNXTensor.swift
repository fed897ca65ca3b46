import Foundation

/// Element types the executor computes with (a subset of ONNX's). Strings
/// only move through the data-movement operators (Identity, Reshape,
/// Flatten, Squeeze, Unsqueeze, Concat, Gather); a model that computes on
/// them is rejected at load.
public enum ONNXElementType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case float32, float64, int32, int64, bool, string

    /// The type's code in ONNX files (`TensorProto.DataType`).
    public var onnxCode: Int32 {
        switch self {
        case .float32: 1
        case .int32: 6
        case .int64: 7
        case .string: 8
        case .bool: 9
        case .float64: 11
        }
    }

    public init?(onnxCode: Int32) {
        switch onnxCode {
        case 1: self = .float32
        case 6: self = .int32
        case 7: self = .int64
        case 8: self = .string
        case 9: self = .bool
        case 11: self = .float64
        default: return nil
        }
    }

    /// ONNX's name for a type code, for error messages about types we do not run.
    static func onnxName(_ code: Int32) -> String {
        let names = ["UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL",
                     "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"]
        return code >= 0 && Int(code) < names.count ? names[Int(code)] : "type \(code)"
    }

    public var description: String { rawValue }
}

/// A dense tensor in row-major order.
public struct ONNXTensor: Sendable, Equatable {
    /// The elements; the case is the element type.
    public enum Storage: Sendable, Equatable {
        case float32([Float])
        case float64([Double])
        case int32([Int32])
        case int64([Int64])
        case bool([Bool])
        /// ONNX STRING elements as bytes: ONNX (and Triton's BYTES) do not
        /// require them to be UTF-8.
        case string([Data])

        public var elementType: ONNXElementType {
            switch self {
            case .float32: .float32
            case .float64: .float64
            case .int32: .int32
            case .int64: .int64
            case .bool: .bool
            case .string: .string
            }
        }

        public var count: Int {
            switch self {
            case .float32(let values): values.count
            case .float64(let values): values.count
            case .int32(let values): values.count
            case .int64(let values): values.count
            case .bool(let values): values.count
            case .string(let values): values.count
            }
        }
    }

    public var shape: [Int]
    public var storage: Storage

    /// `storage.count` must equal the product of `shape` (`run` checks feeds).
    public init(shape: [Int], storage: Storage) {
        self.shape = shape
        self.storage = storage
    }

    public init(shape: [Int], float32 values: [Float]) { self.init(shape: shape, storage: .float32(values)) }
    public init(shape: [Int], float64 values: [Double]) { self.init(shape: shape, storage: .float64(values)) }
    public init(shape: [Int], int32 values: [Int32]) { self.init(shape: shape, storage: .int32(values)) }
    public init(shape: [Int], int64 values: [Int64]) { self.init(shape: shape, storage: .int64(values)) }
    public init(shape: [Int], bool values: [Bool]) { self.init(shape: shape, storage: .bool(values)) }
    public init(shape: [Int], strings values: [Data]) { self.init(shape: shape, storage: .string(values)) }

    public var elementType: ONNXElementType { storage.elementType }

    /// Number of elements the shape describes (the product of `shape`; `run`
    /// checks feeds without trapping on absurd shapes).
    public var elementCount: Int { shape.reduce(1, *) }

    /// The elements if they are float32.
    public var float32Values: [Float]? {
        if case .float32(let values) = storage { values } else { nil }
    }

    /// The elements if they are strings.
    public var stringValues: [Data]? {
        if case .string(let values) = storage { values } else { nil }
    }

    /// Every element converted to Double (booleans as 0 and 1); strings,
    /// which have no number, give NaN.
    public var doubleValues: [Double] {
        switch storage {
        case .float32(let values): values.map(Double.init)
        case .float64(let values): values
        case .int32(let values): values.map(Double.init)
        case .int64(let values): values.map(Double.init)
        case .bool(let values): values.map { $0 ? 1 : 0 }
        case .string(let values): values.map { _ in .nan }
        }
    }
}
