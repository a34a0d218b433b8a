"""Security headers on every response, and a clean deployment check."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from rest_framework.test import APIClient

from tests.conftest import REPO


@pytest.mark.parametrize(
    "path", ["/api/v1/analyses/", "/api/v1/docs/", "/accounts/login/"]
)
def test_every_page_carries_the_security_headers(db: None, path: str) -> None:
    response = APIClient().get(path)

    policy = response["Content-Security-Policy"]
    assert response.status_code == 200
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"


def test_the_api_docs_need_no_inline_script(db: None) -> None:
    page = APIClient().get("/api/v1/docs/").content.decode()

    assert "<script>" not in page.replace(" ", "")


def test_the_deployment_check_is_clean_on_production_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "RECAST_PRODUCTION": "true",
        "RECAST_SECRET_KEY": "k" * 30 + "Q9#x" * 10,
        "RECAST_CREDENTIALS_KEYS": "zJ0wH3bqN1aQ2sV5xK8mP4rT7uY9cE6fG0hL3nB5dW8=",
        "RECAST_ALLOWED_HOSTS": "recast.example",
        "RECAST_VAR_DIR": str(tmp_path),
    }

    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "manage.py"),
            "check",
            "--deploy",
            "--fail-level",
            "WARNING",
        ],
        env=env,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECAST_SECRET_KEY")}
    env.update(RECAST_PRODUCTION="true", RECAST_VAR_DIR=str(tmp_path))

    done = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "check"],
        env=env,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 1
    assert "RECAST_SECRET_KEY must be set" in done.stderr
