import Foundation

extension ONNXTensor {
    /// Decodes a weight or constant. `what` names it in errors.
    init(proto: Onnx_TensorProto, what: String) throws {
        if proto.dataLocation == .external || !proto.externalData.isEmpty {
            throw ONNXError.unsupportedModel("\(what) keeps its data in an external file; save the model with the weights inside")
        }
        guard let type = ONNXElementType(onnxCode: proto.dataType) else {
            throw ONNXError.unsupportedModel("\(what) has element type \(ONNXElementType.onnxName(proto.dataType)), which the executor does not support")
        }
        var count = 1
        for dim in proto.dims {
            guard dim >= 0 else { throw ONNXError.invalidModel("\(what) has a negative dimension in \(proto.dims)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(dim))
            guard !overflow else { throw ONNXError.invalidModel("\(what) has too many elements") }
            count = product
        }
        let shape = proto.dims.map { Int($0) }

        if type == .string {
            // ONNX keeps strings only in string_data, never in raw_data.
            guard !proto.hasRawData else {
                throw ONNXError.invalidModel("\(what) is a string tensor with raw_data; strings belong in string_data")
            }
            guard proto.stringData.count == count else {
                throw ONNXError.invalidModel("\(what) holds \(proto.stringData.count) strings, its shape \(shape) needs \(count)")
            }
            self.init(shape: shape, storage: .string(proto.stringData))
            return
        }

        if proto.hasRawData {
            let raw = proto.rawData
            let width = type == .bool ? 1 : (type == .float64 || type == .int64 ? 8 : 4)
            guard raw.count == count * width else {
                throw ONNXError.invalidModel("\(what) holds \(raw.count) bytes of data, its shape \(shape) needs \(count * width)")
            }
            let storage: Storage = switch type {
            case .float32: .float32(Self.littleEndian(raw, count: count, as: UInt32.self).map(Float.init(bitPattern:)))
            case .float64: .float64(Self.littleEndian(raw, count: count, as: UInt64.self).map(Double.init(bitPattern:)))
            case .int32: .int32(Self.littleEndian(raw, count: count, as: Int32.self))
            case .int64: .int64(Self.littleEndian(raw, count: count, as: Int64.self))
            case .bool: .bool(raw.map { $0 != 0 })
            case .string: preconditionFailure("strings were decoded above")
            }
            self.init(shape: shape, storage: storage)
            return
        }

        // Without raw data the values are in the typed field for the element type.
        let storage: Storage
        switch type {
        case .float32: storage = .float32(proto.floatData)
        case .float64: storage = .float64(proto.doubleData)
        case .int32: storage = .int32(proto.int32Data)
        case .int64: storage = .int64(proto.int64Data)
        case .bool: storage = .bool(proto.int32Data.map { $0 != 0 })
        case .string: storage = .string(proto.stringData)
        }
        guard storage.count == count else {
            throw ONNXError.invalidModel("\(what) holds \(storage.count) values, its shape \(shape) needs \(count)")
        }
        self.init(shape: shape, storage: storage)
    }

    /// Reads `count` little-endian integers; raw_data need not be aligned.
    private static func littleEndian<T: FixedWidthInteger>(_ data: Data, count: Int, as: T.Type) -> [T] {
        data.withUnsafeBytes { bytes in
            [T](unsafeUninitializedCapacity: count) { buffer, initialized in
                for index in 0..<count {
                    buffer[index] = T(littleEndian: bytes.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self))
                }
                initialized = count
            }
        }
    }
}
