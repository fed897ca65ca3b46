#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target under Tests/Fuzz/Corpus/.

The server connection's seeds are HTTP/2 byte streams as a client sends
them after the connection preface (the harness prepends it): made with
hyper-h2's client connection (HPACK with Huffman coding and the dynamic
table, as real clients do), plus hand-built frames for what h2 will not
send. Needs `h2` (pip install h2); the other targets' seeds need nothing.

    python3 Tests/Fuzz/make-corpus.py        # rewrites Tests/Fuzz/Corpus
"""
import base64
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "Corpus")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


# MARK: protobuf and gRPC framing

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def f_varint(field, n):
    return key(field, 0) + varint(n)


def f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return key(field, 2) + varint(len(data)) + data


def f_double(field, x):
    return key(field, 1) + struct.pack("<d", x)


def grpc(payload, flag=0):
    return bytes([flag]) + struct.pack(">I", len(payload)) + payload


# Wrapper types: BytesValue, StringValue and Int64Value keep their value in field 1.
def string_value(s):
    return f_bytes(1, s) if s else b""


def int64_value(n):
    return f_varint(1, n) if n else b""


# MARK: HTTP/2

def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20


def request_headers(path, extra=(), method="POST", content_type="application/grpc"):
    headers = [(":method", method), (":scheme", "http"), (":path", path), (":authority", "localhost:7101"),
               ("content-type", content_type), ("te", "trailers"), ("user-agent", "grpc-python/1.76.0")]
    return headers + list(extra)


class Client:
    """An h2 client connection whose output is what the server reads."""

    def __init__(self, validate=True):
        import h2.config
        import h2.connection
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                           validate_outbound_headers=validate,
                                           normalize_outbound_headers=validate)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        out = self.conn.data_to_send()
        assert out.startswith(PREFACE)
        self.out = bytearray(out[len(PREFACE):])
        # A real client acknowledges the server's SETTINGS once they arrive.
        self.out += frame(SETTINGS, ACK, 0)

    def call(self, path, messages, extra=(), end=True, **kw):
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, request_headers(path, extra, **kw), end_stream=not messages and end)
        for index, message in enumerate(messages):
            last = index == len(messages) - 1
            self.conn.send_data(stream, message, end_stream=last and end)
        self.flush()
        return stream

    def flush(self):
        self.out += self.conn.data_to_send()

    def raw(self, data):
        self.flush()
        self.out += data

    def bytes(self):
        self.flush()
        return bytes(self.out)


def connection_corpus():
    seeds = {}

    def one(name, path, messages, **kw):
        client = Client()
        client.call(path, messages, **kw)
        seeds[name] = client.bytes()

    one("unary-echo", "/fuzz.Echo/Unary", [grpc(f_bytes(1, b"hello"))], extra=[("grpc-timeout", "1S")])
    one("unary-empty-message", "/fuzz.Echo/Unary", [grpc(b"")])
    one("unary-no-message", "/fuzz.Echo/Unary", [])
    one("unary-two-messages", "/fuzz.Echo/Unary", [grpc(f_bytes(1, b"a")) + grpc(f_bytes(1, b"b"))])
    one("unary-split-message", "/fuzz.Echo/Unary", [grpc(f_bytes(1, b"x" * 90))[:7], grpc(f_bytes(1, b"x" * 90))[7:]])
    one("unary-truncated-message", "/fuzz.Echo/Unary", [grpc(f_bytes(1, b"abcdef"))[:8]])
    one("unary-compressed-flag", "/fuzz.Echo/Unary", [grpc(f_bytes(1, b"z"), flag=1)])
    one("unary-compressed-with-encoding", "/fuzz.Echo/Unary", [grpc(b"\x1f\x8b", flag=1)], extra=[("grpc-encoding", "gzip")])
    one("unary-large-message", "/fuzz.Echo/Unary", [grpc(f_bytes(1, b"L" * 300))])
    one("unary-bad-protobuf", "/fuzz.Echo/Unary", [grpc(b"\x0a\xff\xff\xff\xff\x0f")])
    one("unary-deadline-1ms", "/fuzz.Echo/Unary", [grpc(f_bytes(1, b"late"))], extra=[("grpc-timeout", "1m")])
    one("unary-deadline-max", "/fuzz.Echo/Unary", [grpc(f_bytes(1, b"x"))], extra=[("grpc-timeout", "99999999H")])
    one("unary-deadline-malformed", "/fuzz.Echo/Unary", [grpc(b"")], extra=[("grpc-timeout", "12x")])
    one("immediate-now", "/fuzz.Echo/Immediate", [grpc(string_value("now:1"))])
    one("immediate-fail", "/fuzz.Echo/Immediate", [grpc(string_value("fail:no"))])
    one("immediate-task", "/fuzz.Echo/Immediate", [grpc(string_value("later"))], extra=[("grpc-timeout", "100m")])
    one("fail-with-details", "/fuzz.Echo/Fail", [grpc(string_value("bad request \u00fc%"))])
    one("crash", "/fuzz.Echo/Crash", [grpc(b"")])
    one("metadata", "/fuzz.Echo/Metadata", [grpc(string_value("m"))],
        extra=[("x-tenant-id", "t1"), ("x-trace-bin", base64.b64encode(b"\x00\x01\xfe").decode().rstrip("=")),
               ("x-multi-bin", "AAE=,AgM"), ("grpc-accept-encoding", "identity"), ("x-dup", "1"), ("x-dup", "2")])
    one("metadata-refused", "/fuzz.Echo/Metadata", [grpc(string_value("r"))], extra=[("x-refuse", "1")])
    one("count-5", "/fuzz.Echo/Count", [grpc(int64_value(5))])
    one("count-headers-first", "/fuzz.Echo/Count", [grpc(int64_value(-1))])
    one("collect", "/fuzz.Echo/Collect", [grpc(string_value(w)) for w in ("a", "b", "c")])
    one("collect-none", "/fuzz.Echo/Collect", [])
    one("chat", "/fuzz.Echo/Chat", [grpc(string_value("hi")), grpc(string_value("there")), grpc(string_value("bye"))])
    one("chat-open", "/fuzz.Echo/Chat", [grpc(string_value("hi"))], end=False)
    one("unknown-method", "/fuzz.Echo/Nope", [grpc(b"")])
    one("unknown-service", "/other.Service/Call", [grpc(b"")])
    one("get-method", "/fuzz.Echo/Unary", [], method="GET")
    one("not-grpc-content-type", "/fuzz.Echo/Unary", [b"{}"], content_type="application/json")
    one("grpc-proto-content-type", "/fuzz.Echo/Unary", [grpc(f_bytes(1, b"p"))], content_type="application/grpc+proto")

    # A busy connection: several calls interleaved, HPACK's dynamic table reused.
    client = Client()
    s1 = client.call("/fuzz.Echo/Collect", [grpc(string_value("one"))], end=False)
    client.call("/fuzz.Echo/Unary", [grpc(f_bytes(1, b"u1"))])
    client.call("/fuzz.Echo/Unary", [grpc(f_bytes(1, b"u2"))])
    client.call("/fuzz.Echo/Immediate", [grpc(string_value("now:2"))])
    client.conn.send_data(s1, grpc(string_value("two")), end_stream=True)
    client.conn.ping(b"12345678")
    seeds["interleaved-calls"] = client.bytes()

    # Server streaming past the window, the client opening it as it reads.
    client = Client()
    stream = client.call("/fuzz.Echo/Count", [grpc(int64_value(300))])
    client.conn.increment_flow_control_window(1 << 20)
    client.conn.increment_flow_control_window(1 << 20, stream_id=stream)
    seeds["count-300-window-updates"] = client.bytes()

    # The client cancels calls in flight.
    client = Client()
    stream = client.call("/fuzz.Echo/Chat", [grpc(string_value("x"))], end=False)
    client.conn.reset_stream(stream, error_code=8)
    stream = client.call("/fuzz.Echo/Count", [grpc(int64_value(50))])
    client.conn.reset_stream(stream, error_code=8)
    seeds["cancel-calls"] = client.bytes()

    # Request trailers, padding, priority, GOAWAY from the client.
    client = Client()
    stream = client.conn.get_next_available_stream_id()
    client.conn.send_headers(stream, request_headers("/fuzz.Echo/Collect"), priority_weight=200, priority_depends_on=0)
    client.conn.send_data(stream, grpc(string_value("padded")), pad_length=17)
    client.conn.send_headers(stream, [("x-trailer", "t")], end_stream=True)
    client.conn.close_connection()
    seeds["trailers-padding-goaway"] = client.bytes()

    # A client changing its settings (tiny frames, no dynamic table, small window).
    import h2.settings
    client = Client()
    client.conn.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0,
                                 h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10,
                                 h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384})
    client.call("/fuzz.Echo/Count", [grpc(int64_value(3))])
    seeds["client-settings"] = client.bytes()

    # Hand-built: a header block split over CONTINUATION frames.
    seeds["continuation"] = continuation_stream()

    # Hand-built: frames h2 will not send.
    base = Client().bytes()
    seeds["uppercase-header-name"] = raw_headers_stream([(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/fuzz.Echo/Unary"),
                                                         (b":authority", b"x"), (b"content-type", b"application/grpc"),
                                                         (b"X-Upper", b"1")])
    seeds["pseudo-header-after-regular"] = raw_headers_stream([(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"),
                                                               (b"content-type", b"application/grpc"), (b":path", b"/fuzz.Echo/Unary")])
    seeds["literal-headers"] = raw_headers_stream([(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/fuzz.Echo/Crash"),
                                                   (b":authority", b"x"), (b"content-type", b"application/grpc"),
                                                   (b"grpc-timeout", b"5S"), (b"x-a-bin", b"!!notbase64")])
    seeds["data-on-idle-stream"] = base + frame(DATA, END_STREAM, 7, grpc(b""))
    seeds["window-update-zero"] = base + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0))
    seeds["settings-flood"] = base + frame(SETTINGS, 0, 0) * 60
    seeds["ping-flood"] = base + frame(PING, 0, 0, b"\0" * 8) * 20
    seeds["rst-unknown-stream"] = base + frame(RST_STREAM, 0, 1, struct.pack(">I", 8))
    seeds["push-promise-from-client"] = base + frame(PUSH, END_HEADERS, 1, struct.pack(">I", 2))
    seeds["unknown-frame-type"] = base + frame(0xEE, 0xFF, 0, b"ignored")
    seeds["empty"] = b""
    return seeds


def hpack_literal(name, value):
    """A literal header field without indexing, new name, no Huffman coding."""
    def string(s):
        assert len(s) < 127
        return bytes([len(s)]) + s
    return b"\x00" + string(name) + string(value)


def raw_headers_stream(fields, stream=1):
    block = b"".join(hpack_literal(n, v) for n, v in fields)
    return frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS | END_STREAM, stream, block)


def continuation_stream():
    fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/fuzz.Echo/Unary"), (b":authority", b"localhost"),
              (b"content-type", b"application/grpc"), (b"te", b"trailers"), (b"x-long", b"v" * 100)]
    block = b"".join(hpack_literal(n, v) for n, v in fields)
    third = len(block) // 3
    return (frame(SETTINGS, 0, 0)
            + frame(HEADERS, 0, 1, block[:third])
            + frame(CONTINUATION, 0, 1, block[third:2 * third])
            + frame(CONTINUATION, END_HEADERS, 1, block[2 * third:])
            + frame(DATA, END_STREAM, 1, grpc(f_bytes(1, b"continued"))))


# MARK: the deframer: limit selector, chunk seed, stream

def deframer_corpus():
    # Byte 0: index into the harness's limits [0, 1, 4, 5, 16, 100, 255, 1024, 65536, 4 MiB],
    # or 0x80 | a limit under 128. Byte 1: chunk seed; & 3 == 3 repeats the stream past 64 KiB.
    big = 9
    m = grpc
    return {
        "empty-stream": bytes([big, 0]),
        "one-message": bytes([big, 0]) + m(b"hello"),
        "empty-message": bytes([0, 1]) + m(b""),
        "several-messages": bytes([big, 4]) + m(b"a") + m(b"") + m(b"bc" * 40) + m(bytes(range(256))),
        "partial-prefix": bytes([big, 5]) + m(b"abc")[:3],
        "partial-body": bytes([big, 6]) + m(b"abcdef")[:8],
        "message-then-partial": bytes([big, 8]) + m(b"ok") + m(b"cut")[:6],
        "compressed-flag": bytes([big, 9]) + m(b"ok") + m(b"z", flag=1),
        "other-flag-bits": bytes([big, 10]) + m(b"f", flag=0x80),
        "too-large": bytes([4, 12]) + m(b"12345"),
        "at-the-limit": bytes([0x80 | 5, 13]) + m(b"12345"),
        "length-max": bytes([big, 14]) + b"\x00\xff\xff\xff\xff",
        "repeated-past-64k": bytes([big, 3]) + m(b"r" * 1000),
        "repeated-two-messages": bytes([big, 7]) + m(b"s" * 700) + m(b"t" * 300),
    }


# MARK: WireFormat: one input, three uses

def wireformat_corpus():
    return {
        "timeout-1S": b"1S",
        "timeout-100m": b"100m",
        "timeout-8-digits-hours": b"99999999H",
        "timeout-9-digits": b"123456789S",
        "timeout-bad-unit": b"10x",
        "timeout-1n": b"1n",
        "message-escapes": b"a%25b%0A%C3%BC",
        "message-bad-escapes": b"%%zz%4%",
        "message-invalid-utf8": b"\xff\xfe%FF%C3",
        "int64-max": b"\x7f\xff\xff\xff\xff\xff\xff\xff",
        "int64-min": b"\x80\x00\x00\x00\x00\x00\x00\x00",
        "ns-99999999": struct.pack(">q", 99_999_999),
        "ns-100000000": struct.pack(">q", 100_000_000),
        "ns-one-hour-plus-1": struct.pack(">q", 3_600_000_000_001),
        "empty": b"",
    }


# MARK: protobuf: type selector, payload

# The harness's request types, in its order (Sources/FuzzProtobuf/FuzzProtobuf.swift).
REQUEST_TYPES = """
Inference_CudaSharedMemoryRegisterRequest Inference_CudaSharedMemoryStatusRequest
Inference_CudaSharedMemoryUnregisterRequest Inference_LogSettingsRequest
Inference_ModelConfigRequest Inference_ModelInferRequest Inference_ModelMetadataRequest
Inference_ModelReadyRequest Inference_ModelStatisticsRequest Inference_RepositoryIndexRequest
Inference_RepositoryModelLoadRequest Inference_RepositoryModelUnloadRequest
Inference_ServerLiveRequest Inference_ServerMetadataRequest Inference_ServerReadyRequest
Inference_SystemSharedMemoryRegisterRequest Inference_SystemSharedMemoryStatusRequest
Inference_SystemSharedMemoryUnregisterRequest Inference_TraceSettingRequest
Platform_Catalog_V1_BatchGetProductsRequest Platform_Catalog_V1_CreateProductRequest
Platform_Catalog_V1_DeleteProductRequest Platform_Catalog_V1_GetProductRequest
Platform_Catalog_V1_ImportProductsRequest Platform_Catalog_V1_ListProductsRequest
Platform_Catalog_V1_SearchProductsRequest Platform_Catalog_V1_UpdateProductRequest
Platform_Catalog_V1_WatchProductsRequest Platform_Experimentation_V1_CreateExperimentRequest
Platform_Experimentation_V1_GetAssignmentsRequest Platform_Experimentation_V1_GetExperimentRequest
Platform_Experimentation_V1_GetResultsRequest Platform_Experimentation_V1_ListExperimentChangesRequest
Platform_Experimentation_V1_ListExperimentsRequest Platform_Experimentation_V1_LogExposuresRequest
Platform_Experimentation_V1_TrackEventsRequest Platform_Experimentation_V1_UpdateExperimentRequest
Platform_Featurestore_V1_ApplyFeatureServiceRequest Platform_Featurestore_V1_ApplyFeatureViewRequest
Platform_Featurestore_V1_DeleteFeatureViewRequest Platform_Featurestore_V1_GetFeatureServiceRequest
Platform_Featurestore_V1_GetFeatureViewRequest Platform_Featurestore_V1_GetOnlineFeaturesRequest
Platform_Featurestore_V1_ListFeatureServicesRequest Platform_Featurestore_V1_ListFeatureViewsRequest
Platform_Featurestore_V1_WriteFeaturesRequest Platform_Personalization_V1_RankItemsRequest
Platform_Personalization_V1_RecommendRequest
""".split()


def protobuf_corpus():
    def seed(type_name, payload):
        return bytes([REQUEST_TYPES.index(type_name)]) + payload

    def struct_value(kind, value):  # google.protobuf.Value
        return {"number": lambda: f_double(2, value), "string": lambda: f_bytes(3, value),
                "bool": lambda: f_varint(4, value), "struct": lambda: f_bytes(5, value),
                "list": lambda: f_bytes(6, value), "null": lambda: f_varint(1, 0)}[kind]()

    def struct_field(name, value):  # Struct.fields entry
        return f_bytes(1, f_bytes(1, name) + f_bytes(2, value))

    attributes = (struct_field("id", struct_value("string", "u42"))
                  + struct_field("country", struct_value("string", "DE"))
                  + struct_field("age", struct_value("number", 31.5))
                  + struct_field("beta", struct_value("bool", 1))
                  + struct_field("tags", struct_value("list", f_bytes(1, struct_value("string", "a")) + f_bytes(1, struct_value("null", 0))))
                  + struct_field("nested", struct_value("struct", struct_field("k", struct_value("string", "v")))))
    feature_value = f_bytes(2, "u42")  # Value.string_val
    entities = f_bytes(3, f_bytes(1, "user_id") + f_bytes(2, f_bytes(1, feature_value) + f_bytes(1, f_varint(4, 7))))
    infer_input = f_bytes(1, "input__0") + f_bytes(2, "FP32") + f_bytes(3, varint(1) + varint(4))
    deep = b""
    for _ in range(120):  # nesting past SwiftProtobuf's recursion limit
        deep = f_bytes(5, struct_field("d", deep))
    return {
        "get-product": seed("Platform_Catalog_V1_GetProductRequest", f_bytes(1, "sku-00042")),
        "get-product-empty": seed("Platform_Catalog_V1_GetProductRequest", b""),
        "get-product-invalid-utf8": seed("Platform_Catalog_V1_GetProductRequest", f_bytes(1, b"\xc3\x28")),
        "get-product-unknown-fields": seed("Platform_Catalog_V1_GetProductRequest",
                                           f_bytes(1, "sku-1") + f_varint(99, 5) + key(100, 5) + b"\0\0\0\0" + f_double(101, 1.0)),
        "get-product-group": seed("Platform_Catalog_V1_GetProductRequest", key(7, 3) + f_varint(1, 1) + key(7, 4)),
        "get-product-truncated": seed("Platform_Catalog_V1_GetProductRequest", f_bytes(1, "sku-00042")[:-3]),
        "get-product-overlong-varint": seed("Platform_Catalog_V1_GetProductRequest", key(2, 0) + b"\xff" * 9 + b"\x01"),
        "get-product-field-zero": seed("Platform_Catalog_V1_GetProductRequest", b"\x00\x01"),
        "get-product-max-field": seed("Platform_Catalog_V1_GetProductRequest", f_varint((1 << 29) - 1, 1)),
        "batch-get-products": seed("Platform_Catalog_V1_BatchGetProductsRequest", f_bytes(1, "sku-1") + f_bytes(1, "sku-2")),
        "list-products": seed("Platform_Catalog_V1_ListProductsRequest", f_varint(1, 50) + f_bytes(2, "token")),
        "get-assignments": seed("Platform_Experimentation_V1_GetAssignmentsRequest",
                                f_bytes(1, attributes) + f_bytes(2, "checkout-button") + f_varint(3, 1)),
        "get-assignments-deep": seed("Platform_Experimentation_V1_GetAssignmentsRequest", f_bytes(1, deep)),
        "get-online-features": seed("Platform_Featurestore_V1_GetOnlineFeaturesRequest",
                                    f_bytes(2, f_bytes(1, "user_stats:purchases") + f_bytes(1, "user_stats:favorite_category"))
                                    + entities + f_varint(4, 1)),
        "get-online-features-service": seed("Platform_Featurestore_V1_GetOnlineFeaturesRequest", f_bytes(1, "ranker_v1") + entities),
        "recommend": seed("Platform_Personalization_V1_RecommendRequest",
                          f_bytes(1, "u42") + f_varint(2, 10) + f_bytes(3, f_bytes(1, "page") + f_bytes(2, "home"))
                          + f_bytes(4, "home/kitchen") + f_bytes(6, "sku-9") + f_bytes(7, "req-1")),
        "model-infer": seed("Inference_ModelInferRequest",
                            f_bytes(1, "ranker") + f_bytes(2, "1") + f_bytes(5, infer_input)
                            + f_bytes(7, struct.pack("<4f", 1.0, 2.0, float("nan"), -0.0))),
        "empty-every-type": bytes([len(REQUEST_TYPES) - 1]),
    }


def write(target, seeds):
    folder = os.path.join(CORPUS, target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(seeds)} seeds, {sum(len(d) for d in seeds.values())} bytes")


def main():
    write("FuzzServerConnection", connection_corpus())
    write("FuzzDeframer", deframer_corpus())
    write("FuzzWireFormat", wireformat_corpus())
    write("FuzzProtobuf", protobuf_corpus())


if __name__ == "__main__":
    sys.exit(main())
