"""Fixtures for interop tests between our runtime and gRPC's Python implementation.

Stubs for grpc.testing are generated from the repository's proto/ at test time
with grpcio-tools; our binaries come from `swift build` (MERIDIAN_BIN_DIR
overrides where they are).
"""
import importlib
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN_DIR = pathlib.Path(os.environ.get("MERIDIAN_BIN_DIR", ROOT / ".build" / "debug"))


class Stubs:
    def __init__(self, out):
        # grpc_tools writes grpc/testing/*_pb2.py; "grpc" is also the installed
        # package, so load the generated modules by path.
        import importlib.util

        def load(name, path):
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module

        base = pathlib.Path(out) / "grpc" / "testing"
        import types

        package = types.ModuleType("grpc.testing")
        package.__path__ = [str(base)]
        sys.modules["grpc.testing"] = package
        self.empty = load("grpc.testing.empty_pb2", base / "empty_pb2.py")
        self.messages = load("grpc.testing.messages_pb2", base / "messages_pb2.py")
        self.test = load("grpc.testing.test_pb2", base / "test_pb2.py")
        self.test_grpc = load("grpc.testing.test_pb2_grpc", base / "test_pb2_grpc.py")


@pytest.fixture(scope="session")
def stubs():
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="meridian-interop-stubs-")
    files = [f"grpc/testing/{name}.proto" for name in ("empty", "messages", "test")]
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    status = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}",
                          f"--python_out={out}", f"--grpc_python_out={out}", *files])
    assert status == 0, "grpc_tools.protoc failed"
    return Stubs(out)


@pytest.fixture(scope="session")
def meridian_server():
    """Our interop-server on a free port; yields its address."""
    binary = BIN_DIR / "interop-server"
    assert binary.exists(), f"{binary} is missing: run swift build first"
    process = subprocess.Popen([str(binary), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert line.startswith("listening on"), f"interop-server did not start: {line!r} {process.stderr.read() if process.poll() is not None else ''}"
    port = int(line.split()[-1])
    yield f"127.0.0.1:{port}"
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("interop-server did not stop within 10 s of SIGTERM")
