"""A finished request is archived with its points' archives and its result table."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from recast.archive.builder import archive_verify, archive_write
from recast.catalogue.models import Analysis
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import Request, Run
from recast.reinterpretation.services import (
    request_cancel,
    request_submit,
    run_start,
    run_succeed,
)
from tests.api.conftest import client_for
from tests.conftest import DEMO, WORKFLOWS

REFERENCE = json.loads((WORKFLOWS / DEMO / "reference.json").read_text())


def finish(run: Run) -> None:
    """Finish a run through the services, with a small archive of its own."""
    attempt = run_start(str(run.id), "local")
    assert attempt is not None
    target = Path(settings.RECAST_ARCHIVE_DIR) / str(run.id)
    digest = archive_write(
        target, {}, {"result.json": {**REFERENCE, "point": run.point}}
    )
    run_succeed(
        str(run.id), attempt, {**REFERENCE, "point": run.point}, str(target), digest
    )


@pytest.fixture
def scan(demo: Analysis) -> Request:
    points = [
        check_point(demo, {"patch": name}) for name in ("stop_450_0", "stop_550_0")
    ]
    return request_submit(
        demo, points, owner=User.objects.create_user("owner"), enqueue_runs=False
    )


def test_the_last_point_to_finish_archives_the_request(scan: Request) -> None:
    for run in scan.runs.order_by("point"):
        finish(run)

    scan.refresh_from_db()
    archive = Path(scan.archive_path)
    rows = list(csv.DictReader(io.StringIO((archive / "results.csv").read_text())))
    record = json.loads((archive / "request.json").read_text())
    linked = archive / "points" / "stop_450_0" / "result.json"

    assert scan.status == "succeeded"
    assert archive_verify(archive) == []
    assert [r["point"] for r in rows] == ["stop_450_0", "stop_550_0"]
    assert record["counts"]["succeeded"] == 2
    assert (
        linked.stat().st_nlink == 2
    )  # shared with the point's own archive, not copied


def test_a_cancelled_request_is_archived_with_what_finished(scan: Request) -> None:
    finish(scan.runs.get(point="stop_450_0"))

    request_cancel(scan)

    scan.refresh_from_db()
    archive = Path(scan.archive_path)
    assert scan.status == "cancelled"  # one point succeeded, the other was stopped
    assert sorted(p.name for p in (archive / "points").iterdir()) == ["stop_450_0"]


def test_the_api_serves_the_request_archive(scan: Request) -> None:
    for run in scan.runs.all():
        finish(run)

    response = client_for(scan.owner).get(f"/api/v1/requests/{scan.id}/archive/")
    with tarfile.open(fileobj=io.BytesIO(b"".join(response.streaming_content))) as tar:
        names = tar.getnames()

    assert response.status_code == 200
    assert f"{scan.id}/results.csv" in names
    assert f"{scan.id}/points/stop_550_0/manifest.json" in names
