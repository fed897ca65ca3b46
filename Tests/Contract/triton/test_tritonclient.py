"""Our inference service against Triton's own Python client (tritonclient[grpc]).

The `inference` binary is started on model repositories this test builds in a
temporary directory from the committed fixtures (Tests/PlatformTests/Fixtures/
xgboost, made by scripts/generate-xgboost-fixtures.py), the demo ranker
(deploy/models/ranker) and two tiny ONNX models made here. Everything is then
called the way a Triton user calls Triton: tritonclient.grpc's
InferenceServerClient, and for typed tensor contents the generated stubs that
ship with tritonclient. Expectations follow Triton's documented behaviour and
our contract (proto/inference/grpc_service.proto); predictions must match
xgboost's and onnxruntime's own within 1e-5 relative.

Three servers:
- `server`: the models that must load; explicit versions, routing, metadata,
  config, statistics, errors.
- `mixed_server`: a broken artifact next to a good model (the good one serves,
  the broken one is UNAVAILABLE with a reason), and a BYTES identity model
  that is skipped unless the server loaded it.
- `explicit_server`: --model-control-mode explicit --load-model classifier;
  load and unload through the repository API.
"""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import grpc
import numpy as np
import onnx
import onnxruntime
import pytest
import tritonclient.grpc as triton
import xgboost as xgb
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN_DIR = pathlib.Path(os.environ.get("MERIDIAN_BIN_DIR", ROOT / ".build" / "debug"))
FIXTURES = ROOT / "Tests" / "PlatformTests" / "Fixtures" / "xgboost"
DEMO_REPOSITORY = ROOT / "deploy" / "models"
STARTUP_SECONDS = 60
RTOL = 1e-5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expected(name):
    """A fixture's inputs (None -> NaN) as FP32 and its reference outputs."""
    data = json.loads((FIXTURES / f"{name}.expected.json").read_text())
    inputs = np.array([[np.nan if v is None else v for v in row] for row in data["inputs"]], dtype=np.float32)
    return inputs, data


def wait_until(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except InferenceServerException:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


# ---------------------------------------------------------------- repositories

def write_config(model_dir, text):
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(text)


def xgboost_model(repo, name, artifacts, features, *, filename="model.json", max_batch_size=64, parameters=None,
                  num_versions=1, extra=""):
    """A Triton-layout XGBoost model: artifacts maps version -> fixture file."""
    model = repo / name
    for version, source in artifacts.items():
        (model / str(version)).mkdir(parents=True)
        shutil.copy(FIXTURES / source, model / str(version) / filename)
    params = "".join(f'parameters {{ key: "{k}" value {{ string_value: "{v}" }} }}\n' for k, v in (parameters or {}).items())
    write_config(model, f'''name: "{name}"
backend: "xgboost"
max_batch_size: {max_batch_size}
default_model_filename: "{filename}"
input [ {{ name: "features" data_type: TYPE_FP32 dims: [ {features} ] }} ]
output [ {{ name: "score" data_type: TYPE_FP32 dims: [ 1 ] }} ]
version_policy {{ latest {{ num_versions: {num_versions} }} }}
{extra}{params}''')


def onnx_model(repo, name, model, config_body):
    (repo / name / "1").mkdir(parents=True)
    onnx.save(model, str(repo / name / "1" / "model.onnx"))
    write_config(repo / name, f'name: "{name}"\nbackend: "onnxruntime"\ndefault_model_filename: "model.onnx"\n' + config_body)


LINEAR_WEIGHTS = np.linspace(-1.0, 1.0, 8, dtype=np.float32).reshape(8, 1)
LINEAR_BIAS = np.array([0.25], dtype=np.float32)


def linear_onnx():
    """features FP32 [N, 8] -> logit = features . w + b, score = sigmoid(logit)."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["logit"]),
         helper.make_node("Sigmoid", ["logit"], ["score"])],
        "linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1]),
         helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [8, 1], LINEAR_WEIGHTS.ravel().tolist()),
                     helper.make_tensor("b", TensorProto.FLOAT, [1], LINEAR_BIAS.tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def identity_bytes_onnx():
    """text_in BYTES [N, 1] -> text_out, unchanged."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text_in"], ["text_out"])], "identity",
        [helper.make_tensor_value_info("text_in", TensorProto.STRING, ["N", 1])],
        [helper.make_tensor_value_info("text_out", TensorProto.STRING, ["N", 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def classifier(repo, name="classifier", versions=(1,), **options):
    xgboost_model(repo, name, {v: "classifier.json" for v in versions}, 8,
                  parameters={"output": "probability", **options.pop("parameters", {})}, **options)


def main_repository():
    repo = pathlib.Path(tempfile.mkdtemp(prefix="triton-contract-main-"))
    # Two versions of the same booster, split by routing: any version gives the same numbers.
    classifier(repo, versions=(1, 2), num_versions=2, parameters={"routing": "1:50,2:50"},
               extra="dynamic_batching { max_queue_delay_microseconds: 200 }\nresponse_cache { enable: true }\n")
    classifier(repo, "classifier_margin", parameters={"output": "margin"})
    xgboost_model(repo, "classifier_ubj", {1: "classifier.ubj"}, 8, filename="model.ubj", max_batch_size=8,
                  parameters={"output": "probability"})
    # No "output" parameter: for squared error, margin and prediction are the same numbers.
    xgboost_model(repo, "regressor", {1: "regressor.ubj"}, 6, filename="model.ubj")
    shutil.copytree(DEMO_REPOSITORY / "ranker", repo / "ranker")
    onnx_model(repo, "linear_onnx", linear_onnx(), '''max_batch_size: 64
input [ { name: "features" data_type: TYPE_FP32 dims: [ 8 ] } ]
output [ { name: "score" data_type: TYPE_FP32 dims: [ 1 ] }, { name: "logit" data_type: TYPE_FP32 dims: [ 1 ] } ]
''')
    return repo


def broken_model(repo):
    (repo / "broken" / "1").mkdir(parents=True)
    shutil.copy(FIXTURES / "broken.json", repo / "broken" / "1" / "model.json")
    write_config(repo / "broken", '''name: "broken"
backend: "xgboost"
max_batch_size: 64
default_model_filename: "model.json"
input [ { name: "features" data_type: TYPE_FP32 dims: [ 8 ] } ]
output [ { name: "score" data_type: TYPE_FP32 dims: [ 1 ] } ]
''')


def mixed_repository():
    repo = pathlib.Path(tempfile.mkdtemp(prefix="triton-contract-mixed-"))
    classifier(repo)
    broken_model(repo)
    onnx_model(repo, "identity_bytes", identity_bytes_onnx(), '''max_batch_size: 16
input [ { name: "text_in" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "text_out" data_type: TYPE_STRING dims: [ 1 ] } ]
''')
    return repo


def explicit_repository():
    repo = pathlib.Path(tempfile.mkdtemp(prefix="triton-contract-explicit-"))
    classifier(repo)
    xgboost_model(repo, "regressor", {1: "regressor.json"}, 6)
    broken_model(repo)
    return repo


# ---------------------------------------------------------------- servers

class Server:
    """Our inference binary on a free port, over a copy of a repository."""

    def __init__(self, repository, *flags):
        self.repository = repository
        self.port = free_port()
        self.url = f"127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="inference-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [str(BIN_DIR / "inference"), "--port", str(self.port), "--admin-port", "0", "--host", "127.0.0.1",
             "--model-repository", str(repository), "--log-level", "warning", *flags],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.client = triton.InferenceServerClient(self.url)
        self.channel = grpc.insecure_channel(self.url)
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)

    def output(self):
        return pathlib.Path(self.log.name).read_text(errors="replace")[-4000:]

    def wait_live(self):
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"inference exited with {self.process.returncode}:\n{self.output()}")
            try:
                if self.client.is_server_live(client_timeout=2):
                    return
            except InferenceServerException:
                pass
            time.sleep(0.1)
        pytest.fail(f"inference not live after {STARTUP_SECONDS} s:\n{self.output()}")

    def wait_settled(self, names):
        """Until every named model is READY or UNAVAILABLE in the repository
        index: done loading, whether it loaded or not."""
        def settled():
            states = {}
            for model in self.client.get_model_repository_index(client_timeout=2).models:
                states.setdefault(model.name, []).append(model.state)
            return all(name in states and all(s in ("READY", "UNAVAILABLE") for s in states[name]) for name in names)
        if not wait_until(settled, timeout=STARTUP_SECONDS, interval=0.1):
            pytest.fail(f"models {names} still loading after {STARTUP_SECONDS} s:\n{self.output()}")

    def stop(self):
        self.client.close()
        self.channel.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        os.unlink(self.log.name)
        shutil.rmtree(self.repository, ignore_errors=True)


MAIN_MODELS = ["classifier", "classifier_margin", "classifier_ubj", "regressor", "ranker", "linear_onnx"]


@pytest.fixture(scope="module")
def server():
    running = Server(main_repository())
    try:
        running.wait_live()
        running.wait_settled(MAIN_MODELS)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def mixed_server():
    running = Server(mixed_repository())
    try:
        running.wait_live()
        running.wait_settled(["classifier", "broken", "identity_bytes"])
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def explicit_server():
    running = Server(explicit_repository(), "--model-control-mode", "explicit", "--load-model", "classifier")
    try:
        running.wait_live()
        assert wait_until(lambda: running.client.is_model_ready("classifier"), timeout=STARTUP_SECONDS), running.output()
        yield running
    finally:
        running.stop()


# ---------------------------------------------------------------- helpers

def features_input(rows, name="features"):
    tensor = triton.InferInput(name, list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    return tensor


def infer(client, model, rows, **options):
    return client.infer(model, [features_input(rows)], **options)


def rejected(call):
    """The InferenceServerException a call raises: (status name, message)."""
    with pytest.raises(InferenceServerException) as caught:
        call()
    status = caught.value.status() or ""
    return status.replace("StatusCode.", ""), caught.value.message() or ""


def index_by_name(client):
    table = {}
    for model in client.get_model_repository_index().models:
        table.setdefault(model.name, []).append(model)
    return table


def success_count(client, model):
    stats = client.get_inference_statistics(model_name=model).model_stats
    return (sum(s.inference_stats.success.count for s in stats), sum(s.inference_count for s in stats),
            sum(s.execution_count for s in stats))


# ---------------------------------------------------------------- health and metadata

def test_server_live_and_ready(server):
    assert server.client.is_server_live()
    assert server.client.is_server_ready()


def test_models_ready(server):
    for name in MAIN_MODELS:
        assert server.client.is_model_ready(name), name
    assert server.client.is_model_ready("classifier", "1")
    assert server.client.is_model_ready("classifier", "2")
    assert server.client.is_model_ready("ranker", "1")
    assert server.client.is_model_ready("ranker", "2")
    assert not server.client.is_model_ready("no_such_model")
    assert not server.client.is_model_ready("classifier", "7")


def test_server_metadata(server):
    metadata = server.client.get_server_metadata()
    assert metadata.name
    assert metadata.version
    as_json = server.client.get_server_metadata(as_json=True)
    assert as_json["name"] == metadata.name


def test_model_metadata(server):
    metadata = server.client.get_model_metadata("classifier")
    assert metadata.name == "classifier"
    assert sorted(metadata.versions) == ["1", "2"]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("features", "FP32", [-1, 8])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [("score", "FP32", [-1, 1])]
    one = server.client.get_model_metadata("classifier", "1")
    assert one.name == "classifier" and list(one.inputs[0].shape) == [-1, 8]

    regressor = server.client.get_model_metadata("regressor")
    assert [(t.name, t.datatype, list(t.shape)) for t in regressor.inputs] == [("features", "FP32", [-1, 6])]

    ranker = server.client.get_model_metadata("ranker")
    assert sorted(ranker.versions) == ["1", "2"]
    assert [(t.name, t.datatype, list(t.shape)) for t in ranker.inputs] == [("features", "FP32", [-1, 5])]

    linear = server.client.get_model_metadata("linear_onnx")
    assert sorted((t.name, t.datatype, list(t.shape)) for t in linear.outputs) == [
        ("logit", "FP32", [-1, 1]), ("score", "FP32", [-1, 1])]


def test_model_metadata_unknown_model(server):
    status, message = rejected(lambda: server.client.get_model_metadata("no_such_model"))
    assert status == "NOT_FOUND" and "no_such_model" in message, (status, message)


def test_model_config(server):
    config = server.client.get_model_config("classifier").config
    assert config.name == "classifier"
    assert config.backend == "xgboost"
    assert config.max_batch_size == 64
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [("features", model_config_pb2.TYPE_FP32, [8])]
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [("score", model_config_pb2.TYPE_FP32, [1])]
    assert config.version_policy.latest.num_versions == 2
    assert config.dynamic_batching.max_queue_delay_microseconds == 200
    assert config.response_cache.enable
    assert config.parameters["output"].string_value == "probability"
    assert config.parameters["routing"].string_value == "1:50,2:50"
    as_json = server.client.get_model_config("classifier", as_json=True)
    assert as_json["config"]["name"] == "classifier"

    ranker = server.client.get_model_config("ranker").config
    assert (ranker.backend, ranker.max_batch_size) == ("xgboost", 1000)
    assert ranker.parameters["routing"].string_value == "1:50,2:50"

    status, message = rejected(lambda: server.client.get_model_config("no_such_model"))
    assert status == "NOT_FOUND" and "no_such_model" in message, (status, message)


def test_repository_index_lists_every_model_ready(server):
    index = index_by_name(server.client)
    for name in MAIN_MODELS:
        assert name in index, f"{name} missing from {sorted(index)}"
        assert all(m.state == "READY" for m in index[name]), (name, index[name])
    versions = {m.version for m in index["classifier"]}
    assert versions <= {"", "1", "2"}


# ---------------------------------------------------------------- inference

def test_infer_raw_inputs_matches_xgboost(server):
    inputs, data = expected("classifier")
    for version in ("1", "2"):
        result = infer(server.client, "classifier", inputs, model_version=version, request_id=f"raw-{version}")
        response = result.get_response()
        assert response.model_name == "classifier"
        assert response.model_version == version
        assert response.id == f"raw-{version}"
        output = result.get_output("score")
        assert output.datatype == "FP32" and list(output.shape) == [len(inputs), 1]
        score = result.as_numpy("score")
        assert score.dtype == np.float32 and score.shape == (len(inputs), 1)
        np.testing.assert_allclose(score[:, 0], data["probability"], rtol=RTOL, atol=1e-7)


def test_infer_one_row(server):
    inputs, data = expected("classifier")
    score = infer(server.client, "classifier", inputs[4:5], model_version="1").as_numpy("score")
    assert score.shape == (1, 1)
    np.testing.assert_allclose(score[0, 0], data["probability"][4], rtol=RTOL)


def test_infer_typed_contents(server):
    """fp32_contents instead of raw_input_contents, through the generated stub."""
    inputs, data = expected("classifier")
    request = service_pb2.ModelInferRequest(model_name="classifier", model_version="2", id="typed")
    tensor = request.inputs.add(name="features", datatype="FP32", shape=list(inputs.shape))
    tensor.contents.fp32_contents.extend(inputs.ravel().tolist())
    response = server.stub.ModelInfer(request, timeout=10)
    assert (response.model_name, response.model_version, response.id) == ("classifier", "2", "typed")
    score = triton.InferResult(response).as_numpy("score")
    assert score.shape == (len(inputs), 1)
    np.testing.assert_allclose(score[:, 0], data["probability"], rtol=RTOL, atol=1e-7)


def test_infer_margin_output(server):
    inputs, data = expected("classifier")
    score = infer(server.client, "classifier_margin", inputs).as_numpy("score")
    np.testing.assert_allclose(score[:, 0], data["margin"], rtol=RTOL, atol=1e-6)


def test_infer_ubjson_model_in_batches_up_to_max_batch_size(server):
    inputs, data = expected("classifier")
    scores = []
    for start in range(0, len(inputs), 8):
        scores.extend(infer(server.client, "classifier_ubj", inputs[start:start + 8]).as_numpy("score")[:, 0])
    np.testing.assert_allclose(scores, data["probability"], rtol=RTOL, atol=1e-7)
    status, message = rejected(lambda: infer(server.client, "classifier_ubj", inputs[:9]))
    assert status == "INVALID_ARGUMENT", (status, message)


def test_infer_regressor(server):
    inputs, data = expected("regressor")
    score = infer(server.client, "regressor", inputs).as_numpy("score")
    np.testing.assert_allclose(score[:, 0], data["prediction"], rtol=RTOL, atol=1e-6)


def test_demo_ranker_versions_match_their_artifacts(server):
    rng = np.random.default_rng(7)
    rows = np.column_stack([rng.integers(0, 40, 64), np.round(rng.uniform(0, 3000, 64), 2), rng.uniform(6, 1200, 64),
                            rng.integers(0, 2, 64), rng.integers(0, 200, 64)]).astype(np.float32)
    rows[::7, :2] = np.nan  # users the feature store does not know
    for version, artifact in (("1", "1/model.json"), ("2", "2/model.ubj")):
        reference = xgb.Booster(model_file=str(DEMO_REPOSITORY / "ranker" / artifact)).predict(xgb.DMatrix(rows, missing=np.nan))
        result = infer(server.client, "ranker", rows, model_version=version)
        assert result.get_response().model_version == version
        score = result.as_numpy("score")[:, 0]
        assert np.all((score >= 0) & (score <= 1))
        np.testing.assert_allclose(score, reference, rtol=RTOL, atol=1e-7)


def test_requested_outputs(server):
    inputs, data = expected("classifier")
    only = infer(server.client, "classifier", inputs, model_version="1", outputs=[triton.InferRequestedOutput("score")])
    assert [o.name for o in only.get_response().outputs] == ["score"]

    rows = np.nan_to_num(inputs, nan=0.0)
    session = onnxruntime.InferenceSession(linear_onnx().SerializeToString(), providers=["CPUExecutionProvider"])
    want_score, want_logit = session.run(["score", "logit"], {"features": rows})
    every = infer(server.client, "linear_onnx", rows)
    assert sorted(o.name for o in every.get_response().outputs) == ["logit", "score"]
    np.testing.assert_allclose(every.as_numpy("score"), want_score, rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(every.as_numpy("logit"), want_logit, rtol=RTOL, atol=1e-6)
    logit = infer(server.client, "linear_onnx", rows, outputs=[triton.InferRequestedOutput("logit")])
    assert [(o.name, o.datatype, list(o.shape)) for o in logit.get_response().outputs] == [("logit", "FP32", [len(rows), 1])]
    np.testing.assert_allclose(logit.as_numpy("logit"), want_logit, rtol=RTOL, atol=1e-6)


# ---------------------------------------------------------------- errors

def test_wrong_datatype_names_the_tensor(server):
    inputs, _ = expected("classifier")
    tensor = triton.InferInput("features", [2, 8], "FP64")
    tensor.set_data_from_numpy(inputs[:2].astype(np.float64))
    status, message = rejected(lambda: server.client.infer("classifier", [tensor]))
    assert status == "INVALID_ARGUMENT" and "features" in message, (status, message)


def test_wrong_shape_names_the_tensor(server):
    inputs, _ = expected("classifier")
    for rows in (inputs[:2, :7], inputs[0]):  # 7 features; no batch dimension
        status, message = rejected(lambda: infer(server.client, "classifier", np.ascontiguousarray(rows)))
        assert status == "INVALID_ARGUMENT" and "features" in message, (rows.shape, status, message)


def test_wrong_byte_size_names_the_tensor(server):
    inputs, _ = expected("classifier")
    tensor = features_input(inputs[:2])
    tensor.set_shape([3, 8])  # 3 rows declared, 2 rows of bytes sent
    status, message = rejected(lambda: server.client.infer("classifier", [tensor]))
    assert status == "INVALID_ARGUMENT" and "features" in message, (status, message)


def test_unknown_or_missing_input(server):
    inputs, _ = expected("classifier")
    status, message = rejected(lambda: server.client.infer("classifier", [features_input(inputs[:2], name="colour")]))
    assert status == "INVALID_ARGUMENT" and "colour" in message, (status, message)
    status, message = rejected(lambda: server.client.infer("classifier", []))
    assert status == "INVALID_ARGUMENT", (status, message)


def test_unknown_requested_output_is_named(server):
    inputs, _ = expected("classifier")
    status, message = rejected(lambda: infer(server.client, "classifier", inputs[:2],
                                             outputs=[triton.InferRequestedOutput("no_such_output")]))
    assert status == "INVALID_ARGUMENT" and "no_such_output" in message, (status, message)


def test_unknown_model_or_version_is_not_found(server):
    inputs, _ = expected("classifier")
    status, message = rejected(lambda: infer(server.client, "no_such_model", inputs[:2]))
    assert status == "NOT_FOUND" and "no_such_model" in message, (status, message)
    status, message = rejected(lambda: infer(server.client, "classifier", inputs[:2], model_version="7"))
    assert status == "NOT_FOUND" and "classifier" in message, (status, message)


# ---------------------------------------------------------------- statistics

def test_statistics_count_successful_requests(server):
    inputs, _ = expected("regressor")
    before = success_count(server.client, "regressor")
    for rows in (inputs[:1], inputs[1:6], inputs):
        infer(server.client, "regressor", rows)
    want = (before[0] + 3, before[1] + 1 + 5 + len(inputs))
    assert wait_until(lambda: success_count(server.client, "regressor")[:2] == want, timeout=5), \
        f"success and inference counts {success_count(server.client, 'regressor')[:2]}, expected {want}"
    after = success_count(server.client, "regressor")
    assert 1 <= after[2] - before[2] <= 3  # executions: one per request, fewer only if batched together
    stats = server.client.get_inference_statistics(model_name="regressor").model_stats
    assert [(s.name, s.version) for s in stats] == [("regressor", "1")]
    assert stats[0].last_inference > 0
    assert stats[0].inference_stats.success.ns > 0


def test_statistics_of_every_model(server):
    names = {s.name for s in server.client.get_inference_statistics().model_stats}
    assert {"classifier", "regressor", "ranker"} <= names, names


# ---------------------------------------------------------------- routing

def test_alias_routes_to_a_configured_version(server):
    inputs, data = expected("classifier")
    for _ in range(4):
        result = infer(server.client, "classifier", inputs)
        assert result.get_response().model_version in ("1", "2")
        np.testing.assert_allclose(result.as_numpy("score")[:, 0], data["probability"], rtol=RTOL, atol=1e-7)


def test_routing_key_is_sticky(server):
    inputs, _ = expected("classifier")
    for model in ("classifier", "ranker"):
        rows = inputs[:3] if model == "classifier" else inputs[:3, :5]
        for key in ("user-42", "user-7", "u"):
            seen = {infer(server.client, model, rows, parameters={"routing_key": key}).get_response().model_version
                    for _ in range(6)}
            assert len(seen) == 1 and seen <= {"1", "2"}, (model, key, seen)


def test_routing_splits_keys_between_versions(server):
    """routing "1:50,2:50": 40 keys all on one version would happen once in 2^39."""
    inputs, _ = expected("classifier")
    seen = {infer(server.client, "ranker", inputs[:1, :5], parameters={"routing_key": f"user-{n}"}).get_response().model_version
            for n in range(40)}
    assert seen == {"1", "2"}, seen


def test_explicit_version_wins_over_routing(server):
    inputs, _ = expected("classifier")
    for version in ("1", "2"):
        for key in ("user-42", "user-7"):
            result = infer(server.client, "ranker", inputs[:2, :5], model_version=version, parameters={"routing_key": key})
            assert result.get_response().model_version == version


# ---------------------------------------------------------------- a broken artifact, BYTES

def test_broken_model_is_unavailable_with_a_reason(mixed_server):
    client = mixed_server.client
    assert client.is_server_live()
    index = index_by_name(client)
    assert all(m.state == "READY" for m in index["classifier"]), index["classifier"]
    assert "broken" in index, sorted(index)
    assert all(m.state == "UNAVAILABLE" and m.reason for m in index["broken"]), index["broken"]
    assert not client.is_model_ready("broken")
    inputs, data = expected("classifier")
    status, message = rejected(lambda: infer(client, "broken", inputs[:2]))
    assert status in ("UNAVAILABLE", "NOT_FOUND") and "broken" in message, (status, message)
    # The good model next to it serves.
    np.testing.assert_allclose(infer(client, "classifier", inputs).as_numpy("score")[:, 0], data["probability"],
                               rtol=RTOL, atol=1e-7)


def test_bytes_round_trip(mixed_server):
    client = mixed_server.client
    if not client.is_model_ready("identity_bytes"):
        reasons = [m.reason for m in index_by_name(client).get("identity_bytes", [])]
        pytest.skip(f"the server did not load the BYTES identity model (ONNX string tensors): {reasons}")
    metadata = client.get_model_metadata("identity_bytes")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("text_in", "BYTES", [-1, 1])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [("text_out", "BYTES", [-1, 1])]
    texts = np.array([[b"hello"], [b""], ["na\u00efve \u2713".encode()], [b"x" * 300]], dtype=np.object_)
    tensor = triton.InferInput("text_in", list(texts.shape), "BYTES")
    tensor.set_data_from_numpy(texts)
    result = client.infer("identity_bytes", [tensor])
    output = result.get_output("text_out")
    assert output.datatype == "BYTES" and list(output.shape) == [4, 1]
    assert result.as_numpy("text_out").tolist() == texts.tolist()


# ---------------------------------------------------------------- explicit model control

def test_explicit_mode_loads_only_what_it_is_told(explicit_server):
    client = explicit_server.client
    assert client.is_server_live()
    assert client.is_model_ready("classifier")
    assert not client.is_model_ready("regressor")
    index = index_by_name(client)
    assert all(m.state == "READY" for m in index["classifier"]), index["classifier"]
    assert "regressor" in index and all(m.state != "READY" for m in index["regressor"]), index.get("regressor")


def test_load_and_unload(explicit_server):
    client = explicit_server.client
    inputs, data = expected("regressor")
    status, message = rejected(lambda: infer(client, "regressor", inputs))
    assert status in ("UNAVAILABLE", "NOT_FOUND") and "regressor" in message, (status, message)

    client.load_model("regressor")
    assert client.is_model_ready("regressor")
    np.testing.assert_allclose(infer(client, "regressor", inputs).as_numpy("score")[:, 0], data["prediction"],
                               rtol=RTOL, atol=1e-6)
    # Loading a loaded model again (a reload) leaves it serving.
    client.load_model("regressor")
    assert client.is_model_ready("regressor")

    client.unload_model("regressor")
    assert wait_until(lambda: not client.is_model_ready("regressor"), timeout=10)
    assert all(m.state != "READY" for m in index_by_name(client)["regressor"])
    status, message = rejected(lambda: infer(client, "regressor", inputs))
    assert status in ("UNAVAILABLE", "NOT_FOUND") and "regressor" in message, (status, message)
    assert client.is_model_ready("classifier")


def test_loading_a_broken_model_fails_with_the_reason(explicit_server):
    client = explicit_server.client
    status, message = rejected(lambda: client.load_model("broken"))
    # The contract's comment says INVALID_ARGUMENT; a Triton user relies on the
    # call failing with a message that names the model.
    assert status in ("INVALID_ARGUMENT", "FAILED_PRECONDITION") and "broken" in message, (status, message)
    assert not client.is_model_ready("broken")
    entries = index_by_name(client)["broken"]
    assert all(m.state == "UNAVAILABLE" and m.reason for m in entries), entries
    # The rest keeps serving.
    inputs, data = expected("classifier")
    np.testing.assert_allclose(infer(client, "classifier", inputs).as_numpy("score")[:, 0], data["probability"],
                               rtol=RTOL, atol=1e-7)


def test_loading_an_unknown_model_fails(explicit_server):
    status, message = rejected(lambda: explicit_server.client.load_model("no_such_model"))
    assert status in ("INVALID_ARGUMENT", "NOT_FOUND") and "no_such_model" in message, (status, message)
