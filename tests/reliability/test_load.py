"""Load: 200 concurrent submissions from 20 users against the real server
(gunicorn on PostgreSQL, runs queued on Redis). Each is accepted or cleanly
throttled (429 with Retry-After) and then retried with its Idempotency-Key;
none is lost and none is duplicated."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from django.contrib.auth.models import User

from recast.accounts.services import token_create
from recast.catalogue.models import Analysis
from recast.reinterpretation.models import Request, Run
from tests.reliability.processes import (
    broker_url,
    require_services,
    service_env,
    start_server,
    stop,
)

pytestmark = [pytest.mark.slow, pytest.mark.services]
USERS, PER_USER, CLIENTS = 20, 10, 50
BROKER_DB = 13  # nothing consumes it: the runs stay queued
PATCHES = ["stop_450_0", "stop_450_100", "stop_550_0", "stop_550_100", "stop_650_0"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def server(transactional_db: None, demo: Analysis, tmp_path: Path) -> Iterator[str]:
    require_services()
    broker = broker_url(BROKER_DB)
    env = service_env(broker)
    # Tight enough that 20 users sending 10 submits at once are throttled.
    env.update(RECAST_THROTTLE_USER="4/second", RECAST_THROTTLE_ADDRESS="1000/second")
    process, url = start_server(env, tmp_path / "server.log")
    yield url
    stop(process)
    redis.Redis.from_url(broker).flushdb()


def submit_until_accepted(
    url: str, token: str, patch: str, key: str, seen: Counter[str]
) -> dict[str, Any]:
    """Submit; on 429 wait as told and send the same submit again."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    body = {"analysis": "demo-stop-1l", "patches": [patch]}
    for _ in range(200):
        answer = requests.post(
            f"{url}/api/v1/requests/", json=body, headers=headers, timeout=60
        )
        seen[str(answer.status_code)] += 1
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) >= 0
            assert answer.json()["code"] == "throttled"
            time.sleep(min(float(answer.headers["Retry-After"]), 2.0))
            continue
        assert answer.status_code in (200, 201), answer.text
        return {"key": key, "id": answer.json()["id"], "status": answer.status_code}
    raise AssertionError(f"submit {key} was never accepted")


def test_concurrent_submissions_are_accepted_or_throttled_and_none_lost(
    server: str,
) -> None:
    tokens = [token_create(User.objects.create_user(f"u{i}"))[1] for i in range(USERS)]
    jobs = [
        (tokens[u], PATCHES[n % len(PATCHES)], f"{u}-{n}-{uuid.uuid4()}")
        for u in range(USERS)
        for n in range(PER_USER)
    ]
    seen: Counter[str] = Counter()
    started = time.monotonic()

    with ThreadPoolExecutor(CLIENTS) as pool:
        accepted = list(
            pool.map(lambda job: submit_until_accepted(server, *job, seen), jobs)
        )
        # A client that lost the answer sends again: the key returns the same request.
        replayed = list(
            pool.map(lambda job: submit_until_accepted(server, *job, seen), jobs[:40])
        )

    ids = [a["id"] for a in accepted]
    assert len(set(ids)) == len(jobs)  # none duplicated
    assert Request.objects.count() == len(jobs)  # none lost
    assert Run.objects.count() == len(jobs)
    assert [r["id"] for r in replayed] == ids[:40]
    assert all(r["status"] == 200 for r in replayed)
    assert set(seen) <= {"200", "201", "429"}
    report(seen, time.monotonic() - started)


def report(seen: Counter[str], seconds: float) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    figures = {
        "submissions": USERS * PER_USER,
        "users": USERS,
        "clients": CLIENTS,
        "answers": dict(seen),
        "seconds": round(seconds, 1),
    }
    (ARTIFACTS / "load.json").write_text(json.dumps(figures, indent=1))
