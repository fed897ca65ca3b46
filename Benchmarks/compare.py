#!/usr/bin/env python3
"""Side-by-side benchmark of catalog servers: our runtime against the gRPC
servers a user would otherwise pick, plus the loopback floor.

Every server serves `platform.catalog.v1.CatalogService` from the same
products. Each round starts every server in turn (A B C ... A B C ...), so
drift of the machine hits all of them alike, pinned to core 0 while rpcload
runs on core 1, and measures every point of the matrix against it:

  unary GetProduct   closed loop at connections x streams 1x1, 1x16, 4x16, 16x16
  server streaming   WatchProducts replaying 1000 changes per call, 1x1
  server cost        CPU seconds per RPC at 4x16 and peak RSS

Points are medians of the rounds with the min-max spread. The floor rows are
a TCP ping-pong over one connection (the least a request/response protocol
can do on this kernel) and nghttpd under h2load (plain HTTP/2 on libnghttp2,
no gRPC, no protobuf; h2load counts HTTP 200 as success).

scripts/benchmark-peers.sh builds everything and calls this; run it rather
than this file. Writes Benchmarks/RESULTS.md (and the raw runs as JSON).
"""
import argparse
import datetime
import json
import os
import platform as host_platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIXES = ROOT / "Benchmarks" / "rpcload" / "mixes"
UNARY_SHAPES = [(1, 1), (1, 16), (4, 16), (16, 16)]
COST_SHAPE = (4, 16)
STREAM = "stream"
TICKS = os.sysconf("SC_CLK_TCK")

# name -> how the row is labelled, and which kind of server it is.
OURS = "meridian-memory"
CATALOG = "meridian-catalog"
CPP = "grpc-cpp"
SWIFT = "grpc-swift-2"
PY_SYNC = "grpcio-sync"
PY_AIO = "grpcio-aio"
NGHTTPD = "nghttpd"
PINGPONG = "tcp-pingpong"
LABELS = {
    OURS: "Meridian runtime, from memory",
    CATALOG: "Meridian catalog service, SQLite",
    CPP: "gRPC C++ 1.51 (callback API)",
    SWIFT: "grpc-swift-2 2.4 (NIO transport)",
    PY_SYNC: "grpcio (sync, thread pool)",
    PY_AIO: "grpcio (grpc.aio)",
    NGHTTPD: "floor: nghttpd + h2load (HTTP/2, no gRPC)",
    PINGPONG: "floor: TCP ping-pong",
}


def log(message):
    print(message, file=sys.stderr, flush=True)


def wait_for_port(port, process, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime, all threads


def peak_rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


class Benchmark:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="meridian-compare-"))
        self.port = 7400
        self.runs = []  # one dict per measured point and round

    # --- servers -----------------------------------------------------------

    def command(self, name, port):
        a = self.args
        products = ["--products-file", a.products_file, "--port", str(port)]
        python = [a.python, str(ROOT / "Benchmarks/peers/python/catalog_peer.py"), "--port", str(port)]
        return {
            OURS: [a.catalog_peer] + products,
            CATALOG: [a.catalog, "--port", str(port), "--admin-port", "0", "--host", "127.0.0.1",
                      "--data-dir", str(self.work / "catalog"), "--demo-data", "--log-level", "warning"],
            CPP: [a.cpp_peer] + products,
            SWIFT: [a.swift_peer] + products,
            PY_SYNC: python + ["--mode", "sync"],
            PY_AIO: python + ["--mode", "aio"],
            NGHTTPD: ["nghttpd", "--no-tls", "-d", str(self.work / "www"), str(port)],
            PINGPONG: [a.pingpong, "--serve", str(port)],
        }[name]

    def start(self, name):
        self.port += 1
        port = self.port
        process = subprocess.Popen(["taskset", "-c", self.args.server_cpu] + self.command(name, port),
                                   stdout=subprocess.DEVNULL, stderr=open(self.work / f"{name}.log", "ab"))
        wait_for_port(port, process)
        if name not in (NGHTTPD, PINGPONG):
            self.await_first_answer(port)
        return process, port

    def await_first_answer(self, port):
        """Until one GetProduct succeeds (the catalog seeds its demo data first)."""
        deadline = time.monotonic() + 120
        while subprocess.run(self.rpcload(port, 1, 1) + ["--method", "/platform.catalog.v1.CatalogService/GetProduct",
                                                           "-H", "x-tenant-id: demo", "--text", 'product_id: "sku-00042"'],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no successful GetProduct from port {port}")
            time.sleep(0.5)

    @staticmethod
    def stop(process):
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # --- load --------------------------------------------------------------

    def rpcload(self, port, connections, streams):
        return ["taskset", "-c", self.args.load_cpu, self.args.rpcload, "-q", "-t", f"127.0.0.1:{port}",
                "-c", str(connections), "-m", str(streams)]

    def timed(self, command, pid):
        """Runs the load command; the server's CPU time is read over the measured window only."""
        load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(self.args.warmup)
        before = cpu_seconds(pid)
        time.sleep(self.args.duration)
        after = cpu_seconds(pid)
        out, err = load.communicate()
        return out, err, after - before

    def measure_rpcload(self, pid, port, mix, connections, streams):
        result = self.work / "rpcload.json"
        result.unlink(missing_ok=True)
        command = self.rpcload(port, connections, streams) + [
            "-w", str(self.args.warmup), "-d", str(self.args.duration), "--json", str(result), str(mix)]
        _, err, cpu = self.timed(command, pid)
        if not result.exists():
            raise RuntimeError(f"rpcload wrote no result: {err.strip()}")
        total = json.loads(result.read_text())["total"]
        calls = total["ok_per_s"] * self.args.duration
        return {"ok_per_s": total["ok_per_s"], "messages_per_s": total.get("messages_per_s", 0),
                "p50_us": total["latency_us"]["p50"], "p99_us": total["latency_us"]["p99"],
                "errors": total["errors"], "cpu_us_per_rpc": cpu / calls * 1e6 if calls else None}

    def measure_h2load(self, pid, port, connections, streams):
        log_file = self.work / "h2load.tsv"
        log_file.unlink(missing_ok=True)
        whole = lambda seconds: str(max(1, round(seconds)))  # h2load takes whole seconds
        command = ["taskset", "-c", self.args.load_cpu, "h2load", "-D", whole(self.args.duration),
                   f"--warm-up-time={whole(self.args.warmup)}", "-c", str(connections), "-m", str(streams), "-t", "1",
                   f"--log-file={log_file}", f"http://127.0.0.1:{port}/product"]
        out, _, cpu = self.timed(command, pid)
        rps = next(float(line.split()[3].replace(",", "")) for line in out.splitlines() if line.startswith("finished in"))
        failed = next(int(line.split()[9]) + int(line.split()[11]) + int(line.split()[13])
                      for line in out.splitlines() if line.startswith("requests:"))
        latencies = sorted(int(line.split()[2]) for line in log_file.read_text().splitlines() if line.strip())
        at = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))] if latencies else None
        return {"ok_per_s": rps, "messages_per_s": 0, "p50_us": at(0.5), "p99_us": at(0.99), "errors": failed,
                "cpu_us_per_rpc": cpu / (rps * self.args.duration) * 1e6 if rps else None}

    def measure_pingpong(self, port):
        out = subprocess.run(["taskset", "-c", self.args.load_cpu, self.args.pingpong, "--connect", f"127.0.0.1:{port}",
                              "--size", str(self.response_size), "--warmup", str(self.args.warmup),
                              "--duration", str(self.args.duration)], capture_output=True, text=True, check=True).stdout
        result = json.loads(out)
        return {"ok_per_s": result["round_trips_per_s"], "messages_per_s": 0, "p50_us": result["p50_us"],
                "p99_us": result["p99_us"], "errors": 0, "cpu_us_per_rpc": None}

    # --- rounds ------------------------------------------------------------

    def prepare(self):
        """The floor's payload: a file the size of one GetProduct answer."""
        listing = Path(self.args.products_file).read_bytes()
        # The first product's length-delimited record in ListProductsResponse.products (field 1).
        length, shift, index = 0, 0, 1
        while True:
            byte = listing[index]
            length |= (byte & 0x7F) << shift
            index += 1
            shift += 7
            if byte < 0x80:
                break
        self.response_size = length + 5  # plus the gRPC length prefix
        (self.work / "www").mkdir()
        (self.work / "www" / "product").write_bytes(listing[index:index + length])

    def round(self, number, servers):
        for name in servers:
            log(f"round {number}: {name}")
            process, port = self.start(name)
            try:
                points = [("1x1", None)] if name == PINGPONG else \
                    [(f"{c}x{m}", (c, m)) for c, m in UNARY_SHAPES]
                if name not in (PINGPONG, NGHTTPD, CATALOG):
                    points.append((STREAM, (1, 1)))
                for point, shape in points:
                    if name == PINGPONG:
                        result = self.measure_pingpong(port)
                    elif name == NGHTTPD:
                        result = self.measure_h2load(process.pid, port, *shape)
                    else:
                        mix = MIXES / ("catalog-watch.mix" if point == STREAM else "catalog-get.mix")
                        result = self.measure_rpcload(process.pid, port, mix, *shape)
                    result.update(server=name, point=point, round=number)
                    log(f"  {point:6} {result['ok_per_s']:10.0f}/s  p50 {result['p50_us']}us  p99 {result['p99_us']}us"
                        f"  errors {result['errors']}")
                    self.runs.append(result)
                self.runs.append({"server": name, "point": "rss", "round": number, "rss_mib": peak_rss_mib(process.pid)})
            finally:
                self.stop(process)

    def run(self):
        self.prepare()
        servers = self.args.servers
        try:
            for number in range(1, self.args.runs + 1):
                self.round(number, servers)
        finally:
            shutil.rmtree(self.work, ignore_errors=True)
        return self.runs


# --- the report --------------------------------------------------------------

def values(runs, server, point, key):
    return [r[key] for r in runs if r["server"] == server and r["point"] == point and r.get(key) is not None]


def median(runs, server, point, key):
    found = values(runs, server, point, key)
    return statistics.median(found) if found else None


def spread(runs, server, point, key, scale=1.0, digits=0):
    found = values(runs, server, point, key)
    if not found:
        return "–"
    fmt = lambda v: f"{v * scale:,.{digits}f}"
    text = fmt(statistics.median(found))
    if len(found) > 1:
        text += f" ({fmt(min(found))}–{fmt(max(found))})"
    errors = sum(values(runs, server, point, "errors"))
    return text + (f" **{errors} errors**" if errors else "")


def ratio(runs, ours, peer, point, key="ok_per_s"):
    a, b = median(runs, ours, point, key), median(runs, peer, point, key)
    return f"{a / b:.2f}×" if a and b else "–"


def report(runs, args):
    servers = [s for s in LABELS if any(r["server"] == s for r in runs)]
    peers = [s for s in (CPP, SWIFT, PY_SYNC, PY_AIO) if s in servers]
    shapes = [f"{c}x{m}" for c, m in UNARY_SHAPES]
    lines = [
        "# Benchmark results: our runtime against other gRPC servers",
        "",
        f"Written by `scripts/benchmark-peers.sh` on {datetime.date.today().isoformat()}, "
        f"commit `{args.commit}`, on {args.machine}. Release builds; every server pinned to core "
        f"{args.server_cpu}, the load (rpcload: libnghttp2 + protobuf-c, every answer's grpc-status checked and "
        f"body decoded) to core {args.load_cpu}. {args.runs} rounds, servers alternating within each round; "
        f"each point {args.warmup} s warm-up + {args.duration} s measured. Cells are the median of the rounds "
        "with (min–max). All servers serve `platform.catalog.v1.CatalogService` from the same 10,000 products "
        "(`catalog_peer.py --export`); the catalog service serves its own demo data from SQLite.",
        "",
        "## Unary GetProduct, calls per second (connections × streams in flight)",
        "",
        "| server | " + " | ".join(shapes) + " |",
        "| --- |" + " ---: |" * len(shapes),
    ]
    for s in servers:
        lines.append(f"| {LABELS[s]} | " + " | ".join(spread(runs, s, p, "ok_per_s") for p in shapes) + " |")
    lines += ["", "## Latency, p50 / p99 in µs", "",
              "| server | 1x1 p50 | 1x1 p99 | 4x16 p50 | 4x16 p99 |", "| --- | ---: | ---: | ---: | ---: |"]
    for s in servers:
        cell = lambda p, k: spread(runs, s, p, k, digits=0) if values(runs, s, p, k) else "–"
        lines.append(f"| {LABELS[s]} | {cell('1x1', 'p50_us')} | {cell('1x1', 'p99_us')} | "
                     f"{cell('4x16', 'p50_us')} | {cell('4x16', 'p99_us')} |")
    lines += ["", "## Server streaming and server cost", "",
              "WatchProducts replays 1000 changes per call (1x1, closed loop); CPU is the server's user + system "
              "time over the measured window of the 4x16 point divided by its calls; peak RSS is the server's "
              "VmHWM at the end of its round.", "",
              "| server | stream messages/s | CPU µs per RPC (4x16) | peak RSS MiB |", "| --- | ---: | ---: | ---: |"]
    for s in servers:
        if s == PINGPONG:
            continue
        lines.append(f"| {LABELS[s]} | {spread(runs, s, STREAM, 'messages_per_s')} | "
                     f"{spread(runs, s, '4x16', 'cpu_us_per_rpc', digits=1)} | {spread(runs, s, 'rss', 'rss_mib', digits=1)} |")
    if OURS in servers and peers:
        lines += ["", "## Ratios: our runtime ÷ each peer (medians)", "",
                  "| peer | " + " | ".join(shapes) + " | stream | CPU per RPC (peer ÷ ours) |",
                  "| --- |" + " ---: |" * (len(shapes) + 2)]
        for p in peers + ([CATALOG] if CATALOG in servers else []):
            cpu = ratio(runs, p, OURS, COST_SHAPE_NAME, "cpu_us_per_rpc")
            lines.append(f"| {LABELS[p]} | " + " | ".join(ratio(runs, OURS, p, s) for s in shapes)
                         + f" | {ratio(runs, OURS, p, STREAM, 'messages_per_s') if p != CATALOG else '–'} | {cpu} |")
    lines += ["", "## Targets (issue 5)", "", "| target | measured | |", "| --- | --- | --- |"]
    lines += targets(runs)
    lines += ["", "Reproduce: `scripts/benchmark-peers.sh` (RUNS, DURATION, WARMUP, SERVERS; see the script). "
              "The raw runs are in `Benchmarks/results.json`.", ""]
    return "\n".join(lines)


COST_SHAPE_NAME = f"{COST_SHAPE[0]}x{COST_SHAPE[1]}"


def targets(runs):
    rows = []

    def check(label, ours, peer, point, at_least, key="ok_per_s", ours_name=OURS):
        a, b = median(runs, ours_name, point, key), median(runs, peer, point, key)
        if a is None or b is None:
            return
        value = a / b
        rows.append(f"| {label} | {value:.2f}× | {'met' if value >= at_least else '**missed**'} |")

    check("our runtime ≥ 1.0× gRPC C++ at 4x16", OURS, CPP, "4x16", 1.0)
    check("our runtime ≥ 5× grpc-swift-2 at 4x16", OURS, SWIFT, "4x16", 5.0)
    faster_python = max((s for s in (PY_SYNC, PY_AIO) if median(runs, s, "4x16", "ok_per_s")),
                        key=lambda s: median(runs, s, "4x16", "ok_per_s"), default=None)
    if faster_python:
        check(f"our runtime ≥ 10× grpcio at 4x16 (the faster, {faster_python})", OURS, faster_python, "4x16", 10.0)
    ours_p50, floor_p50 = median(runs, OURS, "1x1", "p50_us"), median(runs, PINGPONG, "1x1", "p50_us")
    if ours_p50 and floor_p50:
        value = ours_p50 / floor_p50
        rows.append(f"| our p50 at 1x1 within 3× the TCP round trip | {ours_p50:.0f} µs = {value:.2f}× "
                    f"{floor_p50:.0f} µs | {'met' if value <= 3 else '**missed**'} |")
    check("catalog on SQLite ≥ 0.5× gRPC C++ from memory at 4x16", CATALOG, CPP, "4x16", 0.5, ours_name=CATALOG)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rpcload", required=True)
    parser.add_argument("--pingpong", required=True)
    parser.add_argument("--catalog-peer", required=True, help="our runtime's in-memory catalog (catalog-peer)")
    parser.add_argument("--catalog", required=True, help="the catalog service executable")
    parser.add_argument("--cpp-peer", required=True)
    parser.add_argument("--swift-peer", required=True)
    parser.add_argument("--python", required=True, help="a Python with grpcio and grpcio-tools")
    parser.add_argument("--products-file", required=True)
    parser.add_argument("--servers", default=",".join(LABELS), help="comma-separated subset of: " + ", ".join(LABELS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--load-cpu", default="1")
    parser.add_argument("--output", default=str(ROOT / "Benchmarks" / "RESULTS.md"))
    parser.add_argument("--raw", default=str(ROOT / "Benchmarks" / "results.json"))
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from --raw without measuring")
    args = parser.parse_args()
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in args.servers if s not in LABELS]
    if unknown:
        parser.error(f"unknown servers {unknown}; known: {', '.join(LABELS)}")
    args.commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip() or "unknown"
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), host_platform.processor())
    args.machine = f"{model}, {os.cpu_count()} cores, Linux {host_platform.release()}"
    if args.report_only:
        saved = json.loads(Path(args.raw).read_text())
        runs = saved["runs"]
        for key in ("commit", "machine", "runs", "duration", "warmup", "server_cpu", "load_cpu"):
            setattr(args, key, saved["settings"][key])
    else:
        runs = Benchmark(args).run()
        settings = {k: getattr(args, k) for k in ("commit", "machine", "runs", "duration", "warmup", "server_cpu", "load_cpu")}
        Path(args.raw).write_text(json.dumps({"settings": settings, "runs": runs}, indent=1) + "\n")
    Path(args.output).write_text(report(runs, args))
    print(Path(args.output).read_text())


if __name__ == "__main__":
    main()
