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

    /// Nodes of every tree, flattened. A leaf keeps its value in `threshold`.
    private struct Node: Sendable {
        var threshold: Float
        /// The split's feature; the top bit set sends a missing value left.
        var featureAndDefault: UInt32

        static let defaultLeftBit: UInt32 = 1 << 31
    }

    private let nodes: [Node]
    /// Node `n`'s children at `2n` (left) and `2n + 1` (right). A leaf's
    /// are itself, so every tree can be walked a fixed number of steps (its
    /// depth) with no leaf test, and the step is an index computation
    /// rather than a branch: trees split on arbitrary data, and mispredicted
    /// branches cost more than the walk.
    private let children: [Int32]
    private let roots: [Int32]
    /// Steps from each tree's root to its deepest leaf.
    private let depths: [Int32]
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
        var children: [Int32] = []
        var roots: [Int32] = []
        var depths: [Int32] = []
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
                let me = offset + Int32(index)
                nodes.append(Node(threshold: Float(conditions[index]),
                                  featureAndDefault: isLeaf ? 0 : UInt32(indices[index]) | (defaults[index] != 0 ? Node.defaultLeftBit : 0)))
                children += isLeaf ? [me, me] : [offset + Int32(left[index]), offset + Int32(right[index])]
            }
            guard let depth = Self.depth(left: left, right: right) else { return nil }
            depths.append(Int32(depth))
        }
        guard treeInfo.allSatisfy({ $0 >= 0 && $0 < max(classes, 1) }) else { return nil }
        self.nodes = nodes
        self.children = children
        self.roots = roots
        self.depths = depths
        self.treeGroups = treeInfo.map(Int32.init)
    }

    /// The longest root-to-leaf path, or nil when the children do not form
    /// a tree (a cycle or a node reached twice).
    private static func depth(left: [Int], right: [Int]) -> Int? {
        var seen = [Bool](repeating: false, count: left.count)
        var level = [0]
        var depth = 0
        seen[0] = true
        while true {
            var next: [Int] = []
            for node in level where left[node] != -1 {
                for child in [left[node], right[node]] {
                    guard !seen[child] else { return nil }
                    seen[child] = true
                    next.append(child)
                }
            }
            if next.isEmpty { return depth }
            depth += 1
            level = next
        }
    }

    private static let walksPerPass = 64

    /// Predictions for `rows` rows of `features` values (row-major), `groups` per row.
    ///
    /// Walks advance in lockstep, one level at a time: up to
    /// `walksPerPass` (tree, row) walks are independent of each other, so the
    /// processor overlaps them, and the branch-free step leaves nothing to
    /// mispredict. Many rows go in blocks of that size, small enough to stay
    /// in the first-level cache while every tree passes over them; a few
    /// rows take several trees at once. Each row still adds its trees'
    /// leaves in tree order, as XGBoost does.
    func predict(_ values: UnsafeBufferPointer<Float>, rows: Int, margin: Bool) -> [Float] {
        precondition(values.count >= rows * features, "fewer values than rows × features")
        let width = features
        let groups = groups
        var output = [Float](repeating: baseMargin, count: rows * groups)
        guard rows > 0 else { return output }
        output.withUnsafeMutableBufferPointer { output in
            nodes.withUnsafeBufferPointer { nodes in
            children.withUnsafeBufferPointer { children in
                withUnsafeTemporaryAllocation(of: Int32.self, capacity: Self.walksPerPass) { positions in
                    for first in stride(from: 0, to: rows, by: Self.walksPerPass) {
                        let count = min(Self.walksPerPass, rows - first)
                        let values = values.baseAddress! + first * width
                        let output = output.baseAddress! + first * groups
                        // Few rows: walk several trees side by side instead.
                        let treesPerPass = Self.walksPerPass / count
                        for firstTree in stride(from: 0, to: roots.count, by: treesPerPass) {
                            let trees = firstTree..<min(firstTree + treesPerPass, roots.count)
                            var depth: Int32 = 0
                            for tree in trees {
                                depth = max(depth, depths[tree])
                                let lanes = positions.baseAddress! + (tree - firstTree) * count
                                for row in 0..<count { lanes[row] = roots[tree] }
                            }
                            for _ in 0..<depth {
                                for tree in trees {
                                    let lanes = positions.baseAddress! + (tree - firstTree) * count
                                    for row in 0..<count {
                                        let position = Int(lanes[row])
                                        let node = nodes[position]
                                        let value = values[row &* width &+ Int(node.featureAndDefault & ~Node.defaultLeftBit)]
                                        let goesLeft = (value < node.threshold ? 1 : 0) | (value.isNaN ? Int(node.featureAndDefault >> 31) : 0)
                                        lanes[row] = children[position &* 2 &+ (1 &- goesLeft)]
                                    }
                                }
                            }
                            for tree in trees {
                                let group = Int(treeGroups[tree])
                                let lanes = positions.baseAddress! + (tree - firstTree) * count
                                for row in 0..<count {
                                    output[row &* groups &+ group] += nodes[Int(lanes[row])].threshold
                                }
                            }
                        }
                    }
                }
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
