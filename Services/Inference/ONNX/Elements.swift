import CBLAS
import Foundation

/// An element type kernels can be generic over: how to get its array into
/// and out of `ONNXTensor.Storage`.
protocol StorageElement: Sendable {
    static func values(_ storage: ONNXTensor.Storage) -> [Self]?
    /// Moves the array out, leaving `storage` empty, so the caller holds the
    /// only reference and can write in place when the tensor was not shared.
    static func take(_ storage: inout ONNXTensor.Storage) -> [Self]?
    static func storage(_ values: [Self]) -> ONNXTensor.Storage
}

/// Element types with arithmetic (every supported type but bool). Integer
/// operations wrap like ONNX Runtime's C++ instead of trapping.
protocol NumericElement: StorageElement, Comparable {
    static var zero: Self { get }
    static var isInteger: Bool { get }
    static func add(_ a: Self, _ b: Self) -> Self
    static func subtract(_ a: Self, _ b: Self) -> Self
    static func multiply(_ a: Self, _ b: Self) -> Self
    /// Integer callers check for zero divisors first.
    static func divide(_ a: Self, _ b: Self) -> Self
    /// The mean of `count` elements summing to `sum`.
    static func mean(_ sum: Self, count: Int) -> Self
}

/// Float32 and float64: the activations, and matrix products through BLAS.
protocol FloatElement: NumericElement, BinaryFloatingPoint {
    static func exponential(_ x: Self) -> Self
    static func hyperbolicTangent(_ x: Self) -> Self
    /// max(x, 0) in place.
    static func relu(_ values: UnsafeMutablePointer<Self>, count: Int)
    /// Row-major C = alpha * op(A) * op(B) + beta * C.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
                     a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
                     beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
}

extension Float: FloatElement {
    static func values(_ storage: ONNXTensor.Storage) -> [Float]? {
        if case .float32(let values) = storage { values } else { nil }
    }
    static func take(_ storage: inout ONNXTensor.Storage) -> [Float]? {
        guard case .float32(let values) = storage else { return nil }
        storage = .float32([])
        return values
    }
    static func storage(_ values: [Float]) -> ONNXTensor.Storage { .float32(values) }
    static var isInteger: Bool { false }
    static func add(_ a: Float, _ b: Float) -> Float { a + b }
    static func subtract(_ a: Float, _ b: Float) -> Float { a - b }
    static func multiply(_ a: Float, _ b: Float) -> Float { a * b }
    static func divide(_ a: Float, _ b: Float) -> Float { a / b }
    static func mean(_ sum: Float, count: Int) -> Float { sum / Float(count) }
    static func exponential(_ x: Float) -> Float { Foundation.exp(x) }
    static func hyperbolicTangent(_ x: Float) -> Float { Foundation.tanh(x) }
    static func relu(_ values: UnsafeMutablePointer<Float>, count: Int) {
        // Clears negatives with a sign mask: an unconditional store the
        // compiler vectorizes (a compare-and-store becomes a branch per element).
        for index in 0..<count {
            let bits = values[index].bitPattern
            values[index] = Float(bitPattern: bits & ~UInt32(bitPattern: Int32(bitPattern: bits) >> 31))
        }
    }
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

extension Double: FloatElement {
    static func values(_ storage: ONNXTensor.Storage) -> [Double]? {
        if case .float64(let values) = storage { values } else { nil }
    }
    static func take(_ storage: inout ONNXTensor.Storage) -> [Double]? {
        guard case .float64(let values) = storage else { return nil }
        storage = .float64([])
        return values
    }
    static func storage(_ values: [Double]) -> ONNXTensor.Storage { .float64(values) }
    static var isInteger: Bool { false }
    static func add(_ a: Double, _ b: Double) -> Double { a + b }
    static func subtract(_ a: Double, _ b: Double) -> Double { a - b }
    static func multiply(_ a: Double, _ b: Double) -> Double { a * b }
    static func divide(_ a: Double, _ b: Double) -> Double { a / b }
    static func mean(_ sum: Double, count: Int) -> Double { sum / Double(count) }
    static func exponential(_ x: Double) -> Double { Foundation.exp(x) }
    static func hyperbolicTangent(_ x: Double) -> Double { Foundation.tanh(x) }
    static func relu(_ values: UnsafeMutablePointer<Double>, count: Int) {
        for index in 0..<count {
            let bits = values[index].bitPattern
            values[index] = Double(bitPattern: bits & ~UInt64(bitPattern: Int64(bitPattern: bits) >> 63))
        }
    }
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
                     a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                     beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

extension Int32: NumericElement {
    static func values(_ storage: ONNXTensor.Storage) -> [Int32]? {
        if case .int32(let values) = storage { values } else { nil }
    }
    static func take(_ storage: inout ONNXTensor.Storage) -> [Int32]? {
        guard case .int32(let values) = storage else { return nil }
        storage = .int32([])
        return values
    }
    static func storage(_ values: [Int32]) -> ONNXTensor.Storage { .int32(values) }
    static var isInteger: Bool { true }
    static func add(_ a: Int32, _ b: Int32) -> Int32 { a &+ b }
    static func subtract(_ a: Int32, _ b: Int32) -> Int32 { a &- b }
    static func multiply(_ a: Int32, _ b: Int32) -> Int32 { a &* b }
    static func divide(_ a: Int32, _ b: Int32) -> Int32 { a.dividedReportingOverflow(by: b).partialValue }
    static func mean(_ sum: Int32, count: Int) -> Int32 { count == 0 ? 0 : sum / Int32(truncatingIfNeeded: count) }
}

extension Int64: NumericElement {
    static func values(_ storage: ONNXTensor.Storage) -> [Int64]? {
        if case .int64(let values) = storage { values } else { nil }
    }
    static func take(_ storage: inout ONNXTensor.Storage) -> [Int64]? {
        guard case .int64(let values) = storage else { return nil }
        storage = .int64([])
        return values
    }
    static func storage(_ values: [Int64]) -> ONNXTensor.Storage { .int64(values) }
    static var isInteger: Bool { true }
    static func add(_ a: Int64, _ b: Int64) -> Int64 { a &+ b }
    static func subtract(_ a: Int64, _ b: Int64) -> Int64 { a &- b }
    static func multiply(_ a: Int64, _ b: Int64) -> Int64 { a &* b }
    static func divide(_ a: Int64, _ b: Int64) -> Int64 { a.dividedReportingOverflow(by: b).partialValue }
    static func mean(_ sum: Int64, count: Int) -> Int64 { count == 0 ? 0 : sum / Int64(count) }
}

/// Strings only move (Concat, Gather); nothing computes on them.
extension Data: StorageElement {
    static func values(_ storage: ONNXTensor.Storage) -> [Data]? {
        if case .string(let values) = storage { values } else { nil }
    }
    static func take(_ storage: inout ONNXTensor.Storage) -> [Data]? {
        guard case .string(let values) = storage else { return nil }
        storage = .string([])
        return values
    }
    static func storage(_ values: [Data]) -> ONNXTensor.Storage { .string(values) }
}

extension Bool: StorageElement {
    static func values(_ storage: ONNXTensor.Storage) -> [Bool]? {
        if case .bool(let values) = storage { values } else { nil }
    }
    static func take(_ storage: inout ONNXTensor.Storage) -> [Bool]? {
        guard case .bool(let values) = storage else { return nil }
        storage = .bool([])
        return values
    }
    static func storage(_ values: [Bool]) -> ONNXTensor.Storage { .bool(values) }
}
