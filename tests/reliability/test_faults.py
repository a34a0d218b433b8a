"""Faults while a scan runs, on real processes: a Celery worker killed with
SIGKILL, Redis and PostgreSQL restarted, a step that hangs, a full disk under
the workspace, the web server killed with submissions in flight. Each test
checks that every point completes exactly once (or fails with a clear message).

The tests start a PostgreSQL cluster and a Redis server of their own (the
machine's shared ones must not be restarted), migrate the cluster, load the
`sleepy` test analysis (tests/reliability/workflows) and drive everything
through `recast serve`, `celery -A recast worker` and `manage.py` processes.
They need root (the full-disk test mounts a tmpfs) and the PostgreSQL 15
server binaries: without them they are skipped, unless RECAST_REQUIRE_SERVICES=1
makes that an error. Figures go to tests/artifacts/faults.json."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis
import requests
from django.conf import settings

from tests.conftest import REPO
from tests.reliability.processes import RECAST, figures_record
from tests.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.services]
REQUIRED = os.environ.get("RECAST_REQUIRE_SERVICES") == "1"
# The newest PostgreSQL server installed (Debian keeps each major version apart).
PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    default=Path("/usr/lib/postgresql/15/bin"),
)
WORKFLOWS = Path(__file__).resolve().parent / "workflows"
ANALYSIS = "sleepy"
LEASE = 10  # seconds; the platform's minimum (twice the 5 s heartbeat)
FINISHED = ("succeeded", "failed", "cancelled")
TEST_SECONDS = 90  # each fault test, from its first worker to its last check


def unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"RECAST_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


class Budget:
    """A test's time, shared by all its waits: past it, the test fails."""

    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.end = self.started + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def spent(self) -> float:
        return round(time.monotonic() - self.started, 1)


def wait_until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {seconds} s")


class Postgres:
    """A private cluster, run as the postgres user (it refuses root)."""

    def __init__(self, folder: Path) -> None:
        self.data, self.sockets = folder / "data", folder / "sockets"
        self.log = folder / "postgres.log"
        self.port = free_port()
        for path in (folder, self.sockets):
            path.mkdir(exist_ok=True)
            shutil.chown(path, "postgres", "postgres")
        self.as_postgres(
            PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres"
        )

    def as_postgres(self, *command: Any) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, command)],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1"
        self.as_postgres(
            PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-o", options,
            *extra, action,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: self.answers(client), 30, "redis answering")

    @staticmethod
    def answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Everything it held (queued task messages) is lost: no persistence."""
        self.stop()
        self.start()


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def kill9(self) -> None:
        """The whole worker, its pool processes with it, as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class Platform:
    postgres: Postgres
    redis: RedisServer
    env: dict[str, str]
    folder: Path
    token: str = ""
    url: str = ""
    server: subprocess.Popen[bytes] | None = None
    workers: list[Worker] = field(default_factory=list)

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start_server(self, port: int | None = None) -> None:
        """`recast serve` in a session of its own, so that a kill takes its
        gunicorn workers too."""
        port = port or free_port()
        log = self.folder / "server.log"
        with log.open("ab") as handle:
            self.server = subprocess.Popen(
                [RECAST, "serve", "--port", str(port)],
                cwd=REPO,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{port}"
        wait_until(self.server_answers, 90, "the web server answering")

    def server_answers(self) -> bool:
        assert self.server is not None and self.server.poll() is None, (
            self.folder / "server.log"
        ).read_text()
        try:
            requests.get(f"{self.url}/api/v1/analyses/", timeout=10)
            return True
        except requests.RequestException:
            return False

    def kill_server(self) -> None:
        assert self.server is not None
        os.killpg(self.server.pid, signal.SIGKILL)
        self.server.wait()

    def worker(self, log: Path, **env: str) -> Worker:
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "recast", "worker",
                 "--pool=prefork", "--concurrency=2", "--loglevel=INFO",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=REPO,
                env={**self.env, **env},
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        worker = Worker(process, log)
        self.workers.append(worker)

        def ready() -> bool:
            assert process.poll() is None, f"the worker exited:\n{log.read_text()}"
            return "ready." in log.read_text(errors="replace")

        wait_until(ready, 60, "the worker starting")
        return worker

    @contextmanager
    def sweeper(self, every: float = 2.0) -> Iterator[None]:
        """`manage.py requeue_stale` over and over, as celery beat would run it
        (its own schedule is a minute)."""
        stop = threading.Event()

        def sweep() -> None:
            while not stop.wait(every):
                subprocess.run(
                    [sys.executable, "manage.py", "requeue_stale"],
                    cwd=REPO,
                    env=self.env,
                    capture_output=True,
                    timeout=120,
                )

        thread = threading.Thread(target=sweep, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def headers(self, key: str = "") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        return {**headers, "Idempotency-Key": key} if key else headers

    def submit(self, points: list[dict[str, Any]], key: str = "") -> dict[str, Any]:
        body = {"analysis": ANALYSIS, "points": points, "cache": False}
        answer = requests.post(
            f"{self.url}/api/v1/requests/",
            json=body,
            headers=self.headers(key),
            timeout=60,
        )
        assert answer.status_code in (200, 201), answer.text
        return dict(answer.json())

    def runs(self, request_id: str) -> list[dict[str, Any]]:
        """The request's runs, read from the database itself."""
        query = """
            select r.id::text, r.point, r.status, r.attempts, r.archive_path,
                   r.error, r.result->>'point'
            from reinterpretation_run r where r.request_id = %s order by r.point
        """
        names = ("id", "point", "status", "attempts", "archive", "error", "result")
        with psycopg2.connect(self.postgres.url) as db, db.cursor() as cursor:
            cursor.execute(query, (request_id,))
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        db.close()
        return rows

    def steps(self, run_id: str, attempt: int) -> list[tuple[str, str]]:
        query = """
            select name, status from reinterpretation_step
            where run_id = %s and attempt = %s order by name
        """
        with psycopg2.connect(self.postgres.url) as db, db.cursor() as cursor:
            cursor.execute(query, (run_id, attempt))
            rows = [(str(n), str(s)) for n, s in cursor.fetchall()]
        db.close()
        return rows

    def count(self, request_id: str, status: str) -> int:
        return sum(run["status"] == status for run in self.runs_or_none(request_id))

    def runs_or_none(self, request_id: str) -> list[dict[str, Any]]:
        try:
            return self.runs(request_id)
        except psycopg2.OperationalError:
            return []  # restarting

    def finished(self, request_id: str, seconds: float) -> list[dict[str, Any]]:
        def done() -> list[dict[str, Any]] | None:
            runs = self.runs_or_none(request_id)
            return runs if runs and all(r["status"] in FINISHED for r in runs) else None

        return list(wait_until(done, seconds, f"request {request_id} finishing"))


def points(n: int, seconds: int = 1, fill_kb: int = 0) -> list[dict[str, Any]]:
    inputs = {"seconds": seconds, "fill_kb": fill_kb}
    return [{"name": f"p{i:02d}", "inputs": inputs} for i in range(n)]


def record(name: str, figures: dict[str, Any]) -> None:
    figures_record("faults.json", name, figures)


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    if os.geteuid() != 0:
        unavailable("the fault tests need root (tmpfs mounts, the postgres user)")
    if not (PG_BIN / "initdb").exists() or not shutil.which("redis-server"):
        unavailable(f"the fault tests need {PG_BIN}/initdb and redis-server")

    # Not under pytest's own temporary folder: the postgres user must reach it.
    folder = Path(tempfile.mkdtemp(prefix="recast-faults-"))
    folder.chmod(0o755)
    postgres = Postgres(folder / "postgres")
    postgres.pg_ctl("start")
    broker = RedisServer()
    broker.start()
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "CELERY_BROKER_URL": broker.url,
        "RECAST_WORK_DIR": str(folder / "work"),
        "RECAST_ARCHIVE_DIR": str(folder / "archive"),
        "RECAST_UPLOAD_DIR": str(folder / "uploads"),
        "RECAST_STEP_CACHE_DIR": str(folder / "cache"),
        "RECAST_ENVS_DIR": str(settings.RECAST_ENVS_DIR),
        "RECAST_RUN_LEASE": str(LEASE),
        "RECAST_REQUEUE_AFTER": "10",
        "RECAST_THROTTLE_USER": "1000/second",
        "RECAST_THROTTLE_ADDRESS": "1000/second",
        # CI runs as root; these processes run no untrusted code themselves.
        "C_FORCE_ROOT": "1",
    }
    platform = Platform(postgres, broker, env, folder)
    try:
        platform.manage("migrate", "--verbosity", "0")
        platform.manage("catalogue_load", "--root", str(WORKFLOWS), ANALYSIS)
        platform.token = platform.manage("create_token", "faults").strip()
        platform.start_server()
        yield platform
    finally:
        for worker in platform.workers:
            worker.stop()
        if platform.server is not None and platform.server.poll() is None:
            platform.kill_server()
        broker.stop()
        postgres.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def budget() -> Budget:
    return Budget(TEST_SECONDS)


@pytest.fixture
def fresh(platform: Platform) -> Iterator[Platform]:
    """No task messages left from an earlier test; its workers stopped after."""
    redis.Redis.from_url(platform.redis.url).flushdb()
    yield platform
    for worker in platform.workers:
        worker.stop()
    platform.workers.clear()


def assert_done_exactly_once(platform: Platform, runs: list[dict[str, Any]]) -> None:
    """Each point succeeded once: its own result, the final attempt's steps,
    one archive (written once, by the attempt that recorded it)."""
    archive = Path(platform.env["RECAST_ARCHIVE_DIR"])
    for run in runs:
        assert (run["status"], run["result"]) == ("succeeded", run["point"]), run
        assert platform.steps(run["id"], run["attempts"]) == [
            ("sleep", "succeeded"),
            ("summarise", "succeeded"),
        ]
        provenance = json.loads(Path(run["archive"], "run.json").read_text())
        assert provenance["attempt"] == run["attempts"]
        assert sorted(p.name for p in archive.glob(f"*{run['id']}*")) == [run["id"]]


def test_a_worker_killed_mid_scan_leaves_every_point_done_exactly_once(
    fresh: Platform, tmp_path: Path, budget: Budget
) -> None:
    first = fresh.worker(tmp_path / "first.log")
    request = fresh.submit(points(20))

    def some_done_and_some_running() -> bool:
        runs = fresh.runs(request["id"])
        done = sum(r["status"] == "succeeded" for r in runs)
        return done >= 3 and any(r["status"] == "running" for r in runs)

    wait_until(
        some_done_and_some_running, budget.left(), "three points done, one running"
    )
    first.kill9()
    fresh.worker(tmp_path / "second.log")
    with fresh.sweeper():
        runs = fresh.finished(request["id"], budget.left())

    assert [r["point"] for r in runs] == [f"p{i:02d}" for i in range(20)]
    assert_done_exactly_once(fresh, runs)
    taken_over = [r["point"] for r in runs if r["attempts"] > 1]
    assert taken_over  # the points the killed worker held ran again
    record(
        "worker_killed",
        {
            "points": len(runs),
            "attempts": sum(r["attempts"] for r in runs),
            "taken_over": len(taken_over),
            "lease_s": LEASE,
            "seconds": budget.spent(),
        },
    )


@pytest.mark.parametrize("service", ["redis", "postgres"])
def test_a_scan_completes_across_a_restart_of(
    fresh: Platform, tmp_path: Path, budget: Budget, service: str
) -> None:
    fresh.worker(tmp_path / "worker.log")
    request = fresh.submit(points(10))
    wait_until(
        lambda: fresh.count(request["id"], "succeeded") >= 2,
        budget.left(),
        "two points done",
    )
    if service == "redis":
        fresh.redis.restart()
    else:
        fresh.postgres.pg_ctl("restart", "-m", "fast")
    with fresh.sweeper():
        runs = fresh.finished(request["id"], budget.left())

    assert [(r["point"], r["status"], r["error"]) for r in runs] == [
        (f"p{i:02d}", "succeeded", "") for i in range(10)
    ]
    assert all(r["result"] == r["point"] for r in runs)
    record(
        f"{service}_restarted",
        {
            "points": len(runs),
            "attempts": sum(r["attempts"] for r in runs),
            "seconds": budget.spent(),
        },
    )


def test_a_step_that_hangs_is_stopped_by_its_time_limit(
    fresh: Platform, tmp_path: Path, budget: Budget
) -> None:
    fresh.worker(tmp_path / "worker.log", RECAST_STEP_TIMEOUT="3")
    request = fresh.submit(points(1, seconds=3600))
    [run] = fresh.finished(request["id"], budget.left())

    assert (run["status"], run["error"]) == (
        "failed",
        "step sleep timed out after 3 s",
    )
    assert fresh.steps(run["id"], 1) == [("sleep", "failed")]
    record(
        "step_hangs",
        {"timeout_s": 3, "seconds": budget.spent()},
    )


def test_a_full_disk_fails_the_run_clearly_and_leaves_no_partial_archive(
    fresh: Platform, tmp_path: Path, budget: Budget
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True
    )
    try:
        worker = fresh.worker(
            tmp_path / "worker.log",
            RECAST_WORK_DIR=str(disk / "work"),
            RECAST_ARCHIVE_DIR=str(disk / "archive"),
        )
        # 1.2 MB of outputs fit on the 2 MB disk once, not twice: the step
        # succeeds, its archive copy cannot.
        request = fresh.submit(points(1, seconds=0, fill_kb=1200))
        [run] = fresh.finished(request["id"], budget.left())
        # The request's own archive (no point archives in it) may be there.
        leftovers = [
            p.name
            for p in (disk / "archive").rglob("*")
            if run["id"] in p.name or p.name.endswith(".incomplete")
        ]
        worker.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)

    assert (run["status"], run["error"], run["archive"]) == (
        "failed",
        "the archive could not be written: no space left on the device "
        f"holding {disk / 'archive'}",
        "",
    )
    assert leftovers == []
    record("disk_full", {"disk_mb": 2, "seconds": budget.spent()})


def test_the_web_server_killed_with_submissions_in_flight_loses_none(
    fresh: Platform, budget: Budget
) -> None:
    """Clients send each submission with an Idempotency-Key and send it again
    on a connection error; after the restart each exists exactly once."""
    keys = [str(uuid.uuid4()) for _ in range(40)]
    retries: list[str] = []
    accepted: list[str] = []
    port = int(fresh.url.rsplit(":", 1)[1])

    def submit(key: str) -> str:
        while budget.left():
            try:
                answer = fresh.submit(points(1, seconds=0), key)
                accepted.append(key)
                time.sleep(0.2)  # a client's pace: the kill finds some waiting
                return str(answer["id"])
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,  # cut mid-answer
            ):
                retries.append(key)
                time.sleep(0.5)
        raise AssertionError(f"submission {key} was never accepted")

    with ThreadPoolExecutor(4) as pool:
        answers = pool.map(submit, keys)
        # Killed once a few are answered, with the others on their way.
        wait_until(
            lambda: len(accepted) >= 8, budget.left(), "eight submissions answered"
        )
        fresh.kill_server()
        fresh.start_server(port)
        ids = list(answers)

    with psycopg2.connect(fresh.postgres.url) as db, db.cursor() as cursor:
        cursor.execute(
            "select idempotency_key, id::text from reinterpretation_request "
            "where idempotency_key = any(%s)",
            (keys,),
        )
        stored = dict(cursor.fetchall())
        # These runs are never executed: keep later sweeps from queuing them.
        cursor.execute(
            "update reinterpretation_run set status = 'cancelled' "
            "where request_id::text = any(%s)",
            (ids,),
        )
    db.close()

    assert len(set(ids)) == len(keys)  # none duplicated
    assert stored == dict(zip(keys, ids, strict=True))  # none lost, each once
    assert retries  # the kill did catch submissions in flight
    record(
        "web_server_killed",
        {
            "submissions": len(keys),
            "retried": len(retries),
            "seconds": budget.spent(),
        },
    )
