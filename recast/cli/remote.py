"""Commands that talk to a recast server over HTTP."""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from recast.cli.client import Client
from recast.cli.output import print_json, print_table

FINISHED = {"succeeded", "failed", "cancelled"}
POLL_SECONDS = 1.0


def submit_request(
    client: Client,
    slug: str,
    signal: Path | None,
    patches: tuple[str, ...],
    scan: str | None,
    name: str | None,
    given: list[tuple[str, Any]] | None = None,
    use_cache: bool = True,
    credentials: list[str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"analysis": slug}
    if name:
        body["name"] = name
    if not use_cache:
        body["cache"] = False
    if credentials:
        # A multipart form carries it as one string; the server reads both.
        body["credentials"] = ",".join(credentials)
    if given:
        # Files go as multipart fields named by their input; the rest as JSON.
        inputs = {key: value for key, value in given if not isinstance(value, Path)}
        files = [
            (key, (value.name, value.read_bytes()))
            for key, value in given
            if isinstance(value, Path)
        ]
        body["inputs"] = json.dumps(inputs)
        return dict(client.post_files("requests/", body, files))
    if signal is not None:
        with signal.open("rb") as handle:
            return dict(
                client.post_files("requests/", body, {"signal": (signal.name, handle)})
            )
    if scan is not None and Path(scan).is_file():
        with Path(scan).open("rb") as handle:
            return dict(
                client.post_files(
                    "requests/", body, {"patchset": (Path(scan).name, handle)}
                )
            )
    if scan is not None:
        body["scan"] = scan
    else:
        body["patches"] = list(patches)
    return dict(client.post("requests/", body))


def running_step(run: dict[str, Any]) -> str:
    running = [s["name"] for s in run.get("steps", []) if s["status"] == "running"]
    return str(running[-1]) if running else str(run["status"])


def watch(client: Client, request_id: str, stages: int) -> dict[str, Any]:
    """Poll the request, with one bar per point and one overall, until it ends."""
    console = Console(file=sys.stderr)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        detail = client.get(f"requests/{request_id}/")
        overall = progress.add_task("all points", total=len(detail["runs"]))
        bars: dict[str, TaskID] = {
            run["id"]: progress.add_task(run["point"], total=stages)
            for run in detail["runs"]
        }
        while True:
            for run in detail["runs"]:
                done = sum(
                    1 for s in run.get("steps", []) if s["status"] == "succeeded"
                )
                label = f"{run['point']} [{running_step(run)}]"
                progress.update(bars[run["id"]], completed=done, description=label)
            finished = sum(1 for run in detail["runs"] if run["status"] in FINISHED)
            progress.update(
                overall,
                completed=finished,
                description=f"all points [{detail['status']}]",
            )
            if detail["status"] in FINISHED:
                return dict(detail)
            time.sleep(POLL_SECONDS)
            detail = client.get(f"requests/{request_id}/")


def results_rows(client: Client, request_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"requests/{request_id}/results/")["results"])


def show_results(client: Client, request_id: str, form: str) -> None:
    if form == "csv":
        sys.stdout.write(
            client.call(
                "GET", f"requests/{request_id}/results/", params={"as": "csv"}
            ).text
        )
    elif form == "json":
        print_json(client.get(f"requests/{request_id}/results/"))
    else:
        print_table(results_rows(client, request_id))


def status_lines(detail: dict[str, Any]) -> list[str]:
    counts = ", ".join(f"{n} {s}" for s, n in detail["counts"].items() if n)
    lines = [
        f"request {detail['id']} on {detail['analysis']}: {detail['status']} ({counts})"
    ]
    for run in detail["runs"]:
        error = f": {run['error'].splitlines()[0]}" if run.get("error") else ""
        lines.append(f"  {run['point']:30} {running_step(run)}{error}")
    return lines


def download(client: Client, request_id: str, output: Path) -> list[Path]:
    """Every finished run's archive, and the results as CSV."""
    output.mkdir(parents=True, exist_ok=True)
    detail = client.get(f"requests/{request_id}/")
    written = []
    for run in detail["runs"]:
        if run["status"] in FINISHED and run["status"] != "cancelled":
            target = output / f"{run['point']}-{run['id']}.tar.gz"
            written.append(client.download(f"runs/{run['id']}/archive/", target))
    if detail["status"] in FINISHED:
        target = output / f"request-{request_id}.tar.gz"
        written.append(client.download(f"requests/{request_id}/archive/", target))
    csv_path = output / f"results-{request_id}.csv"
    csv_path.write_text(
        client.call("GET", f"requests/{request_id}/results/", params={"as": "csv"}).text
    )
    return [*written, csv_path]


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def export(client: Client, request_id: str, target: str, output: Path) -> list[Path]:
    """Fetch the export and unpack it into ``output``, refusing any member that
    would land outside it."""
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        bundle = Path(scratch) / "export.tar.gz"
        client.download(f"requests/{request_id}/export/?to={target}", bundle)
        with tarfile.open(bundle) as tar:
            tar.extractall(scratch, filter="data")
        unpacked = next(p for p in Path(scratch).iterdir() if p.is_dir())
        written = []
        for path in sorted(p for p in unpacked.rglob("*") if p.is_file()):
            target_path = output / path.relative_to(unpacked)
            target_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target_path)
            written.append(target_path)
    return written
