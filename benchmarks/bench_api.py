"""4d. API latency and throughput under 50 concurrent clients, on gunicorn
(``recast serve``), with wrk (Debian's ``wrk`` package): the catalogue list,
a submission, and a request's status, against a static file that the same
server hands out without reaching a view (the baseline).

Submissions go to a broker when ``RECAST_BENCH_BROKER_URL`` is set (a Redis
database of the benchmark's own, purged afterwards), and no worker takes them:
the figure is the API's alone, as in a deployment whose workers run elsewhere.
Without it, the server runs what it accepts on one background thread, on the
same cores as the API (each run a cache hit after the first).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.report import Report
from benchmarks.server import REPO, Server, serve

WORKFLOWS = REPO / "workflows"
SLUG = "demo-stop-1l"
CLIENTS = 50
SECONDS = 10
TARGET_P99_MS = 200.0
STATIC = "/static/rest_framework/js/default.js"
SUBMIT_BODY = '{"analysis": "demo-stop-1l", "patches": ["stop_450_0"]}'
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}

POST_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


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


def wrk(server: Server, path: str, script: Path | None = None) -> dict[str, Any]:
    command = [
        "wrk",
        "--latency",
        "-t",
        "2",
        "-c",
        str(CLIENTS),
        "-d",
        f"{SECONDS}s",
        "--timeout",
        "10s",
        "-H",
        f"Authorization: Token {server.token}",
    ]
    if script is not None:
        command += ["-s", str(script)]
    done = subprocess.run(
        [*command, f"{server.url}{path}"], capture_output=True, text=True, check=True
    )
    return parse(done.stdout)


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
    script = scratch / "submit.lua"
    script.write_text(POST_SCRIPT.format(body=SUBMIT_BODY))

    with serve(WORKFLOWS, workers=1, **extra) as server:
        request_id = server.post(
            "requests/", {"analysis": SLUG, "patches": ["stop_450_0"]}
        )["id"]
        measured = {
            "static": wrk(server, STATIC),
            "catalogue_list": wrk(server, "/api/v1/analyses/"),
            "status": wrk(server, f"/api/v1/requests/{request_id}/"),
            "submit": wrk(server, "/api/v1/requests/", script),
        }
        if broker:
            purge(server)
    shutil.rmtree(scratch, ignore_errors=True)
    return report(measured, broker)


def report(measured: dict[str, dict[str, Any]], broker: str) -> Report:
    result = Report("api")
    for name, figures in measured.items():
        for key, value in figures.items():
            result.figures[f"{name}_{key}"] = value
    for name in ("catalogue_list", "submit", "status"):
        p99 = measured[name]["p99_ms"]
        result.figures[f"{name}_p99_over_static"] = p99 / measured["static"]["p99_ms"]
        result.targets[f"{name}_p99_ms"] = f"under {TARGET_P99_MS:.0f} ms"
        result.met[f"{name}_p99_ms"] = p99 < TARGET_P99_MS
        result.targets[f"{name}_errors"] = "0"
        result.met[f"{name}_errors"] = measured[name]["errors"] == 0
    result.figures["load_average_1min"] = os.getloadavg()[0]
    database = os.environ.get("RECAST_BENCH_DATABASE_URL", "")
    result.notes = [
        f"wrk, {CLIENTS} connections on 2 threads, {SECONDS} s per endpoint, "
        "against recast serve (gunicorn, one process, 8 threads) on loopback, "
        "authenticated by an API token; rate limits lifted for the benchmark.",
        f"database: {database.split('@')[-1] if database else 'SQLite (WAL)'}; "
        + (
            "submissions queued on the broker, no worker running."
            if broker
            else "no broker: the server runs the submissions itself."
        ),
        "status: GET of one request with its run and steps; submit: POST of a "
        "one-patch request; baseline: a static file through the same server.",
    ]
    return result


if __name__ == "__main__":
    from benchmarks.report import show

    show(main())
