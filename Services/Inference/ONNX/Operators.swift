/// The operator implementations. Element types were checked at load
/// (`Kernel.outputType`), so a type the switch does not expect is an internal
/// error, not a user-facing one.
enum Operators {
    static func unexpected(_ type: ONNXElementType) -> KernelError {
        KernelError("internal error: unexpected element type \(type)")
    }

    // MARK: Elementwise

    static func arithmetic(_ operation: Kernel.Arithmetic, _ x: inout ONNXTensor, _ y: ONNXTensor) throws(KernelError) -> ONNXTensor {
        let shape = x.shape == y.shape ? x.shape : try Shapes.broadcast(x.shape, y.shape)
        switch x.elementType {
        case .float32: return try arithmetic(Float.self, operation, &x, y, shape)
        case .float64: return try arithmetic(Double.self, operation, &x, y, shape)
        case .int32: return try arithmetic(Int32.self, operation, &x, y, shape)
        case .int64: return try arithmetic(Int64.self, operation, &x, y, shape)
        case .bool, .string: throw unexpected(x.elementType)
        }
    }

    private static func arithmetic<T: NumericElement>(
        _: T.Type, _ operation: Kernel.Arithmetic, _ x: inout ONNXTensor, _ y: ONNXTensor, _ shape: [Int]
    ) throws(KernelError) -> ONNXTensor {
        guard var a = T.take(&x.storage), let b = T.values(y.storage) else { throw unexpected(y.elementType) }
        if T.isInteger, operation == .divide, b.contains(T.zero) { throw KernelError("integer division by zero") }
        let result: [T] = switch operation {
        case .add: broadcast(&a, x.shape, b, y.shape, shape, Add<T>.self)
        case .subtract: broadcast(&a, x.shape, b, y.shape, shape, Subtract<T>.self)
        case .multiply: broadcast(&a, x.shape, b, y.shape, shape, Multiply<T>.self)
        case .divide: broadcast(&a, x.shape, b, y.shape, shape, Divide<T>.self)
        }
        return ONNXTensor(shape: shape, storage: T.storage(result))
    }

    /// `a op b` with NumPy broadcasting to `shape`. When `a` already has the
    /// output's size its buffer is the result (written in place if unshared).
    /// The operation is a type, not a closure, so each loop is specialized
    /// with the arithmetic inlined.
    private static func broadcast<T, Operation: BinaryOperation>(
        _ a: inout [T], _ aShape: [Int], _ b: [T], _ bShape: [Int], _ shape: [Int], _: Operation.Type
    ) -> [T] where Operation.Element == T {
        let count = Shapes.count(shape)
        if a.count == count {
            a.withUnsafeMutableBufferPointer { pa in
                let out = pa
                b.withUnsafeBufferPointer { pb in
                    if pb.count == count {
                        for index in 0..<count { out[index] = Operation.apply(out[index], pb[index]) }
                    } else if pb.count == 1 {
                        let scalar = pb[0]
                        for index in 0..<count { out[index] = Operation.apply(out[index], scalar) }
                    } else {
                        let loop = StridedLoop(shape: shape, stridesA: Shapes.strides(shape),
                                               stridesB: Shapes.broadcastStrides(bShape, to: shape))
                        let inner = loop.inner, stepA = loop.innerA, stepB = loop.innerB
                        loop.forEachRun { offsetA, offsetB in
                            // Locals, not captures, so the compiler can keep them in registers and vectorize.
                            let target = out.baseAddress! + offsetA, source = pb.baseAddress! + offsetB, length = inner
                            if stepA == 1 && stepB == 1 {
                                // A row against a contiguous row of b: the bias-add shape.
                                for k in 0..<length { target[k] = Operation.apply(target[k], source[k]) }
                            } else {
                                let strideA = stepA, strideB = stepB
                                for k in 0..<length { target[k * strideA] = Operation.apply(target[k * strideA], source[k * strideB]) }
                            }
                        }
                    }
                }
            }
            return a
        }
        return [T](unsafeUninitializedCapacity: count) { out, initialized in
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    let loop = StridedLoop(shape: shape, stridesA: Shapes.broadcastStrides(aShape, to: shape),
                                           stridesB: Shapes.broadcastStrides(bShape, to: shape))
                    let inner = loop.inner, stepA = loop.innerA, stepB = loop.innerB
                    var position = 0
                    loop.forEachRun { offsetA, offsetB in
                        let target = out.baseAddress! + position, left = pa.baseAddress! + offsetA, right = pb.baseAddress! + offsetB
                        let length = inner, strideA = stepA, strideB = stepB
                        for k in 0..<length { (target + k).initialize(to: Operation.apply(left[k * strideA], right[k * strideB])) }
                        position += length
                    }
                }
            }
            initialized = count
        }
    }

    static func activation(_ activation: Kernel.Activation, _ x: inout ONNXTensor) throws(KernelError) -> ONNXTensor {
        switch x.elementType {
        case .float32: return try floatActivation(Float.self, activation, &x)
        case .float64: return try floatActivation(Double.self, activation, &x)
        case .int32: return try relu(Int32.self, &x)
        case .int64: return try relu(Int64.self, &x)
        case .bool, .string: throw unexpected(x.elementType)
        }
    }

    private static func floatActivation<T: FloatElement>(_: T.Type, _ activation: Kernel.Activation, _ x: inout ONNXTensor) throws(KernelError) -> ONNXTensor {
        guard var values = T.take(&x.storage) else { throw unexpected(x.elementType) }
        values.withUnsafeMutableBufferPointer { buffer in
            let count = buffer.count
            guard let p = buffer.baseAddress else { return }
            switch activation {
            case .relu:
                T.relu(p, count: count)
            case .sigmoid:
                // Split by sign so exp never overflows and small results keep their precision.
                for index in 0..<count {
                    let v = p[index]
                    if v >= 0 {
                        p[index] = 1 / (1 + T.exponential(-v))
                    } else {
                        let e = T.exponential(v)
                        p[index] = e / (1 + e)
                    }
                }
            case .tanh:
                for index in 0..<count { p[index] = T.hyperbolicTangent(p[index]) }
            }
        }
        return ONNXTensor(shape: x.shape, storage: T.storage(values))
    }

    private static func relu<T: NumericElement>(_: T.Type, _ x: inout ONNXTensor) throws(KernelError) -> ONNXTensor {
        guard var values = T.take(&x.storage) else { throw unexpected(x.elementType) }
        for index in values.indices where values[index] < T.zero { values[index] = T.zero }
        return ONNXTensor(shape: x.shape, storage: T.storage(values))
    }

    static func softmax(_ x: inout ONNXTensor, axis: Int, flattened: Bool) throws(KernelError) -> ONNXTensor {
        let rank = x.shape.count
        let axis = try Shapes.axis(axis, rank: rank)
        let outer = Shapes.count(Array(x.shape[..<axis]))
        let (length, inner) = flattened
            ? (Shapes.count(Array(x.shape[axis...])), 1)
            : (x.shape[axis], Shapes.count(Array(x.shape[(axis + 1)...])))
        switch x.elementType {
        case .float32: return try softmax(Float.self, &x, outer: outer, length: length, inner: inner)
        case .float64: return try softmax(Double.self, &x, outer: outer, length: length, inner: inner)
        default: throw unexpected(x.elementType)
        }
    }

    private static func softmax<T: FloatElement>(_: T.Type, _ x: inout ONNXTensor, outer: Int, length: Int, inner: Int) throws(KernelError) -> ONNXTensor {
        guard var values = T.take(&x.storage) else { throw unexpected(x.elementType) }
        values.withUnsafeMutableBufferPointer { buffer in
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * length * inner + i
                    // Subtracting the maximum keeps exp in range.
                    var maximum = -T.infinity
                    for k in 0..<length { maximum = max(maximum, buffer[base + k * inner]) }
                    var sum = T.zero
                    for k in 0..<length {
                        let e = T.exponential(buffer[base + k * inner] - maximum)
                        buffer[base + k * inner] = e
                        sum += e
                    }
                    for k in 0..<length { buffer[base + k * inner] /= sum }
                }
            }
        }
        return ONNXTensor(shape: x.shape, storage: T.storage(values))
    }

    /// Casts between strings and other types are rejected at load (ONNX
    /// parses and prints numbers in ways we do not reproduce); string to
    /// string is the identity.
    static func cast(_ x: ONNXTensor, to type: ONNXElementType) throws(KernelError) -> ONNXTensor {
        guard x.elementType != type else { return x }
        let storage: ONNXTensor.Storage
        switch type {
        case .float32:
            storage = .float32(try convert(x.storage, { (v: Float) in v }, { (v: Double) in Float(v) }, { (v: Int32) in Float(v) },
                                       { (v: Int64) in Float(v) }, { (v: Bool) -> Float in v ? 1 : 0 }))
        case .float64:
            storage = .float64(try convert(x.storage, { (v: Float) in Double(v) }, { (v: Double) in v }, { (v: Int32) in Double(v) },
                                       { (v: Int64) in Double(v) }, { (v: Bool) -> Double in v ? 1 : 0 }))
        case .int32:
            storage = .int32(try convert(x.storage, { (v: Float) -> Int32 in integer(v) }, { (v: Double) -> Int32 in integer(v) },
                                     { (v: Int32) in v }, { (v: Int64) in Int32(truncatingIfNeeded: v) }, { (v: Bool) -> Int32 in v ? 1 : 0 }))
        case .int64:
            storage = .int64(try convert(x.storage, { (v: Float) -> Int64 in integer(v) }, { (v: Double) -> Int64 in integer(v) },
                                     { (v: Int32) in Int64(v) }, { (v: Int64) in v }, { (v: Bool) -> Int64 in v ? 1 : 0 }))
        case .bool:
            storage = .bool(try convert(x.storage, { (v: Float) in v != 0 }, { (v: Double) in v != 0 }, { (v: Int32) in v != 0 },
                                    { (v: Int64) in v != 0 }, { (v: Bool) in v }))
        case .string:
            throw unexpected(x.elementType)
        }
        return ONNXTensor(shape: x.shape, storage: storage)
    }

    /// Float to integer truncates toward zero; NaN and out-of-range values
    /// give the type's minimum, as x86's conversion does for ONNX Runtime.
    private static func integer<F: BinaryFloatingPoint, I: FixedWidthInteger>(_ value: F) -> I {
        I(exactly: value.rounded(.towardZero)) ?? I.min
    }

    private static func convert<R>(
        _ storage: ONNXTensor.Storage, _ fromFloat: (Float) -> R, _ fromDouble: (Double) -> R,
        _ fromInt32: (Int32) -> R, _ fromInt64: (Int64) -> R, _ fromBool: (Bool) -> R
    ) throws(KernelError) -> [R] {
        switch storage {
        case .float32(let values): values.map(fromFloat)
        case .float64(let values): values.map(fromDouble)
        case .int32(let values): values.map(fromInt32)
        case .int64(let values): values.map(fromInt64)
        case .bool(let values): values.map(fromBool)
        case .string: throw unexpected(.string)
        }
    }

    // MARK: Matrix products

    static func gemm(_ a: ONNXTensor, _ b: ONNXTensor, _ c: ONNXTensor?, alpha: Float, beta: Float,
                     transA: Bool, transB: Bool) throws(KernelError) -> ONNXTensor {
        guard a.shape.count == 2, b.shape.count == 2 else {
            throw KernelError("A and B must be 2-D, got \(a.shape) and \(b.shape)")
        }
        let m = transA ? a.shape[1] : a.shape[0], k = transA ? a.shape[0] : a.shape[1]
        let kB = transB ? b.shape[1] : b.shape[0], n = transB ? b.shape[0] : b.shape[1]
        guard k == kB else {
            throw KernelError("A \(a.shape)\(transA ? " transposed" : "") and B \(b.shape)\(transB ? " transposed" : "") do not multiply")
        }
        if let c, c.shape != [m, n] {
            guard (try? Shapes.broadcast(c.shape, [m, n])) == [m, n] else {
                throw KernelError("C \(c.shape) does not broadcast to the product's shape \([m, n])")
            }
        }
        switch a.elementType {
        case .float32: return try gemm(Float.self, a, b, c, m: m, n: n, k: k, alpha: alpha, beta: beta, transA: transA, transB: transB)
        case .float64: return try gemm(Double.self, a, b, c, m: m, n: n, k: k, alpha: alpha, beta: beta, transA: transA, transB: transB)
        default: throw unexpected(a.elementType)
        }
    }

    private static func gemm<T: FloatElement>(
        _: T.Type, _ a: ONNXTensor, _ b: ONNXTensor, _ c: ONNXTensor?, m: Int, n: Int, k: Int,
        alpha: Float, beta: Float, transA: Bool, transB: Bool
    ) throws(KernelError) -> ONNXTensor {
        guard let valuesA = T.values(a.storage), let valuesB = T.values(b.storage) else { throw unexpected(b.elementType) }
        try checkBLASRange(m, n, k)
        var result: [T]
        var scale = T(beta)
        if let c, beta != 0 {
            guard let valuesC = T.values(c.storage) else { throw unexpected(c.elementType) }
            result = broadcastCopy(valuesC, c.shape, to: [m, n])
        } else {
            result = [T](repeating: 0, count: m * n)
            scale = 0
        }
        guard m > 0, n > 0 else { return ONNXTensor(shape: [m, n], storage: T.storage(result)) }
        if k == 0 {
            // BLAS rejects a zero leading dimension; the product is empty, only beta * C remains.
            for index in result.indices { result[index] *= scale }
        } else {
            valuesA.withUnsafeBufferPointer { pa in
                valuesB.withUnsafeBufferPointer { pb in
                    result.withUnsafeMutableBufferPointer { pc in
                        T.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: T(alpha),
                               a: pa.baseAddress!, lda: transA ? m : k, b: pb.baseAddress!, ldb: transB ? k : n,
                               beta: scale, c: pc.baseAddress!, ldc: n)
                    }
                }
            }
        }
        return ONNXTensor(shape: [m, n], storage: T.storage(result))
    }

    /// NumPy matmul: 1-D operands gain and then lose a dimension, leading
    /// (batch) dimensions broadcast.
    static func matMul(_ a: ONNXTensor, _ b: ONNXTensor) throws(KernelError) -> ONNXTensor {
        guard !a.shape.isEmpty, !b.shape.isEmpty else {
            throw KernelError("inputs must have at least one dimension, got \(a.shape) and \(b.shape)")
        }
        switch a.elementType {
        case .float32: return try matMul(Float.self, a, b)
        case .float64: return try matMul(Double.self, a, b)
        default: throw unexpected(a.elementType)
        }
    }

    private static func matMul<T: FloatElement>(_: T.Type, _ a: ONNXTensor, _ b: ONNXTensor) throws(KernelError) -> ONNXTensor {
        guard let valuesA = T.values(a.storage), let valuesB = T.values(b.storage) else { throw unexpected(b.elementType) }
        var shapeA = a.shape, shapeB = b.shape
        if a.shape.count == 1 { shapeA.insert(1, at: 0) }
        if b.shape.count == 1 { shapeB.append(1) }
        let m = shapeA[shapeA.count - 2], k = shapeA[shapeA.count - 1]
        let kB = shapeB[shapeB.count - 2], n = shapeB[shapeB.count - 1]
        guard k == kB else { throw KernelError("shapes \(a.shape) and \(b.shape) do not multiply") }
        let batchA = Array(shapeA.dropLast(2)), batchB = Array(shapeB.dropLast(2))
        let batch = try Shapes.broadcast(batchA, batchB)
        var shape = batch
        if a.shape.count > 1 { shape.append(m) }
        if b.shape.count > 1 { shape.append(n) }
        let batches = Shapes.count(batch)
        var result = [T](repeating: 0, count: batches * m * n)
        guard batches > 0, m > 0, n > 0, k > 0 else { return ONNXTensor(shape: shape, storage: T.storage(result)) }
        try checkBLASRange(batches * m, n, k)

        valuesA.withUnsafeBufferPointer { pa in
            valuesB.withUnsafeBufferPointer { pb in
                result.withUnsafeMutableBufferPointer { pc in
                    let baseA = pa.baseAddress!, baseB = pb.baseAddress!, baseC = pc.baseAddress!
                    if Shapes.count(batchB) == 1 {
                        // One B for every matrix of A (the [B, M, K] x [K, N] case): A's
                        // matrices stacked are one [batches * M, K] matrix, so one call.
                        T.gemm(transA: false, transB: false, m: batches * m, n: n, k: k, alpha: 1,
                               a: baseA, lda: k, b: baseB, ldb: n, beta: 0, c: baseC, ldc: n)
                        return
                    }
                    let loop = StridedLoop(shape: batch,
                                           stridesA: Shapes.broadcastStrides(batchA, to: batch).map { $0 * m * k },
                                           stridesB: Shapes.broadcastStrides(batchB, to: batch).map { $0 * k * n })
                    let inner = loop.inner, stepA = loop.innerA, stepB = loop.innerB
                    var offsetC = 0
                    loop.forEachRun { offsetA, offsetB in
                        for j in 0..<inner {
                            T.gemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1,
                                   a: baseA + offsetA + j * stepA, lda: k, b: baseB + offsetB + j * stepB, ldb: n,
                                   beta: 0, c: baseC + offsetC, ldc: n)
                            offsetC += m * n
                        }
                    }
                }
            }
        }
        return ONNXTensor(shape: shape, storage: T.storage(result))
    }

    static func matMulBias(_ a: ONNXTensor, _ b: ONNXTensor, _ bias: ONNXTensor) throws(KernelError) -> ONNXTensor {
        switch a.elementType {
        case .float32: return try matMulBias(Float.self, a, b, bias)
        case .float64: return try matMulBias(Double.self, a, b, bias)
        default: throw unexpected(a.elementType)
        }
    }

    /// `b` is [K, N] and `bias` has N elements (checked at load); `a` is
    /// [..., K], so all of it is one [rows, K] matrix.
    private static func matMulBias<T: FloatElement>(_: T.Type, _ a: ONNXTensor, _ b: ONNXTensor, _ bias: ONNXTensor) throws(KernelError) -> ONNXTensor {
        guard let valuesA = T.values(a.storage), let valuesB = T.values(b.storage), let valuesBias = T.values(bias.storage) else {
            throw unexpected(a.elementType)
        }
        let k = b.shape[0], n = b.shape[1]
        guard let last = a.shape.last, last == k else { throw KernelError("shapes \(a.shape) and \(b.shape) do not multiply") }
        var shape = a.shape
        shape[shape.count - 1] = n
        if bias.shape.count > shape.count { shape = try Shapes.broadcast(shape, bias.shape) }
        let rows = valuesA.count / max(k, 1)
        try checkBLASRange(rows, n, k)
        var result = [T](unsafeUninitializedCapacity: rows * n) { buffer, initialized in
            valuesBias.withUnsafeBufferPointer { row in
                for r in 0..<rows { (buffer.baseAddress! + r * n).initialize(from: row.baseAddress!, count: n) }
            }
            initialized = rows * n
        }
        guard rows > 0, n > 0, k > 0 else { return ONNXTensor(shape: shape, storage: T.storage(result)) }
        valuesA.withUnsafeBufferPointer { pa in
            valuesB.withUnsafeBufferPointer { pb in
                result.withUnsafeMutableBufferPointer { pc in
                    T.gemm(transA: false, transB: false, m: rows, n: n, k: k, alpha: 1,
                           a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: n, beta: 1, c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return ONNXTensor(shape: shape, storage: T.storage(result))
    }

    /// CBLAS takes 32-bit sizes.
    private static func checkBLASRange(_ sizes: Int...) throws(KernelError) {
        guard sizes.allSatisfy({ $0 <= Int(Int32.max) }) else { throw KernelError("matrices too large for BLAS: \(sizes)") }
    }

    /// `values` of `shape` repeated out to `target`.
    static func broadcastCopy<T>(_ values: [T], _ shape: [Int], to target: [Int]) -> [T] {
        let count = Shapes.count(target)
        if values.count == count { return values }
        return [T](unsafeUninitializedCapacity: count) { out, initialized in
            values.withUnsafeBufferPointer { source in
                let loop = StridedLoop(shape: target, stridesA: Shapes.broadcastStrides(shape, to: target),
                                       stridesB: Shapes.strides(target))
                let inner = loop.inner, stepA = loop.innerA, stepB = loop.innerB
                loop.forEachRun { offsetA, offsetB in
                    for k in 0..<inner { (out.baseAddress! + offsetB + k * stepB).initialize(to: source[offsetA + k * stepA]) }
                }
            }
            initialized = count
        }
    }
}

/// The four arithmetic operators as types, for specialized loops.
protocol BinaryOperation {
    associatedtype Element: NumericElement
    static func apply(_ a: Element, _ b: Element) -> Element
}

enum Add<Element: NumericElement>: BinaryOperation {
    @inline(__always) static func apply(_ a: Element, _ b: Element) -> Element { Element.add(a, b) }
}

enum Subtract<Element: NumericElement>: BinaryOperation {
    @inline(__always) static func apply(_ a: Element, _ b: Element) -> Element { Element.subtract(a, b) }
}

enum Multiply<Element: NumericElement>: BinaryOperation {
    @inline(__always) static func apply(_ a: Element, _ b: Element) -> Element { Element.multiply(a, b) }
}

enum Divide<Element: NumericElement>: BinaryOperation {
    @inline(__always) static func apply(_ a: Element, _ b: Element) -> Element { Element.divide(a, b) }
}
