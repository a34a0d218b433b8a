"""The Kubernetes executor's conversation with an API server, against kmock's
in-memory Kubernetes emulator over real HTTP, with a small stand-in for the Job
controller (the emulator stores objects but runs no controllers). No API server
can run here; the Job manifests are checked against Kubernetes' own schemas in
test_kubernetes_manifests.py."""

from __future__ import annotations

import asyncio
import base64
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

from recast.engine.events import StepJob
from recast.engine.kubernetes import (
    KubernetesConfig,
    KubernetesExecutor,
    job_manifest,
    secret_manifest,
)
from recast.engine.limits import Limits

NAMESPACE = "recast"
IMAGE_ID = "registry.example.org/recast/pyhf@sha256:" + "ab" * 32
CONTROLLER = "job-controller-stand-in"
LOG_PATH = re.compile(r"/api/v1/namespaces/[^/]+/pods/[^/]+/log")


@dataclass
class Emulator:
    """kmock's emulator served on 127.0.0.1 from its own event loop."""

    handler: Any
    url: str
    loop: asyncio.AbstractEventLoop
    logs: dict[str, str] = field(default_factory=dict)
    # The uid the API server gave each Job it created (by name).
    uids: dict[str, str] = field(default_factory=dict)

    def created(self, request: kmock.Request) -> dict[str, Any]:
        """What an API server answers a create with: the object and the uid
        it assigned (the emulator stores objects as they are sent)."""
        uid = str(uuid.uuid4())
        self.uids[request.data["metadata"]["name"]] = uid
        return {**request.data, "metadata": {**request.data["metadata"], "uid": uid}}

    def api(self, agent: str = CONTROLLER) -> k8s.ApiClient:
        configuration = k8s.Configuration()
        configuration.host = self.url.rstrip("/")
        client = k8s.ApiClient(configuration)
        client.user_agent = agent
        return client

    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """What the executor asked, in order (the stand-in controller's left out)."""
        return [
            (str(r.method.value), r.url.path, dict(r.params))
            for r in self.handler
            if r.headers.get("User-Agent") != CONTROLLER
        ]

    def jobs(self) -> list[dict[str, Any]]:
        listed = k8s.BatchV1Api(self.api()).list_namespaced_job(NAMESPACE)
        return [self.api().sanitize_for_serialization(j) for j in listed.items]

    def secrets(self) -> list[dict[str, Any]]:
        listed = k8s.CoreV1Api(self.api()).list_namespaced_secret(NAMESPACE)
        return [self.api().sanitize_for_serialization(s) for s in listed.items]

    def sent(self, kind: str) -> list[dict[str, Any]]:
        """The bodies of the executor's creates of ``kind`` (jobs, secrets)."""
        return [
            r.data
            for r in self.handler
            if r.method.value == "POST" and r.url.path.endswith(f"/{kind}")
            if r.headers.get("User-Agent") != CONTROLLER
        ]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture
def emulator(loop: asyncio.AbstractEventLoop) -> Iterator[Emulator]:
    async def start() -> tuple[Any, Any]:
        handler = kmock.KubernetesEmulator()
        await handler.__aenter__()
        server = kmock.Server(handler)
        await server.__aenter__()
        return handler, server

    handler, server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    emulated = Emulator(handler, str(server.url), loop)
    handler.resources["batch/v1/jobs"] = {}
    handler.resources["v1/pods"] = {}
    handler.resources["v1/secrets"] = {}
    # The emulator would answer a log request with the pod object: serve text.
    (
        handler["get", LOG_PATH]
        << kmock.headers({"Content-Type": "text/plain"})
        << (lambda request: emulated.logs.get(request.name, "").encode())
    )
    handler["post", re.compile(r".*/jobs$")] << emulated.created
    yield emulated

    async def stop() -> None:
        await server.__aexit__(None, None, None)
        await handler.__aexit__(None, None, None)

    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)


class Controller:
    """Plays the Job controller and the kubelet: for each new Job, a pod that
    ends as ``outcome`` says, then the Job's verdict in its status."""

    def __init__(self, emulator: Emulator, outcome: str, exit_code: int = 0) -> None:
        self.emulator, self.outcome, self.exit_code = emulator, outcome, exit_code
        self.done = threading.Event()
        # The Secrets there were when each pod started (by Job name).
        self.secrets_at_start: dict[str, list[str]] = {}
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def __enter__(self) -> Controller:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.thread.join(5)

    def loop(self) -> None:
        seen: set[str] = set()
        while not self.done.is_set():
            for job in self.emulator.jobs():
                name = job["metadata"]["name"]
                # A suspended Job gets no pod until it is let run.
                if name not in seen and not job["spec"].get("suspend"):
                    seen.add(name)
                    self.act(name)
            time.sleep(0.1)

    def act(self, name: str) -> None:
        api = self.emulator.api()
        self.secrets_at_start[name] = [
            s["metadata"]["name"] for s in self.emulator.secrets()
        ]
        pod = f"{name}-x7k2p"
        self.emulator.logs[pod] = "fitting\nCLs = 0.0676\n"
        terminated = {"exitCode": self.exit_code, "reason": "Completed"}
        k8s.CoreV1Api(api).create_namespaced_pod(
            NAMESPACE,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "labels": {"job-name": name}},
                "status": {
                    "containerStatuses": [
                        {
                            "name": "step",
                            "image": "recast/pyhf:0.7.6-1",
                            "imageID": IMAGE_ID,
                            "ready": False,
                            "restartCount": 0,
                            "state": {"terminated": terminated},
                        }
                    ]
                },
            },
        )
        condition = {
            "succeeded": {"type": "Complete", "status": "True"},
            "failed": {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
            },
            "deadline": {
                "type": "Failed",
                "status": "True",
                "reason": "DeadlineExceeded",
            },
        }.get(self.outcome)
        if condition:
            k8s.BatchV1Api(api).patch_namespaced_job_status(
                name, NAMESPACE, {"status": {"conditions": [condition]}}
            )


def config(root: Path) -> KubernetesConfig:
    return KubernetesConfig(
        namespace=NAMESPACE,
        workspace_root=root,
        registry="registry.example.org/",
        labels={"recast.io/run": "run-1", "recast.io/request": "request-1"},
    )


def step(
    root: Path, timeout: int = 60, secrets: dict[str, str] | None = None
) -> StepJob:
    rundir = root / "work" / "run-1"
    (rundir / "workflow" / "fit").mkdir(parents=True, exist_ok=True)
    return StepJob(
        name="fit",
        command="recast-pyhf fit --patched x --output-dir y",
        image="recast/pyhf",
        tag="0.7.6-1",
        workdir=str(rundir / "workflow" / "fit"),
        readonly=[str(rundir / "workflow" / "patch")],
        log_path=str(rundir / "logs" / "fit.log"),
        timeout=timeout,
        credentials=secrets or {},
    )


def executor(emulator: Emulator, root: Path) -> KubernetesExecutor:
    images = {"recast/pyhf": {"recipe_sha256": "c0ffee"}}
    return KubernetesExecutor(
        images, root / "work" / "run-1", config(root), client=emulator.api("recast")
    )


def test_a_step_runs_as_one_job_followed_by_watching_with_its_log(
    emulator: Emulator, tmp_path: Path
) -> None:
    job = step(tmp_path)

    with Controller(emulator, "succeeded"):
        outcome = executor(emulator, tmp_path).run(job, lambda: False)

    assert (outcome.ok, outcome.exit_code, outcome.reason) == (True, 0, "")
    assert Path(job.log_path).read_text() == "fitting\nCLs = 0.0676\n"
    [created] = emulator.jobs()
    name = created["metadata"]["name"]
    assert name.startswith("recast-fit-")
    assert created["metadata"]["labels"]["recast.io/run"] == "run-1"
    assert created["metadata"]["labels"]["recast.io/step"] == "fit"
    assert outcome.environment == {
        "backend": "kubernetes",
        "image": "registry.example.org/recast/pyhf:0.7.6-1",
        "image_id": IMAGE_ID,
        "recipe_sha256": "c0ffee",
        "namespace": NAMESPACE,
        "job": name,
    }
    mine = emulator.requests()
    jobs = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
    assert mine[0] == ("POST", jobs, {})
    assert (
        "GET",
        jobs,
        {
            "fieldSelector": f"metadata.name={name}",
            "timeoutSeconds": "5",
            "watch": "true",
        },
    ) in mine
    assert (
        "GET",
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        {"labelSelector": f"job-name={name}"},
    ) in mine
    assert mine[-1] == (
        "GET",
        f"/api/v1/namespaces/{NAMESPACE}/pods/{name}-x7k2p/log",
        {"container": "step"},
    )


def test_the_job_sent_is_the_manifest_the_backend_writes(
    emulator: Emulator, tmp_path: Path
) -> None:
    job = step(tmp_path)

    with Controller(emulator, "succeeded"):
        executor(emulator, tmp_path).run(job, lambda: False)

    [created] = [r for r in emulator.handler if r.url.path.endswith("/jobs") and r.data]
    name = created.data["metadata"]["name"]
    expected = job_manifest(
        name, job, Limits(4096, 1), tmp_path / "work" / "run-1", config(tmp_path)
    )
    assert created.data == expected


def test_a_failing_pod_reports_its_exit_code(
    emulator: Emulator, tmp_path: Path
) -> None:
    with Controller(emulator, "failed", exit_code=3):
        outcome = executor(emulator, tmp_path).run(step(tmp_path), lambda: False)

    assert (outcome.ok, outcome.exit_code, outcome.reason) == (False, 3, "")


def test_a_job_past_its_deadline_is_a_timeout_and_is_deleted(
    emulator: Emulator, tmp_path: Path
) -> None:
    with Controller(emulator, "deadline"):
        outcome = executor(emulator, tmp_path).run(step(tmp_path, 30), lambda: False)

    assert (outcome.exit_code, outcome.reason) == (None, "timed out after 30 s")
    assert emulator.jobs() == []


def test_cancel_deletes_the_job(emulator: Emulator, tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()

    with Controller(emulator, "running"):
        outcome = executor(emulator, tmp_path).run(step(tmp_path), cancel.is_set)

    assert outcome.reason == "cancelled"
    assert emulator.jobs() == []
    deletes = [r for r in emulator.requests() if r[0] == "DELETE"]
    assert [params for _, _, params in deletes] == [{"propagationPolicy": "Background"}]


def test_a_run_folder_off_the_workspace_claim_cannot_start(
    emulator: Emulator, tmp_path: Path
) -> None:
    elsewhere = KubernetesExecutor(
        {}, Path("/srv/elsewhere"), config(tmp_path), client=emulator.api()
    )

    outcome = elsewhere.run(step(tmp_path), lambda: False)

    assert outcome.reason == (
        "could not start: /srv/elsewhere is not on the workspace claim (under "
        f"{tmp_path}; set RECAST_K8S_WORKSPACE_ROOT to where the claim is mounted)"
    )
    assert emulator.jobs() == []


def test_an_unreachable_api_server_cannot_start(tmp_path: Path) -> None:
    configuration = k8s.Configuration()
    configuration.host = "http://127.0.0.1:9"
    configuration.retries = 0
    unreachable = KubernetesExecutor(
        {},
        tmp_path / "work" / "run-1",
        config(tmp_path),
        client=k8s.ApiClient(configuration),
    )

    outcome = unreachable.run(step(tmp_path), lambda: False)

    assert outcome.reason.startswith(
        "could not start: the API server cannot be reached ("
    )


TOKEN = "glpat-Zq8cXw3Rk2mN7vTa"
SECRETS = {"gitlab-token": TOKEN, "eos_key": "k3y\nwith a newline\n"}


def test_credentials_come_from_a_secret_made_before_the_job_runs(
    emulator: Emulator, tmp_path: Path
) -> None:
    job = step(tmp_path, secrets=SECRETS)

    with Controller(emulator, "succeeded") as controller:
        outcome = executor(emulator, tmp_path).run(job, lambda: False)

    assert (outcome.ok, outcome.reason) == (True, "")
    assert outcome.environment["credentials"] == ["eos_key", "gitlab-token"]
    [sent_job] = emulator.sent("jobs")
    [secret] = emulator.sent("secrets")
    name = sent_job["metadata"]["name"]
    assert sent_job["spec"]["suspend"] is True
    assert controller.secrets_at_start[name] == [f"{name}-credentials"]
    assert secret["type"] == "Opaque"
    assert secret["immutable"] is True
    assert secret["metadata"]["labels"] == sent_job["metadata"]["labels"]
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == SECRETS
    [owner] = secret["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": name,
        "uid": emulator.uids[name],
    }
    jobs = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
    secrets = f"/api/v1/namespaces/{NAMESPACE}/secrets"
    writes = [(m, p) for m, p, _ in emulator.requests() if m != "GET"]
    assert writes == [
        ("POST", jobs),
        ("POST", secrets),
        ("PATCH", f"{jobs}/{name}"),
        ("DELETE", f"{secrets}/{name}-credentials"),
    ]
    assert emulator.secrets() == []


def test_the_job_mounts_the_secret_and_holds_no_value(
    emulator: Emulator, tmp_path: Path
) -> None:
    job = step(tmp_path, secrets=SECRETS)

    with Controller(emulator, "succeeded"):
        executor(emulator, tmp_path).run(job, lambda: False)

    [sent_job] = emulator.sent("jobs")
    name = sent_job["metadata"]["name"]
    pod = sent_job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert {
        "name": "credentials",
        "mountPath": "/run/recast/credentials",
        "readOnly": True,
    } in container["volumeMounts"]
    assert {
        "name": "credentials",
        "secret": {"secretName": f"{name}-credentials", "defaultMode": 0o440},
    } in pod["volumes"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["RECAST_CREDENTIALS_DIR"] == "/run/recast/credentials"
    assert env["RECAST_CREDENTIAL_GITLAB_TOKEN"] == (
        "/run/recast/credentials/gitlab-token"
    )
    assert env["RECAST_CREDENTIAL_EOS_KEY"] == "/run/recast/credentials/eos_key"
    every_job_request = b"".join(
        r.body for r in emulator.handler if "/jobs" in r.url.path
    )
    assert TOKEN.encode() not in every_job_request
    assert b"k3y" not in every_job_request
    [stored] = emulator.jobs()
    assert TOKEN not in repr(stored)


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [("failed", ""), ("deadline", "timed out after 60 s")],
)
def test_the_secret_is_deleted_when_the_step_fails(
    emulator: Emulator, tmp_path: Path, outcome: str, reason: str
) -> None:
    with Controller(emulator, outcome, exit_code=2):
        ended = executor(emulator, tmp_path).run(
            step(tmp_path, secrets=SECRETS), lambda: False
        )

    assert (ended.ok, ended.reason) == (False, reason)
    assert len(emulator.sent("secrets")) == 1
    assert emulator.secrets() == []


def test_cancel_deletes_the_job_and_its_secret(
    emulator: Emulator, tmp_path: Path
) -> None:
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()

    with Controller(emulator, "running"):
        outcome = executor(emulator, tmp_path).run(
            step(tmp_path, secrets=SECRETS), cancel.is_set
        )

    assert outcome.reason == "cancelled"
    assert emulator.jobs() == []
    assert emulator.secrets() == []
    deletes = [path for method, path, _ in emulator.requests() if method == "DELETE"]
    assert [path.split("/")[-2] for path in deletes] == ["jobs", "secrets"]


def test_a_refused_secret_leaves_no_job_behind(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.handler["post", re.compile(r".*/secrets$")] << 403

    outcome = executor(emulator, tmp_path).run(
        step(tmp_path, secrets=SECRETS), lambda: False
    )

    assert outcome.reason == "could not start: the API server answered 403 Forbidden"
    assert emulator.jobs() == []
    assert emulator.secrets() == []


def test_the_secret_sent_is_the_manifest_the_backend_writes(
    emulator: Emulator, tmp_path: Path
) -> None:
    job = step(tmp_path, secrets=SECRETS)

    with Controller(emulator, "succeeded"):
        executor(emulator, tmp_path).run(job, lambda: False)

    [secret] = emulator.sent("secrets")
    name = secret["metadata"]["ownerReferences"][0]["name"]
    uid = secret["metadata"]["ownerReferences"][0]["uid"]
    assert secret == secret_manifest(
        name, job, Limits(4096, 1), config(tmp_path), owner_uid=uid
    )


def test_a_job_that_cannot_be_let_run_is_deleted_with_its_secret(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.handler["patch", re.compile(r".*/jobs/[^/]+$")] << 500

    outcome = executor(emulator, tmp_path).run(
        step(tmp_path, secrets=SECRETS), lambda: False
    )

    assert outcome.reason == (
        "could not start: the API server answered 500 Internal Server Error"
    )
    assert len(emulator.sent("secrets")) == 1
    assert emulator.jobs() == []
    assert emulator.secrets() == []
