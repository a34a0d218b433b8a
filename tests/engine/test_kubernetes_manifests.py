"""Every kind of Job the Kubernetes backend writes is valid against the
Kubernetes OpenAPI schemas (strict), and isolates the step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from recast.engine.events import StepJob
from recast.engine.kubernetes import KubernetesConfig, job_manifest, secret_manifest
from recast.engine.limits import step_limits

ROOT = Path("/var/lib/recast")
RUNDIR = ROOT / "work" / "4b0c5a4e-0d1f-4e59-a1a9-3f1f3e0e7c11-1"


def step(name: str = "fit", **options: Any) -> StepJob:
    defaults: dict[str, Any] = {
        "name": name,
        "command": "recast-pyhf fit --patched {patched} --output-dir .",
        "image": "recast/pyhf",
        "tag": "0.7.6-1",
        "workdir": str(RUNDIR / "workflow" / name),
        "readonly": [str(RUNDIR / "workflow" / "patch")],
        "log_path": str(RUNDIR / "workflow" / "_recast" / "logs" / f"{name}.log"),
        "env": {"PYHF_BACKEND": "numpy"},
        "timeout": 3600,
    }
    return StepJob(**{**defaults, **options})


CONFIG = KubernetesConfig(
    namespace="recast",
    workspace_root=ROOT,
    registry="registry.example.org/",
    labels={
        "recast.io/request": "0e6f2f0c-6a7e-4a43-9b8f-0d5f0bb9a0c2",
        "recast.io/run": "4b0c5a4e-0d1f-4e59-a1a9-3f1f3e0e7c11",
    },
)
VARIANTS = {
    "default": step(),
    "network and more memory": step(
        "download", resources=["network", {"memory_mb": 16384}, {"cpus": 4}]
    ),
    "scatter step name": step("fit_0.[3]_long-name_" + "x" * 80),
    "credentials": step(
        "fetch", credentials={"gitlab-token": "glpat-x", "eos_key": "k\n"}
    ),
}


def manifests() -> list[dict[str, Any]]:
    return [
        job_manifest(
            f"recast-{index}-0123456789",
            job,
            step_limits(job.resources, 4096, 1),
            RUNDIR,
            CONFIG,
        )
        for index, job in enumerate(VARIANTS.values())
    ]


def secrets() -> list[dict[str, Any]]:
    """The Secret of each variant with credentials, owned by its Job."""
    return [
        secret_manifest(
            f"recast-{index}-0123456789",
            job,
            step_limits(job.resources, 4096, 1),
            CONFIG,
            owner_uid="0b6f6a1e-4c7d-4f5e-9a43-2d0c8f1e7a55",
        )
        for index, job in enumerate(VARIANTS.values())
        if job.credentials
    ]


def test_every_job_and_secret_the_backend_writes_is_valid(
    kubernetes_validate: Any, tmp_path: Path
) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump_all(manifests() + secrets()))

    code, output = kubernetes_validate(path)

    assert code == 0, output
    assert output.count("passed for resource job/") == len(VARIANTS)
    assert output.count("passed for resource secret/") == 1


def test_the_validator_rejects_a_misspelled_field(
    kubernetes_validate: Any, tmp_path: Path
) -> None:
    broken = manifests()[0]
    broken["spec"]["template"]["spec"]["securityContext"]["runAsNonroot"] = True
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(broken))

    code, output = kubernetes_validate(path)

    assert code == 1
    assert "'runAsNonroot' was unexpected" in output


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_job_isolates_its_step(variant: str) -> None:
    job = VARIANTS[variant]
    manifest = job_manifest(
        "recast-fit-1", job, step_limits(job.resources, 4096, 1), RUNDIR, CONFIG
    )

    spec = manifest["spec"]
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 3600)
    assert spec["ttlSecondsAfterFinished"] == 600
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert [
        (m["mountPath"], m.get("readOnly", False)) for m in container["volumeMounts"]
    ] == [
        (str(RUNDIR), True),
        (job.workdir, False),
        ("/tmp", False),
    ] + ([("/run/recast/credentials", True)] if job.credentials else [])
    labels = manifest["metadata"]["labels"]
    assert all(len(value) <= 63 for value in labels.values())
    # The NetworkPolicies of deploy/k8s select step pods by these two labels.
    pod_labels = spec["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/component"] == "step"
    assert pod_labels["recast.io/network"] == (
        "true" if "network" in job.resources else "false"
    )
    assert labels["recast.io/run"] == "4b0c5a4e-0d1f-4e59-a1a9-3f1f3e0e7c11"


def test_a_job_with_credentials_mounts_its_secret_read_only_and_no_value() -> None:
    job = VARIANTS["credentials"]
    manifest = job_manifest(
        "recast-fit-1", job, step_limits(job.resources, 4096, 1), RUNDIR, CONFIG
    )

    pod = manifest["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert manifest["spec"]["suspend"] is True
    assert container["volumeMounts"][-1] == {
        "name": "credentials",
        "mountPath": "/run/recast/credentials",
        "readOnly": True,
    }
    # Readable by the step's group (its fsGroup) and by no one else.
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]
    assert pod["volumes"][-1]["secret"]["defaultMode"] == 0o440
    assert "glpat-x" not in yaml.safe_dump(manifest)
    assert "RECAST_CREDENTIAL_GITLAB_TOKEN" in yaml.safe_dump(manifest)
