"""gRPC's own Python client (grpcio) against our server: the interop cases of
grpc/grpc doc/interop-test-descriptions.md that need no TLS or credentials,
plus health checking and server reflection with gRPC's Python tools."""
import threading
import time

import grpc
import pytest


@pytest.fixture()
def channel(meridian_server):
    with grpc.insecure_channel(meridian_server) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield channel


@pytest.fixture()
def client(channel, stubs):
    return stubs.test_grpc.TestServiceStub(channel)


def payload(stubs, size):
    return stubs.messages.Payload(body=b"\0" * size)


def test_empty_unary(client, stubs):
    assert client.EmptyCall(stubs.empty.Empty()) == stubs.empty.Empty()


def test_large_unary(client, stubs):
    response = client.UnaryCall(stubs.messages.SimpleRequest(response_size=314159, payload=payload(stubs, 271828)))
    assert response.payload.body == b"\0" * 314159


def test_client_streaming(client, stubs):
    sizes = [27182, 8, 1828, 45904]
    requests = (stubs.messages.StreamingInputCallRequest(payload=payload(stubs, n)) for n in sizes)
    assert client.StreamingInputCall(requests).aggregated_payload_size == 74922


def test_server_streaming(client, stubs):
    sizes = [31415, 9, 2653, 58979]
    request = stubs.messages.StreamingOutputCallRequest(
        response_parameters=[stubs.messages.ResponseParameters(size=n) for n in sizes])
    assert [len(r.payload.body) for r in client.StreamingOutputCall(request)] == sizes


def test_ping_pong(client, stubs):
    request_sizes = [27182, 8, 1828, 45904]
    response_sizes = [31415, 9, 2653, 58979]
    pending = []
    condition = threading.Condition()

    def requests():
        for request_size, response_size in zip(request_sizes, response_sizes):
            yield stubs.messages.StreamingOutputCallRequest(
                response_parameters=[stubs.messages.ResponseParameters(size=response_size)],
                payload=payload(stubs, request_size))
            with condition:  # ping-pong: wait for the answer before the next ping
                condition.wait_for(lambda: len(pending) >= 1, timeout=10)
                pending.pop()

    received = []
    for response in client.FullDuplexCall(requests()):
        received.append(len(response.payload.body))
        with condition:
            pending.append(True)
            condition.notify()
    assert received == response_sizes


def test_empty_stream(client, stubs):
    assert list(client.FullDuplexCall(iter(()))) == []


def test_custom_metadata(client, stubs):
    metadata = (("x-grpc-test-echo-initial", "test_initial_metadata_value"),
                ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab"))
    request = stubs.messages.SimpleRequest(response_size=314159, payload=payload(stubs, 271828))
    response, call = client.UnaryCall.with_call(request, metadata=metadata)
    assert ("x-grpc-test-echo-initial", "test_initial_metadata_value") in call.initial_metadata()
    assert ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab") in call.trailing_metadata()

    stream = client.FullDuplexCall(iter([stubs.messages.StreamingOutputCallRequest(
        response_parameters=[stubs.messages.ResponseParameters(size=314159)], payload=payload(stubs, 271828))]),
        metadata=metadata)
    assert [len(r.payload.body) for r in stream] == [314159]
    assert ("x-grpc-test-echo-initial", "test_initial_metadata_value") in stream.initial_metadata()
    assert ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab") in stream.trailing_metadata()


@pytest.mark.parametrize("message", ["test status message",
                                     "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"])
def test_status_code_and_message(client, stubs, message):
    status = stubs.messages.EchoStatus(code=2, message=message)
    with pytest.raises(grpc.RpcError) as unary:
        client.UnaryCall(stubs.messages.SimpleRequest(response_status=status))
    assert unary.value.code() == grpc.StatusCode.UNKNOWN
    assert unary.value.details() == message
    with pytest.raises(grpc.RpcError) as duplex:
        list(client.FullDuplexCall(iter([stubs.messages.StreamingOutputCallRequest(response_status=status)])))
    assert duplex.value.code() == grpc.StatusCode.UNKNOWN
    assert duplex.value.details() == message


def test_unimplemented_method(client, stubs):
    with pytest.raises(grpc.RpcError) as error:
        client.UnimplementedCall(stubs.empty.Empty())
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_unimplemented_service(channel, stubs):
    with pytest.raises(grpc.RpcError) as error:
        stubs.test_grpc.UnimplementedServiceStub(channel).UnimplementedCall(stubs.empty.Empty())
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_cancel_after_begin(client, stubs):
    release = threading.Event()

    def requests():
        release.wait(10)
        return
        yield  # a generator that sends nothing until cancelled

    future = client.StreamingInputCall.future(requests())
    time.sleep(0.1)
    future.cancel()
    release.set()
    assert future.cancelled()
    with pytest.raises(grpc.FutureCancelledError):
        future.result()


def test_cancel_after_first_response(client, stubs):
    release = threading.Event()

    def requests():
        yield stubs.messages.StreamingOutputCallRequest(
            response_parameters=[stubs.messages.ResponseParameters(size=31415)], payload=payload(stubs, 27182))
        release.wait(10)

    call = client.FullDuplexCall(requests())
    assert len(next(call).payload.body) == 31415
    call.cancel()
    release.set()
    with pytest.raises(grpc.RpcError) as error:
        next(call)
    assert error.value.code() == grpc.StatusCode.CANCELLED


def test_timeout_on_sleeping_server(client, stubs):
    release = threading.Event()

    def requests():
        yield stubs.messages.StreamingOutputCallRequest(payload=payload(stubs, 27182))
        release.wait(5)

    with pytest.raises(grpc.RpcError) as error:
        list(client.FullDuplexCall(requests(), timeout=0.001))
    release.set()
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_health_check_and_watch(channel):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest(service="")).status == serving
    assert health.Check(health_pb2.HealthCheckRequest(service="grpc.testing.TestService")).status == serving
    with pytest.raises(grpc.RpcError) as error:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
    assert next(watch).status == serving
    watch.cancel()
    unknown = health.Watch(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert next(unknown).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    unknown.cancel()


@pytest.mark.parametrize("version", ["v1alpha", "v1"])
def test_reflection(channel, version):
    from google.protobuf.descriptor_pool import DescriptorPool

    if version == "v1alpha":
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
        database = ProtoReflectionDescriptorDatabase(channel)
    else:
        from grpc_reflection.v1alpha import reflection_pb2  # noqa: F401  (v1 client is a stub pair)
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
        database = ProtoReflectionDescriptorDatabase(channel)
    services = database.get_services()
    assert "grpc.testing.TestService" in services
    assert "grpc.health.v1.Health" in services
    pool = DescriptorPool(database)
    service = pool.FindServiceByName("grpc.testing.TestService")
    method = service.FindMethodByName("UnaryCall")
    assert method.input_type.full_name == "grpc.testing.SimpleRequest"
    assert [f.name for f in method.input_type.fields][:3] == ["response_type", "response_size", "payload"]
    with pytest.raises(KeyError):
        pool.FindServiceByName("no.such.Service")


def test_reflection_v1_raw(channel):
    from grpc_reflection.v1alpha import reflection_pb2  # the messages are wire-identical to v1's

    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    responses = list(call(iter([reflection_pb2.ServerReflectionRequest(list_services=""),
                                reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.Such")])))
    assert "grpc.testing.TestService" in [s.name for s in responses[0].list_services_response.service]
    assert responses[1].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
