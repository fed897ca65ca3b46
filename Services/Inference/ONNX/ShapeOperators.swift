import Foundation

/// Operators that move or relabel elements, and the reductions.
extension Operators {
    static func reshape(_ x: ONNXTensor, shape requestedTensor: ONNXTensor, allowZero: Bool) throws(KernelError) -> ONNXTensor {
        let requested = try Shapes.int64Values(requestedTensor, what: "the shape input")
        var shape: [Int] = []
        shape.reserveCapacity(requested.count)
        var inferred: Int?
        for (index, size) in requested.enumerated() {
            switch size {
            case -1:
                guard inferred == nil else { throw KernelError("shape \(requested) has more than one -1") }
                inferred = index
                shape.append(1)
            case 0 where !allowZero:
                // 0 keeps the input's size at the same position.
                guard index < x.shape.count else {
                    throw KernelError("shape \(requested) copies dimension \(index), which input shape \(x.shape) lacks")
                }
                shape.append(x.shape[index])
            case ..<0:
                throw KernelError("shape \(requested) has a negative size")
            default:
                shape.append(size)
            }
        }
        let count = x.storage.count
        if let inferred {
            guard let known = Shapes.checkedCount(shape), known > 0, count % known == 0 else {
                throw KernelError("cannot reshape \(x.shape) to \(requested)")
            }
            shape[inferred] = count / known
        }
        guard Shapes.checkedCount(shape) == count else { throw KernelError("cannot reshape \(x.shape) to \(requested)") }
        return ONNXTensor(shape: shape, storage: x.storage)
    }

    static func flatten(_ x: ONNXTensor, axis: Int) throws(KernelError) -> ONNXTensor {
        let rank = x.shape.count
        guard axis >= -rank && axis <= rank else { throw KernelError("axis \(axis) is out of range for rank \(rank)") }
        let split = axis < 0 ? axis + rank : axis
        return ONNXTensor(shape: [Shapes.count(Array(x.shape[..<split])), Shapes.count(Array(x.shape[split...]))], storage: x.storage)
    }

    static func squeeze(_ x: ONNXTensor, axes: [Int]?) throws(KernelError) -> ONNXTensor {
        let rank = x.shape.count
        guard let axes, !axes.isEmpty else {
            return ONNXTensor(shape: x.shape.filter { $0 != 1 }, storage: x.storage)
        }
        var remove = [Bool](repeating: false, count: rank)
        for axis in axes {
            let axis = try Shapes.axis(axis, rank: rank)
            guard x.shape[axis] == 1 else { throw KernelError("cannot squeeze axis \(axis) of shape \(x.shape): its size is not 1") }
            remove[axis] = true
        }
        return ONNXTensor(shape: x.shape.indices.filter { !remove[$0] }.map { x.shape[$0] }, storage: x.storage)
    }

    static func unsqueeze(_ x: ONNXTensor, axes: [Int]) throws(KernelError) -> ONNXTensor {
        let rank = x.shape.count + axes.count
        var insert = [Bool](repeating: false, count: rank)
        for axis in axes {
            let axis = try Shapes.axis(axis, rank: rank)
            guard !insert[axis] else { throw KernelError("axes \(axes) repeat an axis") }
            insert[axis] = true
        }
        var shape: [Int] = []
        var source = 0
        for axis in 0..<rank {
            if insert[axis] {
                shape.append(1)
            } else {
                shape.append(x.shape[source])
                source += 1
            }
        }
        return ONNXTensor(shape: shape, storage: x.storage)
    }

    static func concat(_ inputs: [ONNXTensor], axis: Int) throws(KernelError) -> ONNXTensor {
        let first = inputs[0]
        let rank = first.shape.count
        let axis = try Shapes.axis(axis, rank: rank)
        var shape = first.shape
        shape[axis] = 0
        for input in inputs {
            guard input.shape.count == rank,
                  input.shape.indices.allSatisfy({ $0 == axis || input.shape[$0] == first.shape[$0] }) else {
                throw KernelError("input shapes \(inputs.map(\.shape)) differ outside axis \(axis)")
            }
            shape[axis] += input.shape[axis]
        }
        let outer = Shapes.count(Array(shape[..<axis]))
        let chunks = inputs.map { Shapes.count(Array($0.shape[axis...])) }
        switch first.elementType {
        case .float32: return try concat(Float.self, inputs, outer: outer, chunks: chunks, shape: shape)
        case .float64: return try concat(Double.self, inputs, outer: outer, chunks: chunks, shape: shape)
        case .int32: return try concat(Int32.self, inputs, outer: outer, chunks: chunks, shape: shape)
        case .int64: return try concat(Int64.self, inputs, outer: outer, chunks: chunks, shape: shape)
        case .bool: return try concat(Bool.self, inputs, outer: outer, chunks: chunks, shape: shape)
        case .string: return try concat(Data.self, inputs, outer: outer, chunks: chunks, shape: shape)
        }
    }

    private static func concat<T: StorageElement>(_: T.Type, _ inputs: [ONNXTensor], outer: Int, chunks: [Int], shape: [Int]) throws(KernelError) -> ONNXTensor {
        var arrays: [[T]] = []
        for input in inputs {
            guard let values = T.values(input.storage) else { throw unexpected(input.elementType) }
            arrays.append(values)
        }
        var result: [T] = []
        result.reserveCapacity(Shapes.count(shape))
        for o in 0..<outer {
            for (values, chunk) in zip(arrays, chunks) {
                result.append(contentsOf: values[(o * chunk)..<((o + 1) * chunk)])
            }
        }
        return ONNXTensor(shape: shape, storage: T.storage(result))
    }

    static func gather(_ data: ONNXTensor, indices: ONNXTensor, axis: Int) throws(KernelError) -> ONNXTensor {
        let rank = data.shape.count
        guard rank >= 1 else { throw KernelError("data must have at least one dimension") }
        let axis = try Shapes.axis(axis, rank: rank)
        let size = data.shape[axis]
        let raw: [Int] = switch indices.storage {
        case .int64(let values): values.map { Int($0) }
        case .int32(let values): values.map { Int($0) }
        default: throw unexpected(indices.elementType)
        }
        var positions = raw
        for index in positions.indices {
            // Negative indices count from the end.
            let value = positions[index]
            guard value >= -size && value < size else {
                throw KernelError("index \(value) is out of range for axis \(axis) of size \(size)")
            }
            if value < 0 { positions[index] = value + size }
        }
        let outer = Shapes.count(Array(data.shape[..<axis]))
        let inner = Shapes.count(Array(data.shape[(axis + 1)...]))
        let shape = Array(data.shape[..<axis]) + indices.shape + Array(data.shape[(axis + 1)...])
        switch data.elementType {
        case .float32: return try gather(Float.self, data, positions, outer: outer, size: size, inner: inner, shape: shape)
        case .float64: return try gather(Double.self, data, positions, outer: outer, size: size, inner: inner, shape: shape)
        case .int32: return try gather(Int32.self, data, positions, outer: outer, size: size, inner: inner, shape: shape)
        case .int64: return try gather(Int64.self, data, positions, outer: outer, size: size, inner: inner, shape: shape)
        case .bool: return try gather(Bool.self, data, positions, outer: outer, size: size, inner: inner, shape: shape)
        case .string: return try gather(Data.self, data, positions, outer: outer, size: size, inner: inner, shape: shape)
        }
    }

    private static func gather<T: StorageElement>(_: T.Type, _ data: ONNXTensor, _ positions: [Int], outer: Int, size: Int,
                                                  inner: Int, shape: [Int]) throws(KernelError) -> ONNXTensor {
        guard let values = T.values(data.storage) else { throw unexpected(data.elementType) }
        var result: [T] = []
        result.reserveCapacity(outer * positions.count * inner)
        for o in 0..<outer {
            for position in positions {
                let start = (o * size + position) * inner
                result.append(contentsOf: values[start..<(start + inner)])
            }
        }
        return ONNXTensor(shape: shape, storage: T.storage(result))
    }

    static func reduce(_ reduction: Kernel.Reduction, _ x: ONNXTensor, axes: [Int], keepDims: Bool,
                       noopWithEmptyAxes: Bool) throws(KernelError) -> ONNXTensor {
        if axes.isEmpty && noopWithEmptyAxes { return x }
        let rank = x.shape.count
        // No axes means every axis.
        var reduced = [Bool](repeating: axes.isEmpty, count: rank)
        for axis in axes { reduced[try Shapes.axis(axis, rank: rank)] = true }
        let kept = x.shape.indices.map { reduced[$0] ? 1 : x.shape[$0] }
        let shape = keepDims ? kept : x.shape.indices.filter { !reduced[$0] }.map { x.shape[$0] }
        let count = Shapes.count(x.shape.indices.filter { reduced[$0] }.map { x.shape[$0] })
        switch x.elementType {
        case .float32: return try reduce(Float.self, reduction, x, kept: kept, count: count, shape: shape)
        case .float64: return try reduce(Double.self, reduction, x, kept: kept, count: count, shape: shape)
        case .int32: return try reduce(Int32.self, reduction, x, kept: kept, count: count, shape: shape)
        case .int64: return try reduce(Int64.self, reduction, x, kept: kept, count: count, shape: shape)
        case .bool, .string: throw unexpected(x.elementType)
        }
    }

    private static func reduce<T: NumericElement>(_: T.Type, _ reduction: Kernel.Reduction, _ x: ONNXTensor, kept: [Int],
                                                  count: Int, shape: [Int]) throws(KernelError) -> ONNXTensor {
        guard let values = T.values(x.storage) else { throw unexpected(x.elementType) }
        var result = [T](repeating: T.zero, count: Shapes.count(kept))
        // Walk the input in order; the output's stride is 0 along reduced axes.
        let loop = StridedLoop(shape: x.shape, stridesA: Shapes.strides(x.shape),
                               stridesB: Shapes.broadcastStrides(kept, to: x.shape))
        let inner = loop.inner, stepA = loop.innerA, stepB = loop.innerB
        values.withUnsafeBufferPointer { input in
            result.withUnsafeMutableBufferPointer { output in
                let out = output
                loop.forEachRun { offsetA, offsetB in
                    if stepB == 0 {
                        var sum = T.zero
                        for k in 0..<inner { sum = T.add(sum, input[offsetA + k * stepA]) }
                        out[offsetB] = T.add(out[offsetB], sum)
                    } else {
                        for k in 0..<inner {
                            out[offsetB + k * stepB] = T.add(out[offsetB + k * stepB], input[offsetA + k * stepA])
                        }
                    }
                }
            }
        }
        if reduction == .mean {
            for index in result.indices { result[index] = T.mean(result[index], count: count) }
        }
        return ONNXTensor(shape: shape, storage: T.storage(result))
    }
}
