/// Shape arithmetic shared by the kernels.
enum Shapes {
    static func count(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// The element count, or nil if a dimension is negative or the product
    /// overflows (shapes from callers must not trap the process).
    static func checkedCount(_ shape: [Int]) -> Int? {
        var count = 1
        for size in shape {
            guard size >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow else { return nil }
            count = product
        }
        return count
    }

    /// Row-major strides.
    static func strides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var stride = 1
        for axis in shape.indices.reversed() {
            strides[axis] = stride
            stride *= shape[axis]
        }
        return strides
    }

    /// Strides for reading a tensor of `shape` as if broadcast to `target`
    /// (shapes aligned on the right, 0 where a dimension is repeated).
    static func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
        let own = strides(shape)
        let offset = target.count - shape.count
        return target.indices.map { axis in
            axis < offset || shape[axis - offset] == 1 ? 0 : own[axis - offset]
        }
    }

    /// NumPy's broadcast of two shapes.
    static func broadcast(_ a: [Int], _ b: [Int]) throws(KernelError) -> [Int] {
        let rank = max(a.count, b.count)
        var result = [Int](repeating: 1, count: rank)
        for axis in 0..<rank {
            let x = axis < rank - a.count ? 1 : a[axis - (rank - a.count)]
            let y = axis < rank - b.count ? 1 : b[axis - (rank - b.count)]
            guard x == y || x == 1 || y == 1 else {
                throw KernelError("shapes \(a) and \(b) do not broadcast")
            }
            result[axis] = x == 1 ? y : x
        }
        return result
    }

    /// An axis attribute in [-rank, rank) made non-negative.
    static func axis(_ axis: Int, rank: Int, name: String = "axis") throws(KernelError) -> Int {
        guard axis >= -rank && axis < rank else {
            throw KernelError("\(name) \(axis) is out of range for rank \(rank)")
        }
        return axis < 0 ? axis + rank : axis
    }

    /// Integer values of an axes or shape tensor (always int64 in ONNX).
    static func int64Values(_ tensor: ONNXTensor?, what: String) throws(KernelError) -> [Int] {
        guard let tensor, case .int64(let values) = tensor.storage, tensor.shape.count <= 1 else {
            throw KernelError("\(what) must be a 1-D int64 tensor")
        }
        return values.map { Int($0) }
    }
}

/// Visits every element position of a shape for two operands laid out with
/// their own strides, in row-major order. Size-1 dimensions are dropped and
/// neighbours that both operands traverse contiguously are merged, so the
/// innermost run is as long as possible; callers loop over that run.
struct StridedLoop {
    /// Length of the innermost run and each operand's stride along it.
    let inner: Int
    let innerA: Int
    let innerB: Int
    private let outer: [Int]
    private let outerA: [Int]
    private let outerB: [Int]
    let isEmpty: Bool

    init(shape: [Int], stridesA: [Int], stridesB: [Int]) {
        isEmpty = shape.contains(0)
        var dims: [Int] = [], a: [Int] = [], b: [Int] = []
        for axis in shape.indices where shape[axis] != 1 {
            if let last = dims.indices.last, a[last] == stridesA[axis] * shape[axis], b[last] == stridesB[axis] * shape[axis] {
                dims[last] *= shape[axis]
                a[last] = stridesA[axis]
                b[last] = stridesB[axis]
            } else {
                dims.append(shape[axis])
                a.append(stridesA[axis])
                b.append(stridesB[axis])
            }
        }
        if let last = dims.popLast() {
            inner = last
            innerA = a.removeLast()
            innerB = b.removeLast()
        } else {
            inner = 1
            innerA = 0
            innerB = 0
        }
        outer = dims
        outerA = a
        outerB = b
    }

    /// Calls `body(offsetA, offsetB)` at the start of each innermost run.
    func forEachRun(_ body: (Int, Int) -> Void) {
        guard !isEmpty else { return }
        let runs = outer.reduce(1, *)
        var counter = [Int](repeating: 0, count: outer.count)
        var offsetA = 0, offsetB = 0
        for _ in 0..<runs {
            body(offsetA, offsetB)
            var axis = outer.count - 1
            while axis >= 0 {
                counter[axis] += 1
                offsetA += outerA[axis]
                offsetB += outerB[axis]
                if counter[axis] < outer[axis] { break }
                offsetA -= outerA[axis] * outer[axis]
                offsetB -= outerB[axis] * outer[axis]
                counter[axis] = 0
                axis -= 1
            }
        }
    }
}
