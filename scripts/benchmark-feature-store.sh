#!/usr/bin/env bash
# Feature store benchmark, side by side with Feast's own Python feature
# server (`feast serve`: HTTP/1.1 and JSON, the only transport its Python
# server offers; SQLite online store) on the same data and requests:
#   - GetOnlineFeatures, 1 entity x 50 features and 100 entities x 20
#     features, warm (every key read once before measuring);
#   - closed loop 1x1 and 4x16 (h2load), then open loop at 5000 requests/s
#     for the latency target (rpcload, evenly paced).
# Release build; each server pinned to core 0, h2load to core 1; medians of
# RUNS runs of DURATION seconds (scripts/lib/benchmark.sh).
#
#   scripts/benchmark-feature-store.sh     # RUNS=3 DURATION=10
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/install-dependencies.sh >/dev/null
runs=${RUNS:-3}
duration=${DURATION:-10}
swift build -c release --product feature-store >&2
bin=$(swift build -c release --show-bin-path)
make -s -C Benchmarks/rpcload >&2
rpcload="$root/Benchmarks/rpcload/build/rpcload"
feast_venv=$(./scripts/python-env.sh feast)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
. "$root/scripts/lib/benchmark.sh"

ours=7996
taskset -c 0 "$bin/feature-store" --port $ours --admin-port 0 --host 127.0.0.1 --data-dir "$work/ours" --log-level warning > "$work/ours.log" 2>&1 &
wait_for_port $ours

# Definitions, rows and request bodies for both stores, from one script.
"$feast_venv/bin/python" - "$work" <<'PY' >&2
import datetime as dt, json, pathlib, struct, sys
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.protos.feast.serving import ServingService_pb2 as serving
from feast.protos.feast.types import Value_pb2 as value_pb
from feast.types import Float64

work = pathlib.Path(sys.argv[1])
now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
views = {"user_profile": ("user_id", 50, [f"u{i}" for i in range(1000)]),
         "item_stats": ("item_id", 20, [f"i{i}" for i in range(1000)])}

# Feast: a repo with the same two views, rows written to its online store.
repo = work / "feast"
repo.mkdir()
(repo / "feature_store.yaml").write_text(
    "project: bench\nregistry: registry.db\nprovider: local\nonline_store:\n  type: sqlite\n  path: online.db\n"
    "entity_key_serialization_version: 3\n")
store = FeatureStore(repo_path=str(repo))
objects, frames = [], {}
for name, (key, count, ids) in views.items():
    entity = Entity(name=key.removesuffix("_id"), join_keys=[key], value_type=ValueType.STRING)
    columns = {key: ids, "event_timestamp": [now] * len(ids)}
    for f in range(count):
        columns[f"f{f}"] = [float(i * f % 97) for i in range(len(ids))]
    frames[name] = pd.DataFrame(columns)
    frames[name].to_parquet(repo / f"{name}.parquet")
    objects += [entity, FeatureView(name=name, entities=[entity], ttl=dt.timedelta(days=7), online=True,
                                    schema=[Field(name=f"f{f}", dtype=Float64) for f in range(count)],
                                    source=FileSource(path=str(repo / f"{name}.parquet"), timestamp_field="event_timestamp"))]
store.apply(objects)
for name, frame in frames.items():
    store.write_to_online_store(name, frame)

# Ours: the same views and rows as files for `feature-store apply` / `ingest`.
with open(work / "views.jsonl", "w") as out:
    for name, (key, count, _) in views.items():
        out.write(json.dumps({"feature_view": {"name": name, "entities": [key], "ttl": "604800s",
                  "features": [{"name": f"f{f}", "type": "VALUE_TYPE_DOUBLE"} for f in range(count)]}}) + "\n")
for name, frame in frames.items():
    key = views[name][0]
    with open(work / f"{name}.jsonl", "w") as out:
        for row in frame.to_dict("records"):
            row["event_time"] = row.pop("event_timestamp").isoformat()
            out.write(json.dumps(row) + "\n")

def request(view, key, count, ids):
    message = serving.GetOnlineFeaturesRequest(
        features=serving.FeatureList(val=[f"{view}:f{f}" for f in range(count)]),
        entities={key: value_pb.RepeatedValue(val=[value_pb.Value(string_val=i) for i in ids])}).SerializeToString()
    return b"\x00" + struct.pack(">I", len(message)) + message
def feast_request(view, key, count, ids):
    return json.dumps({"features": [f"{view}:f{f}" for f in range(count)], "entities": {key: ids}})
shapes = {"one_by_50": ("user_profile", "user_id", 50, ["u42"]),
          "hundred_by_20": ("item_stats", "item_id", 20, [f"i{i * 7}" for i in range(100)])}
for body, shape in shapes.items():
    (work / f"{body}.bin").write_bytes(request(*shape))
    (work / f"{body}.json").write_text(feast_request(*shape))
PY
"$bin/feature-store" apply "$work/views.jsonl" --tenant bench --address 127.0.0.1:$ours >&2
for view in user_profile item_stats; do
  "$bin/feature-store" ingest "$work/$view.jsonl" --view $view --tenant bench --address 127.0.0.1:$ours >&2
done

feast_port=7997
(cd "$work/feast" && exec taskset -c 0 "$feast_venv/bin/feast" serve -p $feast_port --no-access-log > "$work/feast.log" 2>&1) &
wait_for_port $feast_port

grpc=(-H "content-type: application/grpc" -H "te: trailers")
ours_url="http://127.0.0.1:$ours/platform.featurestore.v1.FeatureStoreService/GetOnlineFeatures"
feast_url="http://127.0.0.1:$feast_port/get-online-features"
feast_http=(--h1 -H "content-type: application/json")
# Warm both (ours caches rows; Feast opens its registry and database).
for body in one_by_50 hundred_by_20; do
  h2load -n 200 -c 1 "${grpc[@]}" -H "x-tenant-id: bench" -d "$work/$body.bin" "$ours_url" >/dev/null
  h2load -n 200 -c 1 "${feast_http[@]}" -d "$work/$body.json" "$feast_url" >/dev/null
done

# h2load counts HTTP 200 whatever grpc-status says: check both answer every value first.
"$feast_venv/bin/python" - "$work" $ours $feast_port <<'PY' >&2
import json, pathlib, sys, urllib.request
import grpc
from feast.protos.feast.serving import ServingService_pb2 as serving
work, ours, feast = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
for body in ("one_by_50", "hundred_by_20"):
    request = serving.GetOnlineFeaturesRequest.FromString((work / f"{body}.bin").read_bytes()[5:])
    with grpc.insecure_channel(f"127.0.0.1:{ours}") as channel:
        call = channel.unary_unary("/platform.featurestore.v1.FeatureStoreService/GetOnlineFeatures",
                                   request_serializer=serving.GetOnlineFeaturesRequest.SerializeToString,
                                   response_deserializer=serving.GetOnlineFeaturesResponse.FromString)
        statuses = [serving.FieldStatus.Name(s) for v in call(request, metadata=[("x-tenant-id", "bench")], timeout=30).results for s in v.statuses]
    answer = json.load(urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{feast}/get-online-features", data=(work / f"{body}.json").read_bytes(),
        headers={"content-type": "application/json"}), timeout=30))
    theirs = [s for result in answer["results"] for s in result["statuses"]]
    for name, got in (("meridian", statuses), ("feast", theirs)):
        print(f"{name} {body}: {got.count('PRESENT')}/{len(got)} values PRESENT")
        assert got.count("PRESENT") == len(got), f"{name} {body} is missing values"
PY

echo "# feature store benchmark: median of $runs x ${duration}s; server on core 0, h2load on core 1"
printf '%-28s %-8s %12s %10s %10s %8s\n' server load "req/s" p50 p99 failed
for body in one_by_50 hundred_by_20; do
  for shape in "1 1" "4 16"; do
    set -- $shape
    report "meridian $body" "$1x$2" "$(measure "$ours_url" "$1" "$2" "${grpc[@]}" -H "x-tenant-id: bench" -d "$work/$body.bin")"
    report "feast $body" "$1x$2" "$(measure "$feast_url" "$1" "$2" "${feast_http[@]}" -d "$work/$body.json")"
  done
done
# The latency target is for 1x50 at 5000/s: rpcload's open loop, evenly
# paced, latency from each call's scheduled time (coordinated omission
# corrected). h2load's rate mode fires every client on one timer, so its
# requests arrive in bursts and overstate latency against a smooth 5000/s.
# The target is measured with rpcload checking each response's framing and
# status only (--no-decode; the values were checked above): decoding a
# 51-column response costs rpcload about 90 µs of its core, which at
# 5000/s keeps the load generator's core half busy and puts its own
# queueing into the figure. The second line, decoding every response, shows
# how much.
tail -c +6 "$work/one_by_50.bin" > "$work/one_by_50.message"
report "meridian one_by_50 (rpcload)" "5k/s" "$(measure_rpcload 127.0.0.1:$ours --rate 5000 -c 4 --no-decode -H "x-tenant-id: bench" \
  --method /platform.featurestore.v1.FeatureStoreService/GetOnlineFeatures --data "$work/one_by_50.message")"
report "  the same, decoding each" "5k/s" "$(measure_rpcload 127.0.0.1:$ours --rate 5000 -c 4 -H "x-tenant-id: bench" \
  --method /platform.featurestore.v1.FeatureStoreService/GetOnlineFeatures --data "$work/one_by_50.message")"
