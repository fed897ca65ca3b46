import Contracts
import Foundation

/// Element types of the Open Inference Protocol, by their wire names.
public enum TensorDataType: String, Sendable, CaseIterable {
    case bool = "BOOL"
    case uint8 = "UINT8", int8 = "INT8"
    case uint16 = "UINT16", int16 = "INT16"
    case uint32 = "UINT32", int32 = "INT32"
    case uint64 = "UINT64", int64 = "INT64"
    case fp32 = "FP32", fp64 = "FP64"
    case bytes = "BYTES"

    /// Bytes per element in raw form; nil for BYTES, whose elements are
    /// length-prefixed and vary in size.
    public var elementSize: Int? {
        switch self {
        case .bool, .uint8, .int8: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .fp32: 4
        case .uint64, .int64, .fp64: 8
        case .bytes: nil
        }
    }

    /// The model configuration's spelling (`TYPE_FP32`) to the wire's (`FP32`).
    public init?(config: Inference_DataType) {
        switch config {
        case .typeBool: self = .bool
        case .typeUint8: self = .uint8
        case .typeInt8: self = .int8
        case .typeUint16: self = .uint16
        case .typeInt16: self = .int16
        case .typeUint32: self = .uint32
        case .typeInt32: self = .int32
        case .typeUint64: self = .uint64
        case .typeInt64: self = .int64
        case .typeFp32: self = .fp32
        case .typeFp64: self = .fp64
        case .typeString: self = .bytes
        default: return nil
        }
    }
}

/// One tensor in raw form: little-endian elements, row-major, as
/// `raw_input_contents` and `raw_output_contents` carry them. Backends read
/// and write this form, so a request's bytes reach a model without copies
/// through typed arrays.
public struct Tensor: Sendable, Equatable {
    public var name: String
    public var dataType: TensorDataType
    public var shape: [Int]
    public var raw: Data

    public init(name: String, dataType: TensorDataType, shape: [Int], raw: Data) {
        self.name = name
        self.dataType = dataType
        self.shape = shape
        self.raw = raw
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// A float32 tensor from values.
    public init(name: String, shape: [Int], float32 values: [Float]) {
        self.init(name: name, dataType: .fp32, shape: shape, raw: values.withUnsafeBytes { Data($0) })
    }

    /// The elements as float32 (FP32 tensors only).
    public var float32Values: [Float] {
        precondition(dataType == .fp32)
        // Copied, not rebound: the bytes need not be aligned for Float.
        var values = [Float](repeating: 0, count: raw.count / 4)
        values.withUnsafeMutableBytes { _ = raw.copyBytes(to: $0) }
        return values
    }

    /// The elements of a BYTES tensor, each a 4-byte little-endian length then its bytes.
    public static func splitBytesElements(_ raw: Data) -> [Data]? {
        var elements: [Data] = []
        var offset = raw.startIndex
        while offset < raw.endIndex {
            guard raw.endIndex - offset >= 4 else { return nil }
            let length = raw[offset..<offset + 4].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            offset += 4
            guard raw.endIndex - offset >= length else { return nil }
            elements.append(raw[offset..<offset + length])
            offset += length
        }
        return elements
    }

    /// BYTES elements joined into raw form.
    public static func joinBytesElements<S: Sequence>(_ elements: S) -> Data where S.Element == Data {
        var raw = Data()
        for element in elements {
            var length = UInt32(element.count).littleEndian
            withUnsafeBytes(of: &length) { raw.append(contentsOf: $0) }
            raw.append(element)
        }
        return raw
    }

    /// Rows `range` of this tensor along the batch (first) dimension.
    public func rows(_ range: Range<Int>) -> Tensor {
        let rowShape = Array(shape.dropFirst())
        if let size = dataType.elementSize {
            let rowBytes = rowShape.reduce(1, *) * size
            let start = raw.startIndex + range.lowerBound * rowBytes
            return Tensor(name: name, dataType: dataType, shape: [range.count] + rowShape,
                          raw: Data(raw[start..<start + range.count * rowBytes]))
        }
        let perRow = rowShape.reduce(1, *)
        let elements = Tensor.splitBytesElements(raw) ?? []
        let slice = elements[(range.lowerBound * perRow)..<(range.upperBound * perRow)]
        return Tensor(name: name, dataType: dataType, shape: [range.count] + rowShape, raw: Tensor.joinBytesElements(slice))
    }

    /// Tensors of the same name, type and row shape stacked along the batch dimension.
    public static func concatenate(_ parts: [Tensor]) -> Tensor {
        guard var first = parts.first else { preconditionFailure("nothing to concatenate") }
        guard parts.count > 1 else { return first }
        var raw = Data(capacity: parts.reduce(0) { $0 + $1.raw.count })
        for part in parts { raw.append(part.raw) }
        first.shape[0] = parts.reduce(0) { $0 + $1.shape[0] }
        first.raw = raw
        return first
    }
}
