"""Credentials for private inputs, end to end: stored encrypted, handed to the
step only while it runs, and found nowhere afterwards (archive, work folder,
step cache, logs, API answers, any database column)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.test import APIClient

from recast.catalogue.services import catalogue_load
from recast.credentials.models import Credential, CredentialUse
from recast.reinterpretation import execution
from recast.reinterpretation.models import Request, Run, Step
from tests.api.conftest import client_for, error

WORKFLOWS = Path(__file__).parent / "workflows"
ANALYSIS = "private-input"
TOKEN = "eos-token-Zq7Lr2Vb9Xw4"  # made up


@pytest.fixture
def private(db: None) -> None:
    [outcome] = catalogue_load(WORKFLOWS, [ANALYSIS])
    assert outcome.error is None, outcome.error


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice")


@pytest.fixture
def as_alice(alice: User) -> APIClient:
    return client_for(alice)


def stored(client: APIClient, name: str = "private-token", value: str = TOKEN) -> Any:
    return client.post(
        "/api/v1/credentials/", {"name": name, "value": value}, format="json"
    )


def submit(client: APIClient, **extra: Any) -> Any:
    body = {"analysis": ANALYSIS, "inputs": {"label": "run-1"}, **extra}
    return client.post("/api/v1/requests/", body, format="json")


def run_of(answer: Any) -> str:
    return str(Run.objects.get(request_id=answer.json()["id"]).id)


def files_holding(folder: Path, needle: bytes) -> list[str]:
    return [
        str(path)
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes()
    ]


def database_rows_holding(needle: str) -> list[str]:
    """Every row of every table, as text, that holds ``needle``."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (table names from the schema itself)
            found += [table for row in cursor.fetchall() if needle in repr(row)]
    return found


def test_a_credential_is_stored_encrypted_and_listed_without_its_value(
    as_alice: APIClient,
) -> None:
    created = stored(as_alice)
    listed = as_alice.get("/api/v1/credentials/")

    assert created.status_code == 201
    assert set(created.json()) == {"name", "description", "created_at"}
    assert [c["name"] for c in listed.json()] == ["private-token"]
    assert TOKEN not in created.content.decode() + listed.content.decode()
    ciphertext = Credential.objects.get().ciphertext
    assert TOKEN not in ciphertext and ciphertext.startswith("gAAAA")
    assert database_rows_holding(TOKEN) == []


@pytest.mark.usefixtures("private")
def test_a_step_gets_the_credential_while_it_runs_and_it_is_found_nowhere_after(
    as_alice: APIClient,
    queued: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stored(as_alice)
    answer = submit(as_alice, credentials=["private-token"])
    assert answer.status_code == 201, answer.content
    run_id = run_of(answer)

    with caplog.at_level(logging.DEBUG):
        status = execution.run_execute(run_id)

    run = Run.objects.get(id=run_id)
    assert status == "succeeded", run.error
    archive = Path(run.archive_path)
    # The step saw the value: it published its sha256.
    digest = (archive / "outputs" / "fetch" / "token.sha256").read_text().strip()
    assert digest == hashlib.sha256(TOKEN.encode()).hexdigest()
    # Its folder is gone, and its log shows the name, not the value.
    handed = (archive / "outputs" / "fetch" / "credentials_dir.txt").read_text()
    assert not Path(handed.strip()).exists()
    log = (archive / "logs" / "fetch.log").read_text()
    assert log == ("fetching run-1 with token [credential private-token redacted]\n")
    # Nowhere: archive, work folders, step cache, platform logs, the
    # database, API answers.
    for folder in (archive, settings.RECAST_WORK_DIR, settings.RECAST_STEP_CACHE_DIR):
        assert files_holding(Path(folder), TOKEN.encode()) == [], folder
    assert TOKEN not in caplog.text
    assert database_rows_holding(TOKEN) == []
    answers = [
        as_alice.get(f"/api/v1/requests/{run.request_id}/"),
        as_alice.get(f"/api/v1/runs/{run_id}/"),
        as_alice.get(f"/api/v1/runs/{run_id}/logs/fetch/"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(TOKEN.encode() not in a.content for a in answers)
    assert "[credential private-token redacted]" in answers[2].content.decode()
    # The record names the credential; the step was not cached.
    record = json.loads((archive / "run.json").read_text())
    fetch = next(s for s in record["steps"] if s["name"] == "fetch")
    assert fetch["environment"]["credentials"] == ["private-token"]
    assert fetch["environment"]["isolation"] == "bwrap"
    assert fetch["cache"] == {}
    assert Step.objects.get(run=run, name="fetch").cache_key == ""


@pytest.mark.usefixtures("private")
def test_a_step_without_credentials_sees_none(
    as_alice: APIClient, queued: list[str]
) -> None:
    stored(as_alice)
    run_id = run_of(submit(as_alice))

    status = execution.run_execute(run_id)

    run = Run.objects.get(id=run_id)
    assert status == "failed"
    assert run.error == (
        "step fetch failed with exit code 1:\ncat: '': No such file or directory"
    )


@pytest.mark.usefixtures("private")
def test_a_credential_deleted_before_the_run_fails_it_with_a_clear_reason(
    as_alice: APIClient, queued: list[str]
) -> None:
    stored(as_alice)
    run_id = run_of(submit(as_alice, credentials=["private-token"]))
    assert as_alice.delete("/api/v1/credentials/private-token/").status_code == 204

    status = execution.run_execute(run_id)

    assert status == "failed"
    assert Run.objects.get(id=run_id).error == (
        "the request's credential private-token was deleted before its steps ran; "
        "add it again and resubmit"
    )


@pytest.mark.usefixtures("private")
@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        (
            ["nope"],
            "$.credentials[0]: you have no credential named 'nope' (add it with "
            "`recast credentials add` or POST /api/v1/credentials/)",
        ),
        (
            ["private-token", "bobs-token"],
            "$.credentials[1]: you have no credential named 'bobs-token' (add it "
            "with `recast credentials add` or POST /api/v1/credentials/)",
        ),
        ({"name": "x"}, "$.credentials: must be a list of credential names"),
        (
            ["Bad Name"],
            "$.credentials[0]: a credential's name is 1 to 64 lower-case letters, "
            "digits, '-' or '_', starting with a letter or digit",
        ),
        (
            ["private-token", "private-token"],
            "$.credentials: a credential is named twice",
        ),
    ],
)
def test_a_request_naming_a_credential_it_may_not_use_is_refused(
    as_alice: APIClient, queued: list[str], credentials: Any, message: str
) -> None:
    stored(as_alice)
    stored(client_for(User.objects.create_user("bob")), "bobs-token")

    answer = submit(as_alice, credentials=credentials)

    assert error(answer) == (400, "invalid", message)
    assert (Request.objects.count(), CredentialUse.objects.count()) == (0, 0)
    assert queued == []


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"name": "ok-name"}, 400, "$.value: This field is required."),
        (
            {"name": "ok-name", "value": "short"},
            400,
            "$.value: must be a string of 8 to 16384 characters",
        ),
        (
            {"name": "ok-name", "value": " padded-token "},
            400,
            "$.value: must not start or end with white space or hold a NUL",
        ),
        (
            {"name": "../etc", "value": TOKEN},
            400,
            "$.name: a credential's name is 1 to 64 lower-case letters, digits, "
            "'-' or '_', starting with a letter or digit",
        ),
        (
            {"name": "private-token", "value": TOKEN + "2"},
            409,
            "$.name: you have a credential named 'private-token' already; delete "
            "it first to replace it",
        ),
    ],
)
def test_a_bad_credential_is_refused_naming_the_field_and_nothing_is_stored(
    as_alice: APIClient, body: dict[str, str], status: int, message: str
) -> None:
    stored(as_alice)

    answer = as_alice.post("/api/v1/credentials/", body, format="json")

    assert error(answer)[0::2] == (status, message)
    assert list(Credential.objects.values_list("name", flat=True)) == ["private-token"]
    assert TOKEN not in answer.content.decode()


def test_a_user_cannot_see_or_delete_another_users_credential(
    as_alice: APIClient,
) -> None:
    stored(as_alice)
    as_bob = client_for(User.objects.create_user("bob"))

    assert as_bob.get("/api/v1/credentials/").json() == []
    assert error(as_bob.delete("/api/v1/credentials/private-token/")) == (
        404,
        "not_found",
        "you have no credential named 'private-token'",
    )
    assert Credential.objects.count() == 1


def test_credentials_need_a_signed_in_user(db: None) -> None:
    assert APIClient().get("/api/v1/credentials/").status_code in (401, 403)
