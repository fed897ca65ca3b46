import Foundation

/// A gradient-boosted tree model evaluated natively, read from the JSON
/// that libxgboost itself exports for a loaded booster. XGBoost's C
/// prediction entry point costs tens of microseconds per call before any
/// tree is walked (array-interface parsing, proxy matrices, thread setup);
/// for the one-to-a-few-hundred-row requests of online ranking that fixed
/// cost dominates, so plain numeric tree ensembles are walked here and
/// anything else (categorical splits, DART, linear boosters, other
/// objectives) stays with libxgboost.
///
/// Arithmetic follows XGBoost's CPU predictor: float32 sums of leaf values
/// in tree order on top of the base margin, `value < threshold` goes left,
/// a missing (NaN) value follows the node's default direction.
struct XGBoostForest: Sendable {
    enum Transform: Sendable {
        case identity
        case sigmoid
        case exponential
        case softmax
    }

    /// Nodes of every tree, flattened; a leaf has `left == -1` and its value in `threshold`.
    private struct Node: Sendable {
        var feature: Int32
        var threshold: Float
        var left: Int32
        var right: Int32
        var defaultLeft: Bool
    }

    private let nodes: [Node]
    private let roots: [Int32]
    /// The output (class) each tree adds to.
    private let treeGroups: [Int32]
    /// Outputs per row: 1, or the number of classes.
    let groups: Int
    let features: Int
    private let baseMargin: Float
    private let transform: Transform

    /// The forest in `json`, or nil when the model uses anything this
    /// evaluator does not reproduce exactly.
    init?(json: Data) {
        guard let root = try? JSONSerialization.jsonObject(with: json) as? [String: Any],
              let learner = root["learner"] as? [String: Any],
              let parameters = learner["learner_model_param"] as? [String: Any],
              let objective = (learner["objective"] as? [String: Any])?["name"] as? String,
              let booster = learner["gradient_booster"] as? [String: Any],
              booster["name"] as? String == "gbtree",
              let model = booster["model"] as? [String: Any],
              let trees = model["trees"] as? [[String: Any]],
              let treeInfo = model["tree_info"] as? [Int],
              treeInfo.count == trees.count,
              let baseScore = (parameters["base_score"] as? String).flatMap(Float.init),
              let featureCount = (parameters["num_feature"] as? String).flatMap(Int.init)
        else { return nil }
        let classes = (parameters["num_class"] as? String).flatMap(Int.init) ?? 0
        let targets = (parameters["num_target"] as? String).flatMap(Int.init) ?? 1
        guard targets <= 1 else { return nil }

        switch objective {
        case "reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror", "reg:absoluteerror",
             "binary:logitraw", "rank:pairwise", "rank:ndcg", "rank:map":
            transform = .identity
            baseMargin = baseScore
        case "binary:logistic", "reg:logistic":
            guard baseScore > 0, baseScore < 1 else { return nil }
            transform = .sigmoid
            baseMargin = -logf(1 / baseScore - 1)
        case "count:poisson", "reg:gamma", "reg:tweedie":
            guard baseScore > 0 else { return nil }
            transform = .exponential
            baseMargin = logf(baseScore)
        case "multi:softprob":
            guard classes > 1 else { return nil }
            transform = .softmax
            baseMargin = baseScore
        default:
            return nil
        }
        groups = max(classes, 1)
        features = featureCount

        var nodes: [Node] = []
        var roots: [Int32] = []
        for tree in trees {
            guard let left = tree["left_children"] as? [Int], let right = tree["right_children"] as? [Int],
                  let conditions = tree["split_conditions"] as? [Double], let indices = tree["split_indices"] as? [Int],
                  let defaults = tree["default_left"] as? [Int],
                  left.count == right.count, left.count == conditions.count, left.count == indices.count, left.count == defaults.count,
                  !left.isEmpty
            else { return nil }
            // Categorical splits follow other rules: leave them to libxgboost.
            if let types = tree["split_type"] as? [Int], types.contains(where: { $0 != 0 }) { return nil }
            let offset = Int32(nodes.count)
            roots.append(offset)
            for index in left.indices {
                let isLeaf = left[index] == -1
                guard isLeaf || (left[index] > 0 && left[index] < left.count && right[index] > 0 && right[index] < left.count
                                 && indices[index] >= 0 && indices[index] < featureCount) else { return nil }
                nodes.append(Node(feature: Int32(indices[index]), threshold: Float(conditions[index]),
                                  left: isLeaf ? -1 : offset + Int32(left[index]), right: isLeaf ? -1 : offset + Int32(right[index]),
                                  defaultLeft: defaults[index] != 0))
            }
        }
        guard treeInfo.allSatisfy({ $0 >= 0 && $0 < max(classes, 1) }) else { return nil }
        self.nodes = nodes
        self.roots = roots
        self.treeGroups = treeInfo.map(Int32.init)
    }

    /// Predictions for `rows` rows of `features` values (row-major), `groups` per row.
    func predict(_ values: UnsafeBufferPointer<Float>, rows: Int, margin: Bool) -> [Float] {
        var output = [Float](repeating: baseMargin, count: rows * groups)
        nodes.withUnsafeBufferPointer { nodes in
            for row in 0..<rows {
                let features = values.baseAddress! + row * self.features
                for (tree, root) in roots.enumerated() {
                    var node = nodes[Int(root)]
                    while node.left >= 0 {
                        let value = features[Int(node.feature)]
                        let goLeft = value.isNaN ? node.defaultLeft : value < node.threshold
                        node = nodes[Int(goLeft ? node.left : node.right)]
                    }
                    output[row * groups + Int(treeGroups[tree])] += node.threshold
                }
            }
        }
        guard !margin else { return output }
        switch transform {
        case .identity:
            break
        case .sigmoid:
            for index in output.indices { output[index] = 1 / (1 + expf(-output[index])) }
        case .exponential:
            for index in output.indices { output[index] = expf(output[index]) }
        case .softmax:
            for row in 0..<rows {
                let range = row * groups..<(row + 1) * groups
                let largest = output[range].max()!
                var total: Float = 0
                for index in range {
                    output[index] = expf(output[index] - largest)
                    total += output[index]
                }
                for index in range { output[index] /= total }
            }
        }
        return output
    }
}
