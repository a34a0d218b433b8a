"""4d. API latency and throughput under 50 concurrent clients, on gunicorn
(``recast serve``), with wrk (Debian's ``wrk`` package): the catalogue list,
a submission, and a request's status, against a static file that the same
server hands out without reaching a view (the baseline).

Each endpoint is measured twice: closed loop (50 clients, each sending its
next request as soon as it has an answer: the server's throughput, and a
latency that is the queue, about clients / throughput) and paced (the same
clients with a think time of 1 s on average: the latency at a realistic load).

Submissions go to a broker when ``RECAST_BENCH_BROKER_URL`` is set (a Redis
database of the benchmark's own, purged afterwards), and no worker takes them:
the figure is the API's alone, as in a deployment whose workers run elsewhere.
Without it, the server runs what it accepts on one background thread, on the
same cores as the API (each run a cache hit after the first).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # (installed with yadage; no stubs)

from benchmarks.report import Report
from benchmarks.server import REPO, Server, serve

WORKFLOWS = REPO / "workflows"
SLUG = "demo-stop-1l"
CLIENTS = 50
SECONDS = 10
WARMUP_SECONDS = 2
TARGET_P99_MS = 200.0
STATIC = "/static/rest_framework/js/default.js"
SUBMIT_BODY = '{"analysis": "demo-stop-1l", "patches": ["stop_450_0"]}'
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
ENDPOINTS = ("catalogue_list", "status", "submit")

POST_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""
# The paced variant: each client waits 0.5 to 1.5 s (1 s on average) between
# its answer and its next request, as people and polling scripts do; wrk
# times each request alone, not the wait.
THINK_SCRIPT = """
math.randomseed(os.time())
function delay()
  return math.random(500, 1500)
end
"""
ACCESS_STATUS = re.compile(r'" (\d{3}) ')
# wrk stops at its deadline with up to one request per client still queued in
# the server; those answers come after it, and must not land in the next
# phase's figures (they did: 47 submits answered during the paced catalogue
# list). The server counts as idle once it uses less than this share of a
# core over a settling interval.
SETTLE_INTERVAL = 0.5
IDLE_SHARE = 0.05
SETTLE_TIMEOUT = 30.0


def milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"wrk printed a latency it cannot read: {text}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse(output: str) -> dict[str, Any]:
    """Percentiles, throughput and errors from ``wrk --latency``."""
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    requests_line = re.search(r"(\d+) requests in", output)
    throughput = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not (requests_line and throughput and len(percentiles) == 2):
        raise ValueError(f"unexpected wrk output:\n{output}")
    return {
        "p50_ms": milliseconds(percentiles["50"]),
        "p99_ms": milliseconds(percentiles["99"]),
        "requests_per_s": float(throughput.group(1)),
        "requests": int(requests_line.group(1)),
        "errors": errors,
    }


def wrk(
    server: Server, path: str, script: Path | None = None, seconds: int = SECONDS
) -> dict[str, Any]:
    """wrk against ``path``; adds the answers' status codes as the server's
    access log counted them (what wrk's error count is made of)."""
    command = [
        "wrk",
        "--latency",
        "-t",
        "2",
        "-c",
        str(CLIENTS),
        "-d",
        f"{seconds}s",
        "--timeout",
        "10s",
        "-H",
        f"Authorization: Token {server.token}",
    ]
    if script is not None:
        command += ["-s", str(script)]
    settle(server)
    log = server.var / "server.log"
    before, cpu_before = log.stat().st_size, cpu_seconds(server.pid)
    done = subprocess.run(
        [*command, f"{server.url}{path}"], capture_output=True, text=True, check=True
    )
    cpu = cpu_seconds(server.pid) - cpu_before
    figures = parse(done.stdout)
    with log.open("rb") as handle:
        handle.seek(before)
        codes = Counter(ACCESS_STATUS.findall(handle.read().decode(errors="replace")))
    figures["statuses"] = dict(sorted(codes.items()))
    figures["server_cpu_ms_per_answer"] = cpu / max(codes.total(), 1) * 1000
    return figures


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of the server and its worker processes: what
    an answer costs, whatever else the shared machine runs meanwhile."""
    server = psutil.Process(pid)
    total = 0.0
    for process in [server, *server.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def settle(server: Server) -> None:
    """Wait until the server has answered what an earlier phase left queued."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        before = cpu_seconds(server.pid)
        time.sleep(SETTLE_INTERVAL)
        if cpu_seconds(server.pid) - before < IDLE_SHARE * SETTLE_INTERVAL:
            return
    raise RuntimeError(f"the server was still busy after {SETTLE_TIMEOUT:.0f} s")


def scripts(folder: Path) -> dict[str, Path | None]:
    """wrk's Lua scripts: GET, POST, and each with the clients' think time."""
    made: dict[str, Path | None] = {"get": None}
    for name, text in {
        "post": POST_SCRIPT.format(body=SUBMIT_BODY),
        "get_paced": THINK_SCRIPT,
        "post_paced": POST_SCRIPT.format(body=SUBMIT_BODY) + THINK_SCRIPT,
    }.items():
        made[name] = folder / f"{name}.lua"
        made[name].write_text(text)  # type: ignore[union-attr]
    return made


def purge(server: Server) -> None:
    """Drop the submissions' tasks from the benchmark's own broker."""
    subprocess.run(
        [
            str(Path(sys.executable).with_name("celery")),
            "-A",
            "recast",
            "purge",
            "-f",
        ],
        env=server.env,
        cwd=REPO,
        capture_output=True,
        check=True,
    )


def main() -> Report:
    if shutil.which("wrk") is None:
        raise SystemExit("bench_api needs wrk: apt-get install wrk")
    broker = os.environ.get("RECAST_BENCH_BROKER_URL", "")
    extra = {"CELERY_BROKER_URL": broker} if broker else {}
    scratch = Path(tempfile.mkdtemp(prefix="recast-bench-api-"))
    lua = scripts(scratch)

    with serve(WORKFLOWS, workers=1, **extra) as server:
        request_id = server.post(
            "requests/", {"analysis": SLUG, "patches": ["stop_450_0"]}
        )["id"]
        endpoints = {
            "catalogue_list": ("/api/v1/analyses/", "get"),
            "status": (f"/api/v1/requests/{request_id}/", "get"),
            "submit": ("/api/v1/requests/", "post"),
        }
        # Not measured: every server thread opens its database connection
        # and every process loads its code once, as a server that has been up
        # a while has done.
        for path, method in endpoints.values():
            wrk(server, path, lua[method], seconds=WARMUP_SECONDS)
        measured = {"static": wrk(server, STATIC)}
        for name, (path, method) in endpoints.items():
            measured[name] = wrk(server, path, lua[method])
        for name, (path, method) in endpoints.items():
            measured[f"paced_{name}"] = wrk(server, path, lua[f"{method}_paced"])
        if broker:
            purge(server)
    shutil.rmtree(scratch, ignore_errors=True)
    return report(measured, broker)


def report(measured: dict[str, dict[str, Any]], broker: str) -> Report:
    result = Report("api")
    for name, figures in measured.items():
        for key, value in figures.items():
            result.figures[f"{name}_{key}"] = value
    for name in ENDPOINTS:
        p99 = measured[name]["p99_ms"]
        result.figures[f"{name}_p99_over_static"] = p99 / measured["static"]["p99_ms"]
        result.figures[f"{name}_clients_over_throughput_ms"] = (
            CLIENTS / measured[name]["requests_per_s"] * 1000
        )
    for name in (*ENDPOINTS, *(f"paced_{e}" for e in ENDPOINTS)):
        result.targets[f"{name}_p99_ms"] = f"under {TARGET_P99_MS:.0f} ms"
        result.met[f"{name}_p99_ms"] = measured[name]["p99_ms"] < TARGET_P99_MS
        result.targets[f"{name}_errors"] = "0"
        result.met[f"{name}_errors"] = measured[name]["errors"] == 0
    result.figures["load_average_1min"] = os.getloadavg()[0]
    database = os.environ.get("RECAST_BENCH_DATABASE_URL", "")
    result.notes = [
        f"closed loop: wrk, {CLIENTS} connections on 2 threads, {SECONDS} s per "
        "endpoint, each client sending its next request as soon as it has an "
        "answer: this measures throughput, and the latency is the queue "
        "(clients / throughput, shown as clients_over_throughput_ms).",
        f"paced: the same {CLIENTS} clients, each waiting 0.5 to 1.5 s between "
        "an answer and its next request (about 50 requests a second offered): "
        "the latency of an answer when the server keeps up.",
        "server: recast serve (gunicorn, one process per core, about 64 threads in "
        "all, "
        "kept database connections) on loopback, authenticated by an API token; "
        f"rate limits lifted for the benchmark; {WARMUP_SECONDS} s of unmeasured "
        "load on each endpoint first (connections opened, code loaded); each "
        "phase starts once the server has answered what the last one left "
        "queued.",
        f"database: {database.split('@')[-1] if database else 'SQLite (WAL)'}; "
        + (
            "submissions queued on the broker, no worker running."
            if broker
            else "no broker: the server runs the submissions itself."
        ),
        "status: GET of one request with its run and steps; submit: POST of a "
        "one-patch request; baseline: a static file through the same server. "
        "statuses: the answers' codes as the server's access log counted them.",
    ]
    return result


if __name__ == "__main__":
    from benchmarks.report import show

    show(main())
