#!/usr/bin/env python3
"""Checks that proto/ stays wire- and JSON-compatible with the last release.

    scripts/check-proto-compatibility.py              check proto/ against proto/released/platform.binpb
    scripts/check-proto-compatibility.py --release    make proto/ the new baseline (after a release)
    scripts/check-proto-compatibility.py --self-test  prove the check catches each kind of break

The baseline is a descriptor set (protoc --descriptor_set_out) of every
platform and inference proto, committed with the release. The rules follow
buf's WIRE and WIRE_JSON categories: clients built against the release must
keep working, over binary and over JSON. Breaking, per package:
  - a service or an RPC removed; an RPC's request or response type changed;
    an RPC's streaming kind changed;
  - a message or enum removed;
  - a field removed without reserving its number; a field's number reused by
    a different field; its type, its message or enum type, its cardinality
    (singular, repeated, map) or its oneof membership changed; its JSON name
    changed (WIRE_JSON);
  - an enum value removed without reserving its number, or its name changed
    (JSON carries enum names).
Adding services, RPCs, messages, fields and enum values is always fine.
"""
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO = os.environ.get("MERIDIAN_PROTO_DIR", os.path.join(ROOT, "proto"))
BASELINE = os.path.join(ROOT, "proto", "released", "platform.binpb")
# The API surface: our packages and Triton's; vendored Google and ONNX
# schemas are not ours to break.
PACKAGES = ("platform.", "inference")
F = descriptor_pb2.FieldDescriptorProto


def descriptor_set(proto_dir):
    files = []
    for top in ("platform", "inference"):
        for directory, _, names in os.walk(os.path.join(proto_dir, top)):
            files += [os.path.relpath(os.path.join(directory, n), proto_dir) for n in names if n.endswith(".proto")]
    with tempfile.NamedTemporaryFile(suffix=".binpb") as out:
        subprocess.run(["protoc", "-I", proto_dir, "--include_imports", f"--descriptor_set_out={out.name}"] + sorted(files), check=True)
        result = descriptor_pb2.FileDescriptorSet()
        result.ParseFromString(open(out.name, "rb").read())
        return result


def index(fds):
    """Fully-qualified name -> message, enum or service descriptor of our packages."""
    messages, enums, services = {}, {}, {}

    def walk(prefix, message):
        name = f"{prefix}.{message.name}"
        messages[name] = message
        for nested in message.nested_type:
            walk(name, nested)
        for enum in message.enum_type:
            enums[f"{name}.{enum.name}"] = enum

    for file in fds.file:
        if not file.package.startswith(PACKAGES):
            continue
        for message in file.message_type:
            walk(file.package, message)
        for enum in file.enum_type:
            enums[f"{file.package}.{enum.name}"] = enum
        for service in file.service:
            services[f"{file.package}.{service.name}"] = service
    return messages, enums, services


def reserved(numbers_of, number):
    return any(r.start <= number < r.end for r in numbers_of)


def cardinality(field, messages):
    if field.label == F.LABEL_REPEATED:
        entry = messages.get(field.type_name.lstrip("."))
        return "map" if entry is not None and entry.options.map_entry else "repeated"
    return "singular"


def compare(old, new):
    old_messages, old_enums, old_services = index(old)
    new_messages, new_enums, new_services = index(new)
    problems = []
    for name, service in old_services.items():
        if name not in new_services:
            problems.append(f"service {name} was removed")
            continue
        methods = {m.name: m for m in new_services[name].method}
        for method in service.method:
            current = methods.get(method.name)
            where = f"rpc {name}.{method.name}"
            if current is None:
                problems.append(f"{where} was removed")
                continue
            if current.input_type != method.input_type:
                problems.append(f"{where}: request type changed from {method.input_type} to {current.input_type}")
            if current.output_type != method.output_type:
                problems.append(f"{where}: response type changed from {method.output_type} to {current.output_type}")
            if (current.client_streaming, current.server_streaming) != (method.client_streaming, method.server_streaming):
                problems.append(f"{where}: streaming kind changed")
    for name, message in old_messages.items():
        if message.options.map_entry:
            continue
        current = new_messages.get(name)
        if current is None:
            problems.append(f"message {name} was removed")
            continue
        fields = {f.number: f for f in current.field}
        for field in message.field:
            where = f"field {name}.{field.name} = {field.number}"
            now = fields.get(field.number)
            if now is None:
                if not reserved(current.reserved_range, field.number):
                    problems.append(f"{where} was removed without reserving its number")
                continue
            if now.name != field.name and now.json_name != field.json_name:
                problems.append(f"{where}: number now used by field {now.name} (JSON name {field.json_name} -> {now.json_name})")
            elif now.json_name != field.json_name:
                problems.append(f"{where}: JSON name changed from {field.json_name} to {now.json_name}")
            if now.type != field.type or now.type_name != field.type_name:
                old_type = field.type_name or F.Type.Name(field.type)
                new_type = now.type_name or F.Type.Name(now.type)
                problems.append(f"{where}: type changed from {old_type} to {new_type}")
            if cardinality(now, new_messages) != cardinality(field, old_messages):
                problems.append(f"{where}: changed from {cardinality(field, old_messages)} to {cardinality(now, new_messages)}")
            was_in = field.HasField("oneof_index") and not field.proto3_optional
            is_in = now.HasField("oneof_index") and not now.proto3_optional
            if was_in != is_in or (was_in and message.oneof_decl[field.oneof_index].name != current.oneof_decl[now.oneof_index].name):
                problems.append(f"{where}: oneof membership changed")
    for name, enum in old_enums.items():
        current = new_enums.get(name)
        if current is None:
            problems.append(f"enum {name} was removed")
            continue
        values = {}
        for value in current.value:
            values.setdefault(value.number, []).append(value.name)
        for value in enum.value:
            where = f"enum value {name}.{value.name} = {value.number}"
            if value.number not in values:
                # Enum reserved ranges include their end.
                if not any(r.start <= value.number <= r.end for r in current.reserved_range):
                    problems.append(f"{where} was removed without reserving its number")
            elif value.name not in values[value.number]:
                problems.append(f"{where}: renamed to {values[value.number][0]} (JSON carries enum names)")
    return problems


def self_test():
    """Each kind of break on a copy of proto/ must be caught; an addition must not."""
    baseline = descriptor_set(PROTO)
    cases = {
        "a removed field": ("platform/catalog/v1/catalog_service.proto", "  string title = 2;\n", ""),
        "a renumbered field": ("platform/catalog/v1/catalog_service.proto", "  string title = 2;\n", "  string title = 99;\n"),
        "a changed field type": ("platform/catalog/v1/catalog_service.proto", "  string brand = 5;\n", "  int64 brand = 5;\n"),
        "a removed RPC": ("platform/catalog/v1/catalog_service.proto", "  rpc GetProduct(GetProductRequest) returns (Product);\n", ""),
        "a changed streaming kind": ("platform/catalog/v1/catalog_service.proto",
                                     "rpc WatchProducts(WatchProductsRequest) returns (stream ProductChange);",
                                     "rpc WatchProducts(WatchProductsRequest) returns (ProductChange);"),
        "a renamed field (JSON)": ("platform/catalog/v1/catalog_service.proto", "  string brand = 5;\n", "  string maker = 5;\n"),
    }
    failures = 0
    for what, (path, before, after) in cases.items():
        with tempfile.TemporaryDirectory() as copy:
            subprocess.run(["cp", "-r", PROTO + "/.", copy], check=True)
            target = os.path.join(copy, path)
            text = open(target).read()
            if before not in text:
                print(f"self-test: cannot make {what}: {before.strip()!r} not in {path}")
                failures += 1
                continue
            open(target, "w").write(text.replace(before, after, 1))
            problems = compare(baseline, descriptor_set(copy))
            if not problems:
                print(f"self-test: {what} was NOT caught")
                failures += 1
            else:
                print(f"self-test: {what} caught: {problems[0]}")
    with tempfile.TemporaryDirectory() as copy:
        subprocess.run(["cp", "-r", PROTO + "/.", copy], check=True)
        target = os.path.join(copy, "platform/catalog/v1/catalog_service.proto")
        text = open(target).read().replace("  string title = 2;\n", "  string title = 2;\n  string subtitle = 98;\n", 1)
        open(target, "w").write(text + "\nmessage AddedMessage { string note = 1; }\n")
        problems = compare(baseline, descriptor_set(copy))
        if problems:
            print(f"self-test: an addition was reported as a break: {problems}")
            failures += 1
        else:
            print("self-test: additions pass")
    return failures


def main():
    if "--release" in sys.argv:
        os.makedirs(os.path.dirname(BASELINE), exist_ok=True)
        open(BASELINE, "wb").write(descriptor_set(PROTO).SerializeToString(deterministic=True))
        print(f"wrote {os.path.relpath(BASELINE, ROOT)}")
        return 0
    if "--self-test" in sys.argv:
        return 1 if self_test() else 0
    released = descriptor_pb2.FileDescriptorSet()
    released.ParseFromString(open(BASELINE, "rb").read())
    problems = compare(released, descriptor_set(PROTO))
    for problem in problems:
        print(f"breaking change: {problem}")
    if problems:
        print(f"{len(problems)} breaking change(s) against {os.path.relpath(BASELINE, ROOT)}")
        return 1
    print(f"proto/ is backward compatible with {os.path.relpath(BASELINE, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
