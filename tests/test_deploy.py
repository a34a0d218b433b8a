"""deploy/: each Kustomize overlay renders with kubectl and every object is
valid against the Kubernetes schemas; the worker's Role is as narrow as the
backend needs; compose.yaml is a valid Compose file; .env.example lists every
setting."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

DEPLOY = REPO / "deploy"
OVERLAYS = ["dev", "prod"]
NAMESPACES = {"dev": "recast-dev", "prod": "recast"}


def render(overlay: str, tmp_path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a copy of deploy/k8s (prod's secrets.env made
    from its example, as an operator would)."""
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not installed (.ci/run installs it)")
    copy = tmp_path / "k8s"
    shutil.copytree(DEPLOY / "k8s", copy)
    example = copy / "overlays" / "prod" / "secrets.env.example"
    shutil.copy(example, example.with_name("secrets.env"))
    done = subprocess.run(
        ["kubectl", "kustomize", str(copy / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    )
    (tmp_path / f"{overlay}.yaml").write_text(done.stdout)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for item in objects:
        template = item.get("spec", {}).get("template", {})
        if "spec" in template:
            found.append((item["metadata"]["name"], template["spec"]))
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_the_overlay_is_valid(
    overlay: str, tmp_path: Path, kubernetes_validate: Any
) -> None:
    objects = render(overlay, tmp_path)

    code, output = kubernetes_validate(tmp_path / f"{overlay}.yaml")

    assert code == 0, output
    assert output.count(" passed for resource ") == len(objects)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_has_the_whole_platform_in_its_namespace(
    overlay: str, tmp_path: Path
) -> None:
    objects = render(overlay, tmp_path)

    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {
        ("Deployment", "recast-web"),
        ("Service", "recast-web"),
        ("Ingress", "recast-web"),
        ("Deployment", "recast-worker"),
        ("HorizontalPodAutoscaler", "recast-worker"),
        ("Deployment", "recast-beat"),
        ("Job", "recast-migrate"),
        ("ConfigMap", "recast-settings"),
        ("PersistentVolumeClaim", "recast-workspace"),
        ("ServiceAccount", "recast-worker"),
        ("Role", "recast-steps"),
        ("RoleBinding", "recast-steps"),
        ("NetworkPolicy", "default-deny"),
    } <= kinds
    assert any(kind == "Secret" for kind, _ in kinds)
    namespaced = [o for o in objects if o["kind"] != "Namespace"]
    assert {o["metadata"]["namespace"] for o in namespaced} == {NAMESPACES[overlay]}


def test_the_workers_role_allows_only_jobs_pods_logs_and_writing_secrets(
    tmp_path: Path,
) -> None:
    objects = render("prod", tmp_path)

    [role] = [o for o in objects if o["kind"] in ("Role", "ClusterRole")]
    assert role["kind"] == "Role"
    assert role["rules"] == [
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["create", "get", "list", "watch", "patch", "delete"],
        },
        # A step's credentials: the worker can never read a Secret back.
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]
    [binding] = [o for o in objects if o["kind"] == "RoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "recast-worker", "namespace": "recast"}
    ]


def test_every_platform_pod_meets_the_restricted_pod_security_standard(
    tmp_path: Path,
) -> None:
    objects = render("prod", tmp_path)

    for name, spec in pod_specs(objects):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {
            "type": "RuntimeDefault"
        }, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert container["resources"]["limits"], name
    namespace = next(o for o in objects if o["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "restricted"
    )


def test_prod_runs_the_image_of_its_registry_on_the_kubernetes_backend(
    tmp_path: Path,
) -> None:
    objects = render("prod", tmp_path)

    images = {c["image"] for _, spec in pod_specs(objects) for c in spec["containers"]}
    assert images == {"registry.example.org/recast/platform:0.1.0"}
    settings = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    assert settings["RECAST_BACKEND"] == "kubernetes"
    assert settings["RECAST_K8S_REGISTRY"] == "registry.example.org/"


def test_compose_is_a_valid_compose_file_with_the_worker_on_docker() -> None:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed (.ci/run installs it)")
    env = DEPLOY / ".env"
    created = not env.exists()
    if created:
        shutil.copy(DEPLOY / ".env.example", env)
    try:
        done = subprocess.run(
            ["docker-compose", "-f", str(DEPLOY / "compose.yaml"), "config"],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        if created:
            env.unlink()

    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    assert services["worker"]["environment"]["RECAST_BACKEND"] == "docker"
    assert any("docker.sock" in str(v) for v in services["worker"]["volumes"])
    assert services["web"]["read_only"] is True
    assert services["web"]["cap_drop"] == ["ALL"]


def test_env_example_lists_every_setting() -> None:
    source = (REPO / "recast" / "settings.py").read_text()
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', source))
    listed = set(
        re.findall(r"^([A-Z0-9_]+)=", (DEPLOY / ".env.example").read_text(), re.M)
    )

    assert read - listed == set()
