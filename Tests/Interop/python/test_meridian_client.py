"""Our client (interop-client) against gRPC's own Python server: every
interop case, each as its own test."""
import subprocess
import time
from concurrent import futures

import grpc
import pytest

from conftest import BIN_DIR

CASES = [
    "empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong", "empty_stream",
    "custom_metadata", "status_code_and_message", "special_status_message", "unimplemented_method",
    "unimplemented_service", "cancel_after_begin", "cancel_after_first_response", "timeout_on_sleeping_server",
]


def make_servicer(stubs):
    messages = stubs.messages

    def echo_metadata(context):
        metadata = dict(context.invocation_metadata())
        if "x-grpc-test-echo-initial" in metadata:
            context.send_initial_metadata((("x-grpc-test-echo-initial", metadata["x-grpc-test-echo-initial"]),))
        if "x-grpc-test-echo-trailing-bin" in metadata:
            context.set_trailing_metadata((("x-grpc-test-echo-trailing-bin", metadata["x-grpc-test-echo-trailing-bin"]),))

    def abort_if_asked(request, context):
        if request.HasField("response_status") and request.response_status.code != 0:
            context.abort(grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == request.response_status.code)),
                          request.response_status.message)

    class TestService(stubs.test_grpc.TestServiceServicer):
        def EmptyCall(self, request, context):
            echo_metadata(context)
            return stubs.empty.Empty()

        def UnaryCall(self, request, context):
            echo_metadata(context)
            abort_if_asked(request, context)
            return messages.SimpleResponse(payload=messages.Payload(body=b"\0" * request.response_size))

        def StreamingOutputCall(self, request, context):
            echo_metadata(context)
            for parameters in request.response_parameters:
                time.sleep(parameters.interval_us / 1e6)
                yield messages.StreamingOutputCallResponse(payload=messages.Payload(body=b"\0" * parameters.size))
            abort_if_asked(request, context)

        def StreamingInputCall(self, request_iterator, context):
            echo_metadata(context)
            return messages.StreamingInputCallResponse(
                aggregated_payload_size=sum(len(r.payload.body) for r in request_iterator))

        def FullDuplexCall(self, request_iterator, context):
            echo_metadata(context)
            for request in request_iterator:
                for parameters in request.response_parameters:
                    time.sleep(parameters.interval_us / 1e6)
                    yield messages.StreamingOutputCallResponse(payload=messages.Payload(body=b"\0" * parameters.size))
                abort_if_asked(request, context)

    return TestService()


@pytest.fixture(scope="module")
def grpcio_server(stubs):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    stubs.test_grpc.add_TestServiceServicer_to_server(make_servicer(stubs), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=1)


@pytest.mark.parametrize("case", CASES)
def test_meridian_client_against_grpcio_server(grpcio_server, case):
    binary = BIN_DIR / "interop-client"
    assert binary.exists(), f"{binary} is missing: run swift build first"
    result = subprocess.run([str(binary), "--server-port", str(grpcio_server), "--test-case", case],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"PASS {case}" in result.stdout
