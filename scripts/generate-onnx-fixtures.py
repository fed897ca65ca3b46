#!/usr/bin/env python3
"""ONNX model fixtures for the inference service's ONNX executor, with
reference outputs from ONNX Runtime.

Writes Tests/PlatformTests/Fixtures/onnx/:

  mlp_ranker.onnx            scikit-learn MLPRegressor (relu) through skl2onnx, float32
  mlp_ranker_f64.onnx        the same kind of model (tanh) converted for float64 inputs
  mlp_classifier.onnx        MLPClassifier (logistic hidden layer, 3 classes) through
                             skl2onnx, cut down to its probabilities output (the label
                             branch needs ai.onnx.ml operators)
  all_ops_opset11.onnx       a hand-built ranking graph using every supported operator,
  all_ops_opset18.onnx       once at opset 11 (axes as attributes, old Softmax) and once
                             at opset 18 (axes as inputs)
  edge_ops.onnx              broadcasting, 1-D and batched MatMul, Gemm transposes,
                             negative axes and indices, casts (opset 13)
  string_ops.onnx            STRING tensors through the data-movement operators
                             (Identity, Gather, Concat, Reshape, Flatten, Squeeze,
                             Unsqueeze), with a string initializer and a Constant
  unsupported_topk.onnx      uses TopK: loading must fail naming the operator
  unsupported_string_add.onnx    Add on strings: loading must fail (strings only move)
  unsupported_string_cast.onnx   Cast from string to float: loading must fail
  unsupported_ml_domain.onnx a full MLPClassifier conversion with ai.onnx.ml operators:
                             loading must fail naming the domain
  <name>.json                what the test checks, see below

<name>.json holds
  {"model": "mlp_ranker.onnx",
   "inputs":  [{"name": "X", "type": "float32", "shape": [-1, 12]}, ...],   as declared
   "outputs": [{"name": "variable", "type": "float32", "shape": [-1, 1]}, ...],
   "cases": [{"name": "batch 1",
              "inputs":  {"X": {"type": "float32", "shape": [1, 12], "data": [...]}},
              "outputs": {"variable": {"type": "float32", "shape": [1, 1], "data": [...]}}}, ...]}
or, for the models that must not load,
  {"model": "unsupported_topk.onnx", "error": {"kind": "unsupportedOperator", "op_type": "TopK", ...}}
String tensors have "type": "string" and each element base64 encoded
("data": ["aGk=", ...]), so the JSON can hold any bytes. (ONNX Runtime's
Python API only passes str, so the fixture strings are UTF-8, with empty
strings and NULs; the tests feed other bytes themselves.)
Declared shapes use -1 for dynamic dimensions. Float inputs are multiples of
1/256 (exact in float32 and short in decimal); outputs are what
onnxruntime.InferenceSession answers, float32 values written as their
shortest decimal (two string_ops outputs come from NumPy instead, where
ONNX Runtime's string Gather is wrong; see string_ops).

The output is committed, so tests never need Python. To regenerate:

    "$(scripts/python-env.sh inference)/bin/python" scripts/generate-onnx-fixtures.py
"""
import base64
import json
import pathlib
import warnings

import numpy as np
import onnx
import onnx.utils
import onnxruntime
import skl2onnx
import sklearn
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "PlatformTests" / "Fixtures" / "onnx"
TYPES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64", np.dtype(np.int32): "int32",
         np.dtype(np.int64): "int64", np.dtype(np.bool_): "bool"}
ELEMENT_TYPES = {TensorProto.FLOAT: "float32", TensorProto.DOUBLE: "float64", TensorProto.INT32: "int32",
                 TensorProto.INT64: "int64", TensorProto.BOOL: "bool", TensorProto.STRING: "string"}

rng = np.random.default_rng(20260301)
warnings.filterwarnings("ignore", category=ConvergenceWarning)


def quantized(values, dtype=np.float32):
    """Multiples of 1/256: exact in float32 and short in decimal."""
    return (np.round(np.asarray(values) * 256.0) / 256.0).astype(dtype)


def encoded(array):
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind in "SU":
        # Strings (ONNX Runtime answers str) as base64 of their bytes (UTF-8 for str).
        data = [base64.b64encode(v if isinstance(v, bytes) else str(v).encode()).decode("ascii") for v in array.ravel()]
        return {"type": "string", "shape": list(array.shape), "data": data}
    if array.dtype == np.float32:
        # Shortest decimal that reads back as the same float32.
        data = [float(np.format_float_positional(v, unique=True, trim="-")) if np.isfinite(v) else None
                for v in array.ravel()]
    elif array.dtype == np.bool_:
        data = [bool(v) for v in array.ravel()]
    elif array.dtype.kind == "f":
        data = [float(v) for v in array.ravel()]
    else:
        data = [int(v) for v in array.ravel()]
    return {"type": TYPES[array.dtype], "shape": list(array.shape), "data": data}


def declared(values):
    result = []
    for value in values:
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim] \
            if tensor.HasField("shape") else None
        result.append({"name": value.name, "type": ELEMENT_TYPES[tensor.elem_type], "shape": shape})
    return result


def write(name, model, cases, description, numpy_reference=None):
    """`numpy_reference` maps outputs on which ONNX Runtime is wrong to a
    function of the feeds computing them with NumPy instead."""
    onnx.checker.check_model(model, full_check=True)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # edge_ops overrides an initializer on purpose; no warning for it
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    output_names = [o.name for o in session.get_outputs()]
    initializer_names = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializer_names]
    recorded = []
    for case_name, feeds in cases:
        results = session.run(output_names, feeds)
        for output, compute in (numpy_reference or {}).items():
            index = output_names.index(output)
            correct = compute(feeds)
            print(f"  {name} {case_name} {output}: NumPy {correct.tolist()!r:.80}, ONNX Runtime {results[index].tolist()!r:.80}")
            results[index] = correct
        recorded.append({"name": case_name,
                         "inputs": {k: encoded(v) for k, v in feeds.items()},
                         "outputs": {k: encoded(v) for k, v in zip(output_names, results)}})
    (OUT / f"{name}.onnx").write_bytes(model.SerializeToString())
    document = {"model": f"{name}.onnx", "description": description,
                "inputs": declared(inputs), "outputs": declared(model.graph.output), "cases": recorded}
    (OUT / f"{name}.json").write_text(json.dumps(document, separators=(",", ":")) + "\n")
    size = (OUT / f"{name}.onnx").stat().st_size
    print(f"{name}: {len(model.graph.node)} nodes ({', '.join(sorted({n.op_type for n in model.graph.node}))}), "
          f"{size} bytes, {len(recorded)} cases")


def write_failure(name, model, error, description):
    (OUT / f"{name}.onnx").write_bytes(model.SerializeToString())
    (OUT / f"{name}.json").write_text(json.dumps({"model": f"{name}.onnx", "description": description,
                                                  "error": error}, separators=(",", ":")) + "\n")
    print(f"{name}: must fail with {error}")


def only_standard_ops(model):
    domains = {n.domain for n in model.graph.node}
    assert domains <= {"", "ai.onnx"}, f"non-standard domains {domains}"


# MARK: scikit-learn models

def ranking_data(rows, features):
    x = rng.normal(size=(rows, features))
    y = 0.8 * x[:, 0] - 0.5 * x[:, 1] * x[:, 2] + np.tanh(x[:, 3]) + 0.1 * rng.normal(size=rows)
    return x, y


def batches(name, features, dtype, sizes=(1, 7, 100)):
    return [(f"batch {n}", {name: quantized(rng.normal(size=(n, features)), dtype)}) for n in sizes]


def mlp_ranker():
    x, y = ranking_data(400, 12)
    model = MLPRegressor(hidden_layer_sizes=(32, 16), activation="relu", max_iter=300, random_state=1)
    model.fit(quantized(x), y)
    onx = to_onnx(model, quantized(x[:1]), target_opset=17)
    only_standard_ops(onx)
    write("mlp_ranker", onx, batches("X", 12, np.float32),
          "MLPRegressor(32, 16, relu) on 12 ranking features, skl2onnx, opset 17")


def mlp_ranker_f64():
    x, y = ranking_data(300, 6)
    model = MLPRegressor(hidden_layer_sizes=(8,), activation="tanh", max_iter=300, random_state=2)
    model.fit(quantized(x, np.float64), y)
    onx = to_onnx(model, quantized(x[:1], np.float64), target_opset=17)
    only_standard_ops(onx)
    write("mlp_ranker_f64", onx, batches("X", 6, np.float64, sizes=(1, 100)),
          "MLPRegressor(8, tanh) converted for float64 inputs (dgemm)")


def mlp_classifiers():
    x, _ = ranking_data(300, 5)
    labels = np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.5, 0.5])
    model = MLPClassifier(hidden_layer_sizes=(10,), activation="logistic", max_iter=400, random_state=3)
    model.fit(quantized(x), labels)
    full = to_onnx(model, quantized(x[:1]), target_opset={"": 17, "ai.onnx.ml": 3}, options={"zipmap": False})
    ml_nodes = [n for n in full.graph.node if n.domain == "ai.onnx.ml"]
    assert ml_nodes, "expected the label branch to use ai.onnx.ml"
    write_failure("unsupported_ml_domain", full,
                  {"kind": "unsupportedDomain", "domain": "ai.onnx.ml", "op_type": ml_nodes[0].op_type},
                  "full MLPClassifier conversion: the label output uses ai.onnx.ml")

    # The probabilities alone need only standard operators.
    # (The ai.onnx.ml import stays; an imported domain no node uses is harmless.)
    probabilities = onnx.utils.Extractor(full).extract_model(["X"], ["probabilities"])
    only_standard_ops(probabilities)
    write("mlp_classifier", probabilities, batches("X", 5, np.float32),
          "MLPClassifier(10, logistic), 3 classes, probabilities output only")


# MARK: Hand-built graphs

def tensor(name, array, raw=True):
    """An initializer stored as raw bytes or in the typed repeated field."""
    array = np.asarray(array)
    if raw:
        return numpy_helper.from_array(array, name)
    data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
    return helper.make_tensor(name, data_type, array.shape, array.ravel().tolist())


def all_ops(opset):
    """Item-history embeddings, a category embedding and dense features into
    a small scorer; side outputs exercise the remaining operators."""
    vocabulary, width, history, dense = 20, 4, 5, 6
    new = opset >= 13  # axes of Squeeze, Unsqueeze and ReduceSum become inputs
    new_mean = opset >= 18  # and of ReduceMean

    initializers = [
        tensor("embedding", quantized(rng.normal(size=(vocabulary, width)))),
        tensor("category_embedding", quantized(rng.normal(size=(6, 3))), raw=False),
        tensor("mu", quantized(rng.normal(size=dense) * 0.1)),
        tensor("sigma", quantized(1 + rng.random(size=dense)), raw=False),
        tensor("w1", quantized(rng.normal(size=(16, 13)) * 0.4)),
        tensor("b1", quantized(rng.normal(size=16) * 0.1)),
        tensor("w2", quantized(rng.normal(size=(16, 8)) * 0.4), raw=False),
        tensor("b2", quantized(rng.normal(size=8) * 0.1)),
        tensor("scale", quantized(1 + rng.random(size=(1, 8)))),
        tensor("w3", quantized(rng.normal(size=(8, 3)))),
        tensor("wg", quantized(rng.normal(size=(width, 2)))),
        tensor("gram_shape", np.array([0, width, history], dtype=np.int64), raw=False),
        tensor("one", np.array(1, dtype=np.int64)),
        tensor("two", np.array([2], dtype=np.int64), raw=False),
        tensor("three", np.array(3, dtype=np.int64)),
    ]
    nodes = []

    def axes_of(op, name, axes, data, output, **attributes):
        """A node taking axes as attribute (old opsets) or as input (new)."""
        takes_input = new_mean if op == "ReduceMean" else new
        if takes_input:
            initializers.append(tensor(name, np.array(axes, dtype=np.int64)))
            nodes.append(helper.make_node(op, [data, name], [output], name=output, **attributes))
        else:
            nodes.append(helper.make_node(op, [data], [output], name=output, axes=axes, **attributes))

    node = helper.make_node
    nodes += [
        node("Gather", ["embedding", "item_ids"], ["history"], name="history", axis=0),
    ]
    axes_of("ReduceMean", "axes_history", [1], "history", "pooled", keepdims=0)
    nodes += [
        node("Gather", ["category_embedding", "category"], ["category_vector"], name="category_vector"),
        node("Sub", ["dense", "mu"], ["centered"], name="centered"),
        node("Div", ["centered", "sigma"], ["standardized"], name="standardized"),
        node("Concat", ["pooled", "category_vector", "standardized"], ["features"], name="features", axis=1),
        node("Gemm", ["features", "w1", "b1"], ["hidden"], name="hidden", alpha=0.9, beta=0.5, transB=1),
        node("Relu", ["hidden"], ["hidden_relu"], name="hidden_relu"),
        node("MatMul", ["hidden_relu", "w2"], ["projected"], name="projected"),
        node("Add", ["projected", "b2"], ["biased"], name="biased"),
        node("Tanh", ["biased"], ["activated"], name="activated"),
        node("Mul", ["activated", "scale"], ["scaled"], name="scaled"),
        node("MatMul", ["scaled", "w3"], ["logits"], name="logits"),
        node("Softmax", ["logits"], ["probabilities"], name="probabilities", axis=1),
    ]
    axes_of("ReduceSum", "axes_logits", [1], "logits", "logit_sum", keepdims=1)
    nodes += [
        node("Sigmoid", ["logit_sum"], ["score"], name="score"),
        # Reshape with a 0 (keep the batch) whose shape comes from a Constant node.
        node("Constant", [], ["blocks_shape"], name="blocks_shape",
             value=helper.make_tensor("blocks_shape", TensorProto.INT64, [3], [0, 2, 4])),
        node("Reshape", ["scaled", "blocks_shape"], ["blocks"], name="blocks"),
        # Opset 11 flattens to [batch, 8] around axis 1; 13+ normalizes along axis 1 only.
        node("Softmax", ["blocks"], ["block_softmax"], name="block_softmax", axis=1),
        node("Flatten", ["block_softmax"], ["flat"], name="flat", axis=1),
    ]
    axes_of("Unsqueeze", "axes_unsqueeze", [1], "flat", "expanded")
    axes_of("Squeeze", "axes_squeeze", [1], "expanded", "squeezed")
    nodes += [
        node("Cast", ["squeezed"], ["flat64"], name="flat64", to=TensorProto.DOUBLE),
        node("Identity", ["flat64"], ["flat64_out"], name="flat64_out"),
        # [batch, 5, 4] x [4, 2], then a fully batched [batch, 5, 4] x [batch, 4, 5].
        node("MatMul", ["history", "wg"], ["history_projected"], name="history_projected"),
        node("Reshape", ["history", "gram_shape"], ["history_t"], name="history_t"),
        node("MatMul", ["history", "history_t"], ["gram"], name="gram"),
    ]
    axes_of("ReduceSum", "axes_projected", [1, 2], "history_projected", "projected_sum", keepdims=0)
    axes_of("ReduceMean", "axes_gram", [-1], "gram", "gram_mean", keepdims=1)
    nodes += [
        # Integer arithmetic: (ids + 1) * 2 / 3 truncates toward zero.
        node("Add", ["item_ids", "one"], ["ids_plus"], name="ids_plus"),
        node("Mul", ["ids_plus", "two"], ["ids_times"], name="ids_times"),
        node("Div", ["ids_times", "three"], ["ids_divided"], name="ids_divided"),
    ]
    axes_of("ReduceSum", "axes_ids", [1], "ids_divided", "id_stat", keepdims=0)
    nodes += [
        node("Cast", ["dense"], ["nonzero"], name="nonzero", to=TensorProto.BOOL),
        node("Cast", ["nonzero"], ["nonzero_float"], name="nonzero_float", to=TensorProto.FLOAT),
        node("Cast", ["category"], ["category_float"], name="category_float", to=TensorProto.FLOAT),
    ]
    axes_of("Unsqueeze", "axes_category", [-1], "category_float", "category_float_column")
    nodes.append(node("Concat", ["nonzero_float", "category_float_column"], ["flags"], name="flags", axis=-1))
    axes_of("ReduceSum", "axes_flags", [1], "flags", "flag_sum", keepdims=0)
    # No axes: everything (a scalar with keepdims=0).
    nodes.append(node("ReduceSum", ["standardized"], ["total"], name="total", keepdims=0))
    outputs = [
        ("probabilities", TensorProto.FLOAT, ["batch", 3]),
        ("score", TensorProto.FLOAT, ["batch", 1]),
        ("block_softmax", TensorProto.FLOAT, ["batch", 2, 4]),
        ("flat64_out", TensorProto.DOUBLE, ["batch", 8]),
        ("projected_sum", TensorProto.FLOAT, ["batch"]),
        ("gram_mean", TensorProto.FLOAT, ["batch", history, 1]),
        ("id_stat", TensorProto.INT64, ["batch"]),
        ("flag_sum", TensorProto.FLOAT, ["batch"]),
        ("total", TensorProto.FLOAT, []),
    ]
    if opset >= 13:
        # Empty axes with noop_with_empty_axes: the input unchanged.
        initializers.append(tensor("no_axes", np.array([], dtype=np.int64)))
        nodes.append(node("ReduceSum", ["logits", "no_axes"], ["logits_unchanged"], name="logits_unchanged",
                          noop_with_empty_axes=1))
        outputs.append(("logits_unchanged", TensorProto.FLOAT, ["batch", 3]))

    graph = helper.make_graph(
        nodes, f"all_ops_opset{opset}",
        [helper.make_tensor_value_info("item_ids", TensorProto.INT64, ["batch", history]),
         helper.make_tensor_value_info("category", TensorProto.INT32, ["batch"]),
         helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["batch", dense])],
        [helper.make_tensor_value_info(name, kind, shape) for name, kind, shape in outputs],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="meridian-fixtures")
    model.ir_version = 8

    cases = []
    for n in (1, 3, 100):
        ids = rng.integers(-vocabulary, vocabulary, size=(n, history), dtype=np.int64)  # negatives count from the end
        values = quantized(rng.normal(size=(n, dense)))
        values[rng.random(values.shape) < 0.3] = 0
        cases.append((f"batch {n}", {"item_ids": ids,
                                     "category": rng.integers(0, 6, size=n, dtype=np.int32),
                                     "dense": values}))
    write(f"all_ops_opset{opset}", model, cases,
          f"every supported operator in a small ranking graph, opset {opset}")


def edge_ops():
    """Corner cases with fixed shapes: each output checks one behaviour."""
    node = helper.make_node
    f = TensorProto.FLOAT
    initializers = [
        tensor("c_scalar", np.array(0.25, dtype=np.float32)),
        tensor("c_column", quantized(rng.normal(size=(4, 1)))),
        tensor("w", quantized(rng.normal(size=(4, 2))), raw=False),
        tensor("gather_index", np.array(-1, dtype=np.int64)),
        tensor("gather_indices", np.array([[0, 4], [2, -5]], dtype=np.int32)),
        tensor("shape_middle", np.array([5, -1, 2], dtype=np.int64)),
        tensor("axes_0_2", np.array([0, 2], dtype=np.int64)),
        tensor("axes_neg", np.array([-1, 0], dtype=np.int64)),
        tensor("mask", np.array([True, False, True, True]), raw=False),
        tensor("bias", quantized(rng.normal(size=4))),
        tensor("int_offsets", np.array([[1], [-2], [3]], dtype=np.int32)),
    ]
    nodes = [
        node("MatMul", ["a", "b"], ["matmul_broadcast"], name="matmul_broadcast"),   # [2,1,3,4] x [3,4,5]
        node("MatMul", ["v", "b"], ["matmul_vector_left"], name="matmul_vector_left"),
        node("MatMul", ["m", "v"], ["matmul_vector_right"], name="matmul_vector_right"),
        node("MatMul", ["v", "v"], ["matmul_dot"], name="matmul_dot"),
        node("Sub", ["col", "row"], ["outer_difference"], name="outer_difference"),  # both sides broadcast
        node("Div", ["a", "col"], ["divided"], name="divided"),
        node("Add", ["col", "a"], ["added_reversed"], name="added_reversed"),        # the small side first
        node("Gemm", ["g_a", "g_b", "c_scalar"], ["gemm_transposed"], name="gemm_transposed", transA=1, transB=1, alpha=1.5),
        node("Gemm", ["m", "w"], ["gemm_no_c"], name="gemm_no_c"),
        node("Gemm", ["g_a", "m", "c_column"], ["gemm_column_c"], name="gemm_column_c", transA=1, beta=2.0),
        node("Softmax", ["b"], ["softmax_axis0"], name="softmax_axis0", axis=0),
        node("Softmax", ["b"], ["softmax_middle"], name="softmax_middle", axis=-2),
        node("Concat", ["m", "m2"], ["concat_rows"], name="concat_rows", axis=0),
        node("Concat", ["b", "b"], ["concat_last"], name="concat_last", axis=-1),
        node("Gather", ["b", "gather_index"], ["gather_scalar"], name="gather_scalar", axis=1),
        node("Gather", ["b", "gather_indices"], ["gather_2d"], name="gather_2d", axis=2),
        node("Squeeze", ["a"], ["squeeze_all"], name="squeeze_all"),
        node("Unsqueeze", ["m", "axes_neg"], ["unsqueeze_negative"], name="unsqueeze_negative"),
        node("Flatten", ["b"], ["flatten_0"], name="flatten_0", axis=0),
        node("Flatten", ["b"], ["flatten_last"], name="flatten_last", axis=-1),
        node("Reshape", ["b", "shape_middle"], ["reshape_middle"], name="reshape_middle"),
        node("ReduceMean", ["b"], ["mean_0_2"], name="mean_0_2", axes=[0, 2], keepdims=1),
        node("ReduceSum", ["b", "axes_0_2"], ["sum_0_2"], name="sum_0_2", keepdims=0),
        node("Cast", ["m"], ["m_scaled_int"], name="m_scaled_int", to=TensorProto.INT32),
        node("Cast", ["m_times_ten"], ["truncated_int32"], name="truncated_int32", to=TensorProto.INT32),
        node("Cast", ["b64"], ["truncated_int64"], name="truncated_int64", to=TensorProto.INT64),
        node("Cast", ["truncated_int64"], ["narrowed_int32"], name="narrowed_int32", to=TensorProto.INT32),
        node("Sub", ["truncated_int32", "int_offsets"], ["int_difference"], name="int_difference"),
        node("Cast", ["mask"], ["mask_float"], name="mask_float", to=f),
        node("Mul", ["mask_float", "bias"], ["masked_bias"], name="masked_bias"),
        node("Relu", ["m"], ["relu_m"], name="relu_m"),
        node("Sigmoid", ["b"], ["sigmoid_b"], name="sigmoid_b"),
        node("Tanh", ["b64"], ["tanh_b64"], name="tanh_b64"),
        node("Identity", ["m"], ["identity_m"], name="identity_m"),
    ]
    # m_times_ten: m scaled so the casts see values with fractions on both signs.
    nodes.insert(0, node("Mul", ["m", "ten"], ["m_times_ten"], name="m_times_ten"))
    initializers.append(tensor("ten", np.array([10], dtype=np.float32)))
    # An unused node is dropped by the executor and must not matter.
    nodes.append(node("Tanh", ["v"], ["unused"], name="unused"))
    inputs = [
        helper.make_tensor_value_info("a", f, [2, 1, 3, 4]),
        helper.make_tensor_value_info("b", f, [3, 4, 5]),
        helper.make_tensor_value_info("v", f, [4]),
        helper.make_tensor_value_info("m", f, [3, 4]),
        helper.make_tensor_value_info("m2", f, [2, 4]),
        helper.make_tensor_value_info("col", f, [3, 1]),
        helper.make_tensor_value_info("row", f, [1, 4]),
        helper.make_tensor_value_info("g_a", f, [3, 4]),
        helper.make_tensor_value_info("g_b", f, [5, 3]),
        helper.make_tensor_value_info("b64", TensorProto.DOUBLE, [3, 4, 5]),
        # An input that also has an initializer: optional, the initializer is its default.
        helper.make_tensor_value_info("bias", f, [4]),
    ]
    outputs = [o for n in nodes for o in n.output if o != "unused"]
    # Output types and shapes come from ONNX's shape inference, declared as a converter would.
    graph = helper.make_graph(nodes, "edge_ops", inputs, [], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="meridian-fixtures")
    model.ir_version = 8
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    model.graph.output.extend(inferred[o] for o in outputs)

    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in inputs if i.name != "bias"}
    cases = []
    for index in range(2):
        feeds = {}
        for name, shape in shapes.items():
            dtype = np.float64 if name == "b64" else np.float32
            feeds[name] = quantized(rng.normal(size=shape) * (4 if name == "b64" else 1), dtype)
        cases.append((f"random {index + 1}", feeds))
    write("edge_ops", model, cases, "broadcasting and corner cases, fixed shapes, opset 13")


def unsupported_topk():
    node = helper.make_node
    graph = helper.make_graph(
        [node("Relu", ["x"], ["r"], name="relu"),
         node("TopK", ["r", "k"], ["values", "indices"], name="top_items", axis=-1)],
        "unsupported_topk",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 10])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("indices", TensorProto.INT64, ["batch", 3])],
        [numpy_helper.from_array(np.array([3], dtype=np.int64), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="meridian-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model)
    write_failure("unsupported_topk", model, {"kind": "unsupportedOperator", "op_type": "TopK", "node": "top_items"},
                  "Relu then TopK: TopK is not supported")


def string_ops():
    """STRING tensors through every operator that moves them: BYTES in
    Triton terms, for ids and text the service passes through."""
    node = helper.make_node
    s = TensorProto.STRING
    initializers = [
        helper.make_tensor("header", s, [1, 2], [b"id", "na\u00efve \u2713".encode()]),
        tensor("swap", np.array([1, 0], dtype=np.int64)),
        tensor("last", np.array(-1, dtype=np.int64)),
        tensor("rows", np.array([[0], [-1]], dtype=np.int32), raw=False),
        tensor("axes_0", np.array([0], dtype=np.int64)),
        tensor("axes_1", np.array([1], dtype=np.int64)),
        tensor("flat_shape", np.array([-1], dtype=np.int64)),
        tensor("pairs_shape", np.array([0, 2, 2], dtype=np.int64), raw=False),
    ]
    nodes = [
        node("Identity", ["text"], ["copy"], name="copy"),
        node("Gather", ["text", "swap"], ["swapped"], name="swapped", axis=1),
        node("Concat", ["text", "swapped"], ["joined"], name="joined", axis=1),
        node("Concat", ["header", "text"], ["with_header"], name="with_header", axis=0),
        node("Gather", ["text", "last"], ["last_row"], name="last_row", axis=0),
        node("Gather", ["with_header", "rows"], ["picked"], name="picked", axis=0),
        node("Reshape", ["joined", "flat_shape"], ["flat"], name="flat"),
        node("Reshape", ["joined", "pairs_shape"], ["pairs"], name="pairs"),
        node("Unsqueeze", ["text", "axes_1"], ["expanded"], name="expanded"),
        node("Flatten", ["expanded"], ["flattened"], name="flattened", axis=2),
        node("Squeeze", ["expanded", "axes_1"], ["squeezed"], name="squeezed"),
        node("Constant", [], ["tags"], name="tags", value_strings=[b"tag-a", b""]),
        node("Constant", [], ["tag"], name="tag", value_string=b"tag-b"),
        node("Unsqueeze", ["tag", "axes_0"], ["tag_1d"], name="tag_1d"),
        node("Concat", ["tags", "tag_1d"], ["all_tags"], name="all_tags", axis=0),
    ]
    graph = helper.make_graph(
        nodes, "string_ops",
        [helper.make_tensor_value_info("text", s, ["N", 2])],
        [helper.make_tensor_value_info("copy", s, ["N", 2]),
         helper.make_tensor_value_info("swapped", s, ["N", 2]),
         helper.make_tensor_value_info("joined", s, ["N", 4]),
         helper.make_tensor_value_info("with_header", s, [None, 2]),
         helper.make_tensor_value_info("last_row", s, [2]),
         helper.make_tensor_value_info("picked", s, [2, 1, 2]),
         helper.make_tensor_value_info("flat", s, [None]),
         helper.make_tensor_value_info("pairs", s, ["N", 2, 2]),
         helper.make_tensor_value_info("flattened", s, [None, 2]),
         helper.make_tensor_value_info("squeezed", s, ["N", 2]),
         helper.make_tensor_value_info("all_tags", s, [3])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="meridian-fixtures")
    model.ir_version = 8

    def texts(rows):
        return np.array(rows, dtype=object)
    cases = [
        ("one row", {"text": texts([["hello", ""]])}),
        ("three rows", {"text": texts([["a", "b"], ["na\u00efve \u2713", "with\x00nul"], ["x" * 300, "\u65e5\u672c"]])}),
    ]
    # ONNX Runtime (1.32 at least) gathers only the first string of each
    # slice when a slice holds more than one (Gather along an axis other than
    # the last): the rest come back empty. Those outputs are NumPy's take,
    # which is what the ONNX spec defines Gather as.
    header = numpy_helper.to_array(initializers[0]).astype(object)
    header = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(header)
    numpy_reference = {
        "last_row": lambda feeds: np.take(feeds["text"], -1, axis=0),
        "picked": lambda feeds: np.take(np.concatenate([header, feeds["text"]]), [[0], [-1]], axis=0),
    }
    write("string_ops", model, cases, "STRING tensors through the data-movement operators, opset 13; "
          "last_row and picked from NumPy (ONNX Runtime drops all but the first string of gathered slices)",
          numpy_reference)

    # Computing on strings must fail at load, naming the problem.
    add = helper.make_graph(
        [node("Concat", ["text", "text"], ["twice"], name="twice", axis=0),
         node("Add", ["twice", "twice"], ["sum"], name="string_sum")],
        "unsupported_string_add",
        [helper.make_tensor_value_info("text", s, ["N"])],
        [helper.make_tensor_value_info("sum", s, [None])])
    model = helper.make_model(add, opset_imports=[helper.make_opsetid("", 13)], producer_name="meridian-fixtures")
    model.ir_version = 8
    write_failure("unsupported_string_add", model,
                  {"kind": "unsupportedModel", "node": "string_sum", "message_contains": "string"},
                  "Add on strings (not valid ONNX either): strings only move")
    cast = helper.make_graph(
        [node("Cast", ["text"], ["number"], name="parse", to=TensorProto.FLOAT)],
        "unsupported_string_cast",
        [helper.make_tensor_value_info("text", s, ["N"])],
        [helper.make_tensor_value_info("number", TensorProto.FLOAT, ["N"])])
    model = helper.make_model(cast, opset_imports=[helper.make_opsetid("", 13)], producer_name="meridian-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    write_failure("unsupported_string_cast", model,
                  {"kind": "unsupportedModel", "node": "parse", "message_contains": "string"},
                  "Cast from string to float (valid ONNX; ONNX Runtime parses the numbers): not supported")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}, skl2onnx {skl2onnx.__version__}, "
          f"scikit-learn {sklearn.__version__}")
    mlp_ranker()
    mlp_ranker_f64()
    mlp_classifiers()
    all_ops(11)
    all_ops(18)
    edge_ops()
    unsupported_topk()
    string_ops()


if __name__ == "__main__":
    main()
