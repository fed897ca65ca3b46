import Contracts
import Foundation

/// Typed `contents` (the protocol's alternative to raw bytes) turned into raw
/// form, so everything past decoding sees one representation.
enum TypedContents {
    /// The raw bytes of `contents` for a tensor of `dataType`, or a reason
    /// why they don't fit (wrong field filled, values out of range).
    static func raw(_ contents: Inference_InferTensorContents, as dataType: TensorDataType) -> Result<Data, Failure> {
        switch dataType {
        case .bool:
            return .success(Data(contents.boolContents.map { $0 ? 1 : 0 }))
        case .int8:
            return narrow(contents.intContents, to: Int8.self)
        case .int16:
            return narrow(contents.intContents, to: Int16.self)
        case .int32:
            return .success(littleEndian(contents.intContents))
        case .int64:
            return .success(littleEndian(contents.int64Contents))
        case .uint8:
            return narrow(contents.uintContents, to: UInt8.self)
        case .uint16:
            return narrow(contents.uintContents, to: UInt16.self)
        case .uint32:
            return .success(littleEndian(contents.uintContents))
        case .uint64:
            return .success(littleEndian(contents.uint64Contents))
        case .fp32:
            return .success(littleEndian(contents.fp32Contents.map(\.bitPattern)))
        case .fp64:
            return .success(littleEndian(contents.fp64Contents.map(\.bitPattern)))
        case .bytes:
            return .success(Tensor.joinBytesElements(contents.bytesContents))
        }
    }

    /// How many values `contents` holds in the field that `dataType` uses.
    static func count(_ contents: Inference_InferTensorContents, as dataType: TensorDataType) -> Int {
        switch dataType {
        case .bool: contents.boolContents.count
        case .int8, .int16, .int32: contents.intContents.count
        case .int64: contents.int64Contents.count
        case .uint8, .uint16, .uint32: contents.uintContents.count
        case .uint64: contents.uint64Contents.count
        case .fp32: contents.fp32Contents.count
        case .fp64: contents.fp64Contents.count
        case .bytes: contents.bytesContents.count
        }
    }

    enum Failure: Error {
        case outOfRange(Int64)
    }

    private static func narrow<Source: BinaryInteger, Target: FixedWidthInteger>(_ values: [Source], to: Target.Type) -> Result<Data, Failure> {
        var narrowed: [Target] = []
        narrowed.reserveCapacity(values.count)
        for value in values {
            guard let exact = Target(exactly: value) else { return .failure(.outOfRange(Int64(truncatingIfNeeded: value))) }
            narrowed.append(exact)
        }
        return .success(littleEndian(narrowed))
    }

    private static func littleEndian<T: FixedWidthInteger>(_ values: [T]) -> Data {
        let swapped = values.map(\.littleEndian)
        return swapped.withUnsafeBytes { Data($0) }
    }
}
