"""The Kubernetes backend: each step runs as one batch/v1 Job.

The Job's pod mounts the run's folder from the workspace PersistentVolumeClaim
(the one the worker keeps RECAST_VAR_DIR on) at the same path as on the
worker: read-only, with only the step's output folder writable. It runs as a
non-root user with a read-only root filesystem, every capability dropped and
the RuntimeDefault seccomp profile, within resource limits and a deadline. The
executor follows the Job by watching it, copies the pod's log into the step's
log, and deletes the Job when the run is cancelled.

A step that needs credentials gets them from a Secret of its own, made for its
Job alone and mounted read-only where the Docker backend mounts them. The Job
is created suspended, the Secret then with the Job as its owner (so that
Kubernetes collects it if the worker dies), and only then is the Job let run;
the worker deletes the Secret itself as soon as the step ends, however it
ends. The values are in the Secret alone: never in the Job, the pod's
environment, the step's record or its log.

This backend has been exercised against an in-memory API emulator and its
manifests validated against the Kubernetes OpenAPI schemas; it has not run
against a live cluster here.
"""

from __future__ import annotations

import base64
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3.exceptions
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from recast.engine import credentials
from recast.engine.events import CancelCheck, StepJob, StepOutcome
from recast.engine.limits import Limits, step_limits
from recast.engine.local import SINGLE_THREAD, now

logger = logging.getLogger(__name__)

# The container's own private scratch space, never the host's /tmp.
STEP_TMP = "/tmp"  # noqa: S108

STEP_UID = 1000
CONTAINER = "step"
WATCH_SECONDS = 5
# The Job's deadline is the step's; the worker waits a little longer before
# it gives up on hearing the Job's own verdict.
DEADLINE_GRACE_SECONDS = 60
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
LABEL_PREFIX = "recast.io"
MANAGED_BY = {"app.kubernetes.io/managed-by": "recast"}
CREDENTIALS_MOUNT = credentials.CONTAINER_FOLDER
# The kubelet makes a Secret volume's files root's, in the pod's fsGroup: the
# step (STEP_UID, in group STEP_UID) reads them through the group bits alone.
CREDENTIALS_MODE = 0o440


@dataclass(frozen=True)
class KubernetesConfig:
    namespace: str = ""
    workspace_claim: str = "recast-workspace"
    workspace_root: Path = Path("/var/lib/recast")
    registry: str = ""
    ttl_seconds: int = 600
    backoff_limit: int = 0
    labels: dict[str, str] = field(default_factory=dict)


class CannotStart(Exception):
    """The API server refused the Job, or the run folder is off the claim."""


def label_value(text: str) -> str:
    """A label value: at most 63 characters of [A-Za-z0-9_.-], alphanumeric ends."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.") or "x"


def job_name(step: str) -> str:
    """A unique DNS-1123 name: recast-<step>-<random>."""
    stem = re.sub(r"[^a-z0-9-]+", "-", step.lower()).strip("-")[:40] or "step"
    return f"recast-{stem}-{uuid.uuid4().hex[:10]}"


def relative(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise CannotStart(
            f"{path} is not on the workspace claim (under {root}; set "
            "RECAST_K8S_WORKSPACE_ROOT to where the claim is mounted)"
        ) from None


def secret_name(job_name: str) -> str:
    """The name of the Secret that holds the credentials of Job ``job_name``."""
    return f"{job_name}-credentials"


def step_labels(
    job: StepJob, limits: Limits, config: KubernetesConfig
) -> dict[str, str]:
    return {
        **MANAGED_BY,
        "app.kubernetes.io/component": "step",
        f"{LABEL_PREFIX}/step": label_value(job.name),
        f"{LABEL_PREFIX}/network": "true" if limits.network else "false",
        **{k: label_value(v) for k, v in config.labels.items()},
    }


def secret_manifest(
    name: str,
    job: StepJob,
    limits: Limits,
    config: KubernetesConfig,
    namespace: str = "",
    owner_uid: str = "",
) -> dict[str, Any]:
    """The v1 Secret that holds ``job``'s credentials for Job ``name`` (owned
    by it when ``owner_uid`` is given): one key per credential, as the file
    the step reads."""
    metadata: dict[str, Any] = {
        "name": secret_name(name),
        "namespace": namespace or config.namespace or "default",
        "labels": step_labels(job, limits, config),
    }
    if owner_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": owner_uid}
        ]
    encoded = {
        key: base64.b64encode(value.encode()).decode()
        for key, value in job.credentials.items()
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        # Nothing may change what a running step was handed.
        "immutable": True,
        "data": encoded,
    }


def job_manifest(
    name: str,
    job: StepJob,
    limits: Limits,
    rundir: Path,
    config: KubernetesConfig,
    namespace: str = "",
) -> dict[str, Any]:
    """The batch/v1 Job that runs ``job`` in ``namespace`` (config's if not
    given): a plain dict, as sent to the API. A step with credentials gets a
    suspended Job that mounts their Secret (see secret_manifest)."""
    labels = step_labels(job, limits, config)
    resources = {"cpu": str(limits.cpus), "memory": f"{limits.memory_mb}Mi"}
    mounts = [
        {
            "name": "workspace",
            "mountPath": str(rundir),
            "subPath": relative(str(rundir), config.workspace_root),
            "readOnly": True,
        },
        {
            "name": "workspace",
            "mountPath": job.workdir,
            "subPath": relative(job.workdir, config.workspace_root),
        },
        {"name": "tmp", "mountPath": STEP_TMP},
    ]
    volumes: list[dict[str, Any]] = [
        {
            "name": "workspace",
            "persistentVolumeClaim": {"claimName": config.workspace_claim},
        },
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    if job.credentials:
        mounts.append(
            {"name": "credentials", "mountPath": CREDENTIALS_MOUNT, "readOnly": True}
        )
        secret = {"secretName": secret_name(name), "defaultMode": CREDENTIALS_MODE}
        volumes.append({"name": "credentials", "secret": secret})
    environment = {
        "HOME": STEP_TMP,
        "TMPDIR": STEP_TMP,
        "MPLCONFIGDIR": STEP_TMP,
        "LANG": "C.UTF-8",
        **SINGLE_THREAD,
        **job.env,
        # The files' paths, never their contents.
        **credentials.variables(job.credentials, CREDENTIALS_MOUNT),
    }
    container = {
        "name": CONTAINER,
        "image": f"{config.registry}{job.image}:{job.tag}",
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", job.command],
        "workingDir": job.workdir,
        "env": [{"name": k, "value": v} for k, v in environment.items()],
        "resources": {"requests": resources, "limits": resources},
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": STEP_UID,
            "runAsGroup": STEP_UID,
            "fsGroup": STEP_UID,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    # Held until its Secret exists: no pod ever waits for a missing volume.
    suspend = {"suspend": True} if job.credentials else {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace or config.namespace or "default",
            "labels": labels,
        },
        "spec": {
            "backoffLimit": config.backoff_limit,
            "activeDeadlineSeconds": job.timeout,
            "ttlSecondsAfterFinished": config.ttl_seconds,
            **suspend,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def verdict(status: dict[str, Any] | None) -> str:
    """``succeeded``, ``failed`` or ``deadline`` once the Job has ended, else ''."""
    for condition in (status or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "succeeded"
        if condition.get("type") == "Failed":
            return (
                "deadline"
                if condition.get("reason") == "DeadlineExceeded"
                else ("failed")
            )
    return ""


def default_namespace() -> str:
    if IN_CLUSTER_NAMESPACE.exists():
        return IN_CLUSTER_NAMESPACE.read_text().strip()
    return "default"


def api_client() -> k8s.ApiClient:
    """In a pod, its service account; elsewhere the kubeconfig (KUBECONFIG)."""
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()
    return k8s.ApiClient()


class KubernetesExecutor:
    name = "kubernetes"

    def __init__(
        self,
        images: dict[str, dict[str, Any]],
        rundir: Path,
        config: KubernetesConfig,
        memory_mb: int = 4096,
        cpus: int = 1,
        client: k8s.ApiClient | None = None,
    ) -> None:
        self.images = images
        self.rundir = rundir
        self.config = config
        self.memory_mb, self.cpus = memory_mb, cpus
        self._client = client
        self.namespace = config.namespace

    def connect(self) -> k8s.ApiClient:
        if self._client is None:
            self._client = api_client()
        if not self.namespace:
            self.namespace = default_namespace()
        return self._client

    def run(self, job: StepJob, cancelled: CancelCheck) -> StepOutcome:
        started = now()
        limits = step_limits(job.resources, self.memory_mb, self.cpus)
        name = job_name(job.name)
        try:
            client = self.connect()
            self.start(client, name, job, limits)
        except CannotStart as exc:
            return StepOutcome(None, started, now(), f"could not start: {exc}")
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            return StepOutcome(
                None, started, now(), f"could not start: {api_reason(exc)}"
            )
        logger.info("step %s: Job %s/%s created", job.name, self.namespace, name)

        try:
            return self.conclude(client, name, job, started, cancelled)
        finally:
            # However the step ended: its Job's owner reference would have
            # the Secret collected too, but only once the Job is gone.
            self.take_back(client, name, job)

    def start(
        self, client: k8s.ApiClient, name: str, job: StepJob, limits: Limits
    ) -> None:
        """Create the step's Job; for a step with credentials, suspended until
        their Secret (owned by the Job) exists. Whatever was made is deleted
        again if a later part fails."""
        manifest = job_manifest(
            name, job, limits, self.rundir, self.config, self.namespace
        )
        batch = k8s.BatchV1Api(client)
        # The client sends a dict body as it is: no model round trip.
        created = batch.create_namespaced_job(
            self.namespace,
            manifest,  # type: ignore[arg-type]
        )
        if not job.credentials:
            return
        try:
            uid = (created.metadata and created.metadata.uid) or ""
            if not uid:
                raise CannotStart(f"the API server gave Job {name} no uid")
            secret = secret_manifest(
                name, job, limits, self.config, self.namespace, uid
            )
            k8s.CoreV1Api(client).create_namespaced_secret(
                self.namespace,
                secret,  # type: ignore[arg-type]
            )
            batch.patch_namespaced_job(
                name, self.namespace, {"spec": {"suspend": False}}
            )
        except BaseException:
            self.delete(client, name)
            self.take_back(client, name, job)
            raise

    def conclude(
        self,
        client: k8s.ApiClient,
        name: str,
        job: StepJob,
        started: str,
        cancelled: CancelCheck,
    ) -> StepOutcome:
        """Follow the started Job to its end and say how the step ended."""
        ended = self.follow(client, name, job.timeout, cancelled)
        if ended == "cancelled":
            self.delete(client, name)
            return StepOutcome(
                None, started, now(), "cancelled", self.record(job, name)
            )
        pod = self.pod_of(client, name)
        self.save_log(client, pod, job.log_path)
        reason = {
            "deadline": f"timed out after {job.timeout} s",
            "lost": "was lost: the Job gave no verdict in time",
        }.get(ended, "")
        if reason:
            self.delete(client, name)
        return StepOutcome(
            exit_code(pod) if not reason else None,
            started,
            now(),
            reason,
            self.record(job, name, pod),
        )

    def follow(
        self, client: k8s.ApiClient, name: str, timeout: int, cancelled: CancelCheck
    ) -> str:
        """Watch the Job until it ends; 'cancelled' or 'lost' if we stop first."""
        batch = k8s.BatchV1Api(client)
        deadline = time.monotonic() + timeout + DEADLINE_GRACE_SECONDS
        stream = watch.Watch()
        while time.monotonic() < deadline:
            if cancelled():
                return "cancelled"
            try:
                for event in stream.stream(
                    batch.list_namespaced_job,
                    self.namespace,
                    field_selector=f"metadata.name={name}",
                    timeout_seconds=WATCH_SECONDS,
                    _request_timeout=WATCH_SECONDS + 1,
                ):
                    seen = client.sanitize_for_serialization(event["object"])
                    if seen.get("metadata", {}).get("name") != name:
                        continue
                    ended = verdict(seen.get("status"))
                    if ended:
                        return ended
                    if cancelled():
                        return "cancelled"
            except (urllib3.exceptions.HTTPError, ApiException) as exc:
                # A quiet watch times out on the client side; start another.
                logger.debug("watch of Job %s ended: %s", name, exc)
        return "lost"

    def pod_of(self, client: k8s.ApiClient, name: str) -> dict[str, Any]:
        pods = k8s.CoreV1Api(client).list_namespaced_pod(
            self.namespace, label_selector=f"job-name={name}"
        )
        mine = [
            client.sanitize_for_serialization(pod)
            for pod in pods.items
            if pod.metadata and (pod.metadata.labels or {}).get("job-name") == name
        ]
        return mine[-1] if mine else {}

    def save_log(self, client: k8s.ApiClient, pod: dict[str, Any], path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pod_name = pod.get("metadata", {}).get("name")
        if not pod_name:
            text = "recast: the Job left no pod to read the log of\n"
        else:
            try:
                text = k8s.CoreV1Api(client).read_namespaced_pod_log(
                    pod_name, self.namespace, container=CONTAINER
                )
            except ApiException as exc:
                text = f"recast: the pod's log could not be read: {api_reason(exc)}\n"
        with open(path, "a") as log:
            log.write(text)

    def delete(self, client: k8s.ApiClient, name: str) -> None:
        """Delete the Job and, with it, its pods (which stops a running step)."""
        try:
            k8s.BatchV1Api(client).delete_namespaced_job(
                name, self.namespace, propagation_policy="Background"
            )
        except ApiException as exc:
            if exc.status != 404:
                logger.warning("Job %s could not be deleted: %s", name, api_reason(exc))
        except urllib3.exceptions.HTTPError as exc:
            logger.warning("Job %s could not be deleted: %s", name, api_reason(exc))

    def take_back(self, client: k8s.ApiClient, name: str, job: StepJob) -> None:
        """Delete the Secret of Job ``name``'s credentials, if it has any; one
        that cannot be deleted now goes when the Job does (its owner)."""
        if not job.credentials:
            return
        secret = secret_name(name)
        try:
            k8s.CoreV1Api(client).delete_namespaced_secret(secret, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                logger.warning(
                    "Secret %s could not be deleted: %s", secret, api_reason(exc)
                )
        except urllib3.exceptions.HTTPError as exc:
            logger.warning(
                "Secret %s could not be deleted: %s", secret, api_reason(exc)
            )

    def record(
        self, job: StepJob, name: str, pod: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or [{}]
        return {
            "backend": self.name,
            "image": f"{self.config.registry}{job.image}:{job.tag}",
            "image_id": statuses[0].get("imageID", ""),
            "recipe_sha256": (self.images.get(job.image) or {}).get("recipe_sha256"),
            "namespace": self.namespace,
            "job": name,
            **credentials.record(job.credentials),
        }


def exit_code(pod: dict[str, Any]) -> int | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if status.get("name") == CONTAINER and terminated:
            return int(terminated.get("exitCode"))
    return None


def api_reason(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"the API server answered {exc.status} {exc.reason}"
    return f"the API server cannot be reached ({exc})"
