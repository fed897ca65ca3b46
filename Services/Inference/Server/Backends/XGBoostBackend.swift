import CXGBoost
import Foundation

/// Tree models through XGBoost's C API (libxgboost 1.7): JSON (`.json`) and
/// UBJSON (`.ubj`) model files, dense FP32 rows in, one FP32 score per row
/// (or per class) out, as probability or margin.
final class XGBoostBackend: ModelBackend, @unchecked Sendable {
    // @unchecked: the booster handle is only touched under `lock`. XGBoost
    // keeps prediction buffers per booster, so calls on one booster are
    // serialized; the batcher already sends one batch at a time.
    private let booster: BoosterHandle
    private let lock = NSLock()
    private let features: Int
    private let outputName: String
    private let outputDims: [Int]
    private let predictConfig: String
    private let outputMargin: Bool
    /// The same model walked natively, when it is a plain numeric tree
    /// ensemble (see `XGBoostForest`); nil leaves prediction to libxgboost.
    let forest: XGBoostForest?

    init(definition: ModelDefinition, artifact: URL) throws(ModelLoadError) {
        var handle: BoosterHandle?
        guard XGBoosterCreate(nil, 0, &handle) == 0, let handle else {
            throw .artifact("XGBoosterCreate: \(Self.lastError())")
        }
        // One thread per prediction: rows are few per call and OpenMP's
        // thread handoff costs more than it saves; concurrency comes from
        // serving several models and requests at once.
        XGBoosterSetParam(handle, "nthread", "1")
        guard XGBoosterLoadModel(handle, artifact.path) == 0 else {
            let reason = Self.lastError()
            XGBoosterFree(handle)
            throw .artifact("\(artifact.lastPathComponent): \(reason)")
        }
        var featureCount: bst_ulong = 0
        XGBoosterGetNumFeature(handle, &featureCount)
        let declared = definition.inputs[0].dims[0]
        guard Int(featureCount) == declared else {
            XGBoosterFree(handle)
            throw .artifact("\(artifact.lastPathComponent) has \(featureCount) features but input '\(definition.inputs[0].name)' declares \(declared)")
        }
        let forest = definition.treePredictor == .library ? nil : Self.exportForest(handle, features: declared)
        if forest == nil && definition.treePredictor == .native {
            XGBoosterFree(handle)
            throw .invalidConfig("parameter predictor is native but this model needs libxgboost (categorical splits, DART, a linear booster or an objective walked only there)")
        }
        let output = definition.outputs[0]
        if let forest, !output.dims.contains(-1), output.dims.reduce(1, *) != forest.groups {
            XGBoosterFree(handle)
            throw .invalidConfig("the model gives \(forest.groups) values per row but output '\(output.name)' declares dims \(output.dims)")
        }
        self.forest = forest
        booster = handle
        features = declared
        outputName = output.name
        outputDims = output.dims
        outputMargin = definition.outputMargin
        // type 0 is the objective's transform (probability), 1 the raw margin.
        predictConfig = #"{"type": \#(definition.outputMargin ? 1 : 0), "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": false, "missing": NaN, "cache_id": 0}"#
    }

    deinit { XGBoosterFree(booster) }

    func execute(_ inputs: [Tensor]) throws(BackendError) -> [Tensor] {
        let input = inputs[0]
        let rows = input.shape[0]
        if let forest {
            let scores = input.raw.withUnsafeBytes { bytes in
                if Int(bitPattern: bytes.baseAddress) % MemoryLayout<Float>.alignment == 0 {
                    return forest.predict(bytes.bindMemory(to: Float.self), rows: rows, margin: outputMargin)
                }
                // Small Data values can live unaligned: copy those first.
                return input.float32Values.withUnsafeBufferPointer { forest.predict($0, rows: rows, margin: outputMargin) }
            }
            return [Tensor(name: outputName, shape: [rows, forest.groups], float32: scores)]
        }
        // Data.withUnsafeBytes rethrows untyped errors, so the outcome comes back as a Result.
        let outcome: Result<[Float], BackendError> = input.raw.withUnsafeBytes { bytes in
            let address = UInt(bitPattern: bytes.baseAddress)
            let interface = #"{"data": [\#(address), true], "shape": [\#(rows), \#(features)], "typestr": "<f4", "version": 3}"#
            lock.lock()
            defer { lock.unlock() }
            var shape: UnsafePointer<bst_ulong>?
            var dimensions: bst_ulong = 0
            var result: UnsafePointer<Float>?
            guard XGBoosterPredictFromDense(booster, interface, predictConfig, nil, &shape, &dimensions, &result) == 0, let result, let shape else {
                return .failure(BackendError("xgboost prediction failed: \(Self.lastError())"))
            }
            let count = (0..<Int(dimensions)).reduce(1) { $0 * Int(shape[$1]) }
            // Copied out under the lock: the buffer belongs to the booster.
            return .success(Array(UnsafeBufferPointer(start: result, count: count)))
        }
        let scores = try outcome.get()
        let perRow = scores.count / max(rows, 1)
        let declared = outputDims.reduce(1) { $0 * max($1, 1) }
        guard scores.count == rows * perRow, outputDims.contains(-1) || perRow == declared else {
            throw BackendError("model gives \(perRow) values per row but output '\(outputName)' declares dims \(outputDims)")
        }
        return [Tensor(name: outputName, shape: [rows, perRow], float32: scores)]
    }

    /// The loaded model as XGBoost's own JSON, read back as a forest we can walk.
    private static func exportForest(_ handle: BoosterHandle, features: Int) -> XGBoostForest? {
        var length: bst_ulong = 0
        var bytes: UnsafePointer<CChar>?
        guard XGBoosterSaveModelToBuffer(handle, #"{"format": "json"}"#, &length, &bytes) == 0, let bytes else { return nil }
        let json = Data(bytes: bytes, count: Int(length))
        guard let forest = XGBoostForest(json: json), forest.features == features else { return nil }
        return forest
    }

    private static func lastError() -> String {
        String(cString: XGBGetLastError())
    }
}
