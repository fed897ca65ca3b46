"""The attack suite's harness: a catalog server per test, a well-behaved client
beside every attack, the server's resident memory sampled throughout, and a
table of the results at the end of the session.

Each test does

    server = hostile.server(max_in_flight_calls=300)     # catalog on a free port
    with hostile.attack("in-flight exhaustion", server) as run:
        ...                                               # the attack, bounded by run.active()
        run.expect(condition, "what the server should have done")

and on leaving the block the harness asserts what every attack must leave
intact: the process is alive, its peak RSS grew less than RSS_GROWTH_LIMIT_MIB
over the baseline taken after warm-up, and every one of the good client's
calls succeeded with p99 latency under GOOD_P99_LIMIT_S.

The binary is ${MERIDIAN_BIN_DIR:-.build/debug}/catalog. Limits the runtime
takes as flags (--max-connections-per-peer, ...) are passed as flags when
`catalog --help` lists them, and as CATALOG_* environment variables always.
"""
import json
import os
import pathlib
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
BIN_DIR = pathlib.Path(os.environ.get("MERIDIAN_BIN_DIR", ROOT / ".build" / "debug"))
if not BIN_DIR.is_absolute():
    BIN_DIR = ROOT / BIN_DIR

# What every attack must leave intact.
RSS_GROWTH_LIMIT_MIB = 256
GOOD_P99_LIMIT_S = 1.0  # debug build
GOOD_DEADLINE_S = 1.0
GOOD_INTERVAL_S = 0.1
RSS_SAMPLE_S = 0.1
# A server past this much growth is taking the machine with it: the attack
# stops at once (and the test fails on the RSS bound anyway).
RSS_ABORT_MIB = 1536
# How long the good client keeps calling after the attack stopped.
COOLDOWN_S = 0.3

LIMIT_FLAGS = {
    "max_connections": "--max-connections",
    "max_connections_per_peer": "--max-connections-per-peer",
    "max_in_flight_calls": "--max-in-flight-calls",
    "handshake_timeout": "--handshake-timeout",
    "keepalive_time": "--keepalive-time",
}

RESULTS = []  # one row per attack, in run order
OUTCOMES = {}  # nodeid -> (outcome, short reason)
UNSUPPORTED_FLAGS = set()


def pytest_addoption(parser):
    parser.addoption("--attack-results", default=None, help="write the attack table's rows as JSON to this file")


def _raise_fd_limit():
    """Some attacks hold hundreds of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass


def pytest_configure(config):
    _raise_fd_limit()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid):
    """User plus system CPU time the process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


_help_text = None


def catalog_help():
    global _help_text
    if _help_text is None:
        binary = BIN_DIR / "catalog"
        try:
            _help_text = subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            _help_text = ""
    return _help_text


class CatalogServer:
    def __init__(self, tmp_path, limits):
        binary = BIN_DIR / "catalog"
        assert binary.exists(), f"{binary} is missing: build it first (swift build)"
        self.port = free_port()
        self.limits = limits
        data_dir = tmp_path / "catalog-data"
        data_dir.mkdir(exist_ok=True)
        args = [str(binary), "--host", "127.0.0.1", "--port", str(self.port), "--admin-port", "0",
                "--data-dir", str(data_dir), "--log-level", "warning"]
        environment = dict(os.environ)
        supported = catalog_help()
        for key, value in limits.items():
            flag = LIMIT_FLAGS[key]
            environment["CATALOG_" + key.upper()] = str(value)
            if flag in supported:
                args += [flag, str(value)]
            else:
                UNSUPPORTED_FLAGS.add(flag)
        self.log_path = tmp_path / "catalog.log"
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=environment, cwd=tmp_path)
        self.pid = self.process.pid
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"catalog exited with {self.process.returncode} before listening: {self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"catalog did not listen on {self.port} within 60 s")
                time.sleep(0.05)

    @property
    def alive(self):
        return self.process.poll() is None

    def log_text(self, limit=2000):
        self.log.flush()
        text = self.log_path.read_bytes().decode(errors="replace")
        return text[-limit:]

    def stop(self):
        if self.alive:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


class GoodClient:
    """good_client.py in its own process; see its docstring."""

    def __init__(self, port, log_path):
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "good_client.py"), "--port", str(port), "--source", "127.0.0.2",
             "--interval", str(GOOD_INTERVAL_S), "--deadline", str(GOOD_DEADLINE_S)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=HERE)
        self.records = []
        self.ready = threading.Event()
        self.error = None
        self.calls_started = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            event = record.get("event")
            if event == "ready":
                self.ready.set()
            elif event == "error":
                self.error = record.get("message")
                self.ready.set()
            else:
                self.records.append(record)

    def wait_ready(self, timeout=30):
        if not self.ready.wait(timeout):
            raise AssertionError(f"the good client did not get through its warm-up calls in {timeout} s")
        if self.error:
            raise AssertionError(f"the good client's warm-up failed: {self.error}")

    def stop(self):
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=5)
        self.log.close()

    @property
    def calls(self):
        return [r for r in self.records if r.get("event") == "call"]

    @property
    def final(self):
        for record in self.records:
            if record.get("event") == "final":
                return record
        return None


class AttackRun:
    """One attack: the good client and the RSS sampler around it."""

    def __init__(self, name, server, duration):
        self.name = name
        self.server = server
        self.duration = duration
        self.failures = []  # attack-specific expectations not met
        self.notes = []
        self.stop_sampling = threading.Event()
        self.abort = threading.Event()
        self.samples = []  # (monotonic time, KiB)
        self.baseline_kib = None
        self.started = None
        self.deadline = None
        self.good = None

    # -- for the attack --

    def active(self):
        """True while the attack should go on: within its time and while the
        server's memory is not running away."""
        return not self.abort.is_set() and time.monotonic() < self.deadline and self.server.alive

    def remaining(self):
        return max(0.0, self.deadline - time.monotonic())

    def elapsed(self):
        return time.monotonic() - self.started

    def expect(self, condition, message):
        """An attack-specific expectation; all of them are reported together."""
        if not condition:
            self.failures.append(message)
        return condition

    def note(self, message):
        self.notes.append(message)

    def good_latency_max(self, since):
        """The good client's slowest call that started after `since` (a
        time.time()), in ms, so far."""
        latencies = [r["latency"] for r in list(self.good.records)
                     if r.get("event") == "call" and r["t"] - r["latency"] >= since]
        return round(max(latencies) * 1000) if latencies else None

    # -- harness --

    def _sample(self):
        while not self.stop_sampling.is_set():
            kib = rss_kib(self.server.pid)
            if kib is not None:
                self.samples.append((time.monotonic(), kib))
                if (kib - self.baseline_kib) / 1024 > RSS_ABORT_MIB:
                    self.abort.set()
            self.stop_sampling.wait(RSS_SAMPLE_S)

    def __enter__(self):
        self.good = GoodClient(self.server.port, self.server.log_path.parent / "good-client.log")
        self.good.wait_ready()
        time.sleep(0.2)
        self.baseline_kib = rss_kib(self.server.pid)
        assert self.baseline_kib is not None, "cannot read the server's VmRSS"
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()
        self.cpu_at_start = cpu_seconds(self.server.pid)
        self.started = time.monotonic()
        self.deadline = self.started + self.duration
        return self

    def __exit__(self, kind, value, traceback):
        time.sleep(COOLDOWN_S)
        self.good.stop()
        self.stop_sampling.set()
        self.sampler.join(timeout=5)
        self.wall = time.monotonic() - self.started
        cpu_now = cpu_seconds(self.server.pid)
        if cpu_now is not None and self.cpu_at_start is not None:
            self.notes.append(f"server CPU {cpu_now - self.cpu_at_start:.1f} s in {self.wall:.1f} s")
        alive = self.server.alive
        calls = self.good.calls
        failed = [c for c in calls if not c["ok"]]
        latencies = sorted(c["latency"] for c in calls)
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None
        peak_kib = max([kib for _, kib in self.samples] or [self.baseline_kib])
        growth_mib = (peak_kib - self.baseline_kib) / 1024
        final = self.good.final
        row = {
            "attack": self.name, "baseline_mib": round(self.baseline_kib / 1024, 1),
            "peak_rss_growth_mib": round(growth_mib, 1), "good_p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
            "good_calls": len(calls), "failures": len(failed) + (0 if final and final["ok"] else 1),
            "alive": alive, "seconds": round(self.wall, 1), "notes": self.notes,
        }
        RESULTS.append(row)
        self.row = row
        if kind is not None:
            return False  # the attack itself raised: report that
        problems = list(self.failures)
        if not alive:
            problems.append(f"the server died during the attack (exit {self.server.process.returncode}): {self.server.log_text(800)}")
        if self.abort.is_set():
            problems.append(f"the attack was cut short: the server's RSS grew past {RSS_ABORT_MIB} MiB")
        if growth_mib >= RSS_GROWTH_LIMIT_MIB:
            problems.append(f"peak RSS grew {growth_mib:.0f} MiB over the baseline of {self.baseline_kib / 1024:.0f} MiB "
                            f"(limit {RSS_GROWTH_LIMIT_MIB} MiB)")
        if not calls:
            problems.append("the good client made no calls during the attack")
        if failed:
            codes = sorted({c["code"] for c in failed})
            problems.append(f"{len(failed)} of the good client's {len(calls)} calls failed: {'; '.join(codes)[:400]}")
        if p99 is not None and p99 >= GOOD_P99_LIMIT_S:
            problems.append(f"the good client's p99 latency was {p99 * 1000:.0f} ms (limit {GOOD_P99_LIMIT_S * 1000:.0f} ms)")
        if not final or not final["ok"]:
            problems.append(f"a fresh health check after the attack failed: {final['code'] if final else 'no answer'}")
        if problems:
            raise AssertionError(f"{self.name}:\n  - " + "\n  - ".join(problems))
        return False


class Hostile:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.servers = []
        self.runs = []
        self.closers = []

    def server(self, **limits):
        """A catalog on a free port with the given runtime limits."""
        directory = self.tmp_path / f"server{len(self.servers)}"
        directory.mkdir()
        server = CatalogServer(directory, limits)
        self.servers.append(server)
        return server

    def attack(self, name, server, duration=5.0):
        run = AttackRun(name, server, duration)
        self.runs.append(run)
        return run

    def track(self, *connections):
        """Connections to close when the test ends, whatever happened."""
        self.closers.extend(connections)
        return connections[0] if len(connections) == 1 else connections

    def close(self):
        for connection in self.closers:
            try:
                connection.close()
            except Exception:
                pass
        for run in self.runs:
            if run.good and run.good.process.poll() is None:
                run.good.process.kill()
        for server in self.servers:
            server.stop()


@pytest.fixture
def hostile(tmp_path):
    harness = Hostile(tmp_path)
    yield harness
    harness.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.failed):
        reason = ""
        if report.failed:
            message = str(call.excinfo.value) if call.excinfo else ""
            lines = [line.strip(" -") for line in message.splitlines() if line.strip()]
            reason = "; ".join(lines[1:] if len(lines) > 1 and lines[0].endswith(":") else lines)[:300]
        OUTCOMES[item.nodeid] = ("passed" if report.passed else "failed" if report.failed else report.outcome, reason)
        mine = [row for row in RESULTS if row.get("nodeid") in (None, item.nodeid)]
        if not mine:
            RESULTS.append({"attack": item.name, "peak_rss_growth_mib": None, "good_p99_ms": None, "failures": None})
            mine = RESULTS[-1:]
        for row in mine:
            row["nodeid"] = item.nodeid


def table_rows():
    rows = []
    for row in RESULTS:
        outcome, reason = OUTCOMES.get(row.get("nodeid"), ("unknown", ""))
        rows.append({**row, "result": outcome, "reason": reason})
    return rows


def pytest_terminal_summary(terminalreporter):
    rows = table_rows()
    if not rows:
        return
    write = terminalreporter.write_line
    terminalreporter.section("attack table")
    write("| attack | peak RSS growth (MiB) | good-client p99 ms | failures | result |")
    write("| --- | --- | --- | --- | --- |")
    for row in rows:
        result = row["result"] if not row["reason"] else f"{row['result']}: {row['reason'][:160]}"
        write(f"| {row['attack']} | {row['peak_rss_growth_mib']} | {row['good_p99_ms']} | {row['failures']} | {result} |")
    notes = [(row["attack"], note) for row in rows for note in row.get("notes") or []]
    if notes:
        write("")
        write("what the server did:")
        for attack, note in notes:
            write(f"  {attack}: {note}")
    if UNSUPPORTED_FLAGS:
        write(f"note: this catalog binary does not take {', '.join(sorted(UNSUPPORTED_FLAGS))}; "
              "those limits were passed only as CATALOG_* environment variables")
    path = terminalreporter.config.getoption("--attack-results")
    if path:
        pathlib.Path(path).write_text(json.dumps({"rows": rows, "unsupported_flags": sorted(UNSUPPORTED_FLAGS)}, indent=2))
