"""Malformed and abusive HTTP/2 traffic against our server, sent with
nghttp2's own command-line clients (Debian nghttp2-client): the server answers
with a clear gRPC status or stays healthy; it never crashes or hangs."""
import re
import shutil
import struct
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp2-client is installed by scripts/install-dependencies.sh")

GRPC_HEADERS = ["-H", "content-type: application/grpc", "-H", "te: trailers"]


def nghttp(url, body, tmp_path, *extra):
    path = tmp_path / "body.bin"
    path.write_bytes(body)
    result = subprocess.run(["nghttp", "-v", "-n", *GRPC_HEADERS, *extra, "-d", str(path), url],
                            capture_output=True, text=True, timeout=30)
    return result.stdout


def grpc_status(output):
    statuses = re.findall(r"grpc-status: (\d+)", output)
    assert statuses, f"no grpc-status in the response:\n{output}"
    return int(statuses[-1])


def unary_url(server):
    return f"http://{server}/grpc.testing.TestService/UnaryCall"


def test_truncated_length_prefix_is_internal(meridian_server, tmp_path):
    output = nghttp(unary_url(meridian_server), b"\x00\x00\x00", tmp_path)
    assert grpc_status(output) == 13
    assert "length-prefixed" in output


def test_length_prefix_longer_than_body_is_internal(meridian_server, tmp_path):
    output = nghttp(unary_url(meridian_server), b"\x00" + struct.pack(">I", 100) + b"abc", tmp_path)
    assert grpc_status(output) == 13


def test_oversized_length_prefix_is_resource_exhausted(meridian_server, tmp_path):
    # Announces 64 MiB; the server refuses before buffering it.
    output = nghttp(unary_url(meridian_server), b"\x00" + struct.pack(">I", 64 << 20) + b"x" * 16, tmp_path)
    assert grpc_status(output) == 8


def test_compressed_flag_without_encoding_is_internal(meridian_server, tmp_path):
    output = nghttp(unary_url(meridian_server), b"\x01" + struct.pack(">I", 0), tmp_path)
    assert grpc_status(output) == 13


def test_undecodable_message_is_internal(meridian_server, tmp_path):
    output = nghttp(unary_url(meridian_server), b"\x00" + struct.pack(">I", 3) + b"\xff\xff\xff", tmp_path)
    assert grpc_status(output) == 13


def test_unsupported_encoding_is_unimplemented(meridian_server, tmp_path):
    output = nghttp(unary_url(meridian_server), b"\x00" + struct.pack(">I", 0), tmp_path, "-H", "grpc-encoding: gzip")
    assert grpc_status(output) == 12


def test_non_grpc_content_type_gets_http_415(meridian_server, tmp_path):
    path = tmp_path / "body.bin"
    path.write_bytes(b"{}")
    output = subprocess.run(["nghttp", "-v", "-n", "-H", "content-type: application/json", "-d", str(path), unary_url(meridian_server)],
                            capture_output=True, text=True, timeout=30).stdout
    assert ":status: 415" in output


def test_many_concurrent_streams_all_succeed(meridian_server, tmp_path):
    if shutil.which("h2load") is None:
        pytest.skip("h2load missing")
    body = tmp_path / "empty.bin"
    body.write_bytes(b"\x00" + struct.pack(">I", 0))
    result = subprocess.run(["h2load", "-n", "4000", "-c", "4", "-m", "127", *GRPC_HEADERS, "-d", str(body),
                             f"http://{meridian_server}/grpc.testing.TestService/EmptyCall"],
                            capture_output=True, text=True, timeout=120)
    assert re.search(r"requests: 4000 total, 4000 started, 4000 done, 4000 succeeded", result.stdout), result.stdout
