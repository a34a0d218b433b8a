"""A whole run of the demo on the local backend records the CPU time of each
of its steps, and the owner's usage adds it up (slow: real fits)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from recast.catalogue.models import Analysis
from recast.quotas.models import CpuUsage
from recast.quotas.selectors import usage_for
from recast.reinterpretation import execution
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.services import request_submit

pytestmark = pytest.mark.slow


def test_each_step_of_a_run_records_its_cpu_time(demo: Analysis) -> None:
    alice = User.objects.create_user("alice")
    point = check_point(demo, {"patch": "stop_650_100"})
    run = request_submit(demo, [point], owner=alice, enqueue_runs=False).runs.get()

    assert execution.run_execute(str(run.id)) == "succeeded"

    run.refresh_from_db()
    steps = set(run.steps.values_list("name", flat=True))
    usage = {u.step: u.cpu_seconds for u in CpuUsage.objects.filter(run=run)}
    assert set(usage) == steps
    assert all(seconds > 0 for seconds in usage.values())
    assert usage_for(alice)["cpu_seconds"] == pytest.approx(sum(usage.values()))
    archived = json.loads((Path(run.archive_path) / "run.json").read_text())
    assert {s["name"]: s["cpu_seconds"] for s in archived["steps"]} == usage
