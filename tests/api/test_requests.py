"""Submitting, reading and cancelling requests through the API."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from recast.catalogue.models import Analysis
from recast.reinterpretation.models import Request, Run
from tests.api.conftest import client_for, error
from tests.conftest import DEMO, WORKFLOWS

EXAMPLE = WORKFLOWS / DEMO / "example" / "stop_650_100.json"
# Real commits: runs are queued only once their request is committed.
pytestmark = pytest.mark.django_db(transaction=True)


def submit(client: APIClient, body: dict, **kwargs) -> object:  # type: ignore[no-untyped-def, type-arg]
    return client.post("/api/v1/requests/", body, format="json", **kwargs)


def test_a_scan_by_glob_creates_one_queued_run_per_patch(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    response = submit(as_alice, {"analysis": DEMO, "scan": "stop_450_*"})

    body = response.json()
    assert response.status_code == 201
    assert body["is_scan"] is True
    assert body["status"] == "queued"
    assert [r["point"] for r in body["runs"]] == [
        "stop_450_0",
        "stop_450_100",
        "stop_450_200",
    ]
    assert body["runs"][1]["model_parameters"] == {"m_stop": 450, "m_lsp": 100}
    assert body["counts"]["queued"] == 3
    assert sorted(queued) == sorted(r["id"] for r in body["runs"])


def test_patches_by_name_make_a_scan(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    response = submit(
        as_alice, {"analysis": DEMO, "patches": ["stop_550_0", "stop_650_100"]}
    )

    assert response.status_code == 201
    assert len(queued) == 2


def test_an_uploaded_signal_file_makes_one_point(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    with EXAMPLE.open("rb") as signal:
        response = as_alice.post(
            "/api/v1/requests/",
            {"analysis": DEMO, "signal": signal},
            format="multipart",
        )

    assert response.status_code == 201
    assert [r["point"] for r in response.json()["runs"]] == ["stop_650_100"]


def test_an_uploaded_patchset_makes_a_scan_of_all_its_patches(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    with (WORKFLOWS / DEMO / "data" / "patchset.json").open("rb") as patchset:
        response = as_alice.post(
            "/api/v1/requests/",
            {"analysis": DEMO, "patchset": patchset},
            format="multipart",
        )

    assert response.status_code == 201
    assert len(response.json()["runs"]) == 19


def test_an_earlier_upload_can_be_used_by_its_sha256(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    with EXAMPLE.open("rb") as signal:
        uploaded = as_alice.post(
            "/api/v1/uploads/", {"file": signal}, format="multipart"
        ).json()

    response = submit(
        as_alice,
        {"analysis": DEMO, "inputs": {"signal": f"sha256:{uploaded['sha256']}"}},
    )

    assert response.status_code == 201
    assert (
        response.json()["runs"][0]["inputs"]["signal"] == f"sha256:{uploaded['sha256']}"
    )


def test_a_repeated_upload_is_stored_once(as_alice: APIClient) -> None:
    first = as_alice.post(
        "/api/v1/uploads/", {"file": io.BytesIO(b"[1]")}, format="multipart"
    ).json()
    second = as_alice.post(
        "/api/v1/uploads/", {"file": io.BytesIO(b"[1]")}, format="multipart"
    ).json()

    assert first == second


def test_two_sources_at_once_are_refused_and_nothing_is_stored(
    demo: Analysis, as_alice: APIClient
) -> None:
    response = submit(
        as_alice, {"analysis": DEMO, "scan": "*", "patches": ["stop_450_0"]}
    )

    assert error(response) == (
        400,
        "invalid",
        "give exactly one of inputs, points, patches, scan, signal, patchset (got "
        "patches, scan)",
    )
    assert not Request.objects.exists()


def test_cache_false_makes_a_request_that_reuses_no_step(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    default = submit(as_alice, {"analysis": DEMO, "patches": ["stop_450_0"]})
    with EXAMPLE.open("rb") as signal:
        uncached = as_alice.post(
            "/api/v1/requests/",
            {"analysis": DEMO, "signal": signal, "cache": "false"},
            format="multipart",
        )

    assert default.json()["cache"] is True
    assert uncached.status_code == 201
    assert uncached.json()["cache"] is False
    assert Request.objects.get(id=uncached.json()["id"]).use_cache is False


def test_a_cache_flag_that_is_no_boolean_is_refused_and_nothing_is_stored(
    demo: Analysis, as_alice: APIClient
) -> None:
    response = submit(
        as_alice, {"analysis": DEMO, "patches": ["stop_450_0"], "cache": "sometimes"}
    )

    assert error(response) == (400, "invalid", "$.cache: must be true or false")
    assert not Request.objects.exists()


def test_a_glob_matching_nothing_is_refused(
    demo: Analysis, as_alice: APIClient
) -> None:
    assert error(submit(as_alice, {"analysis": DEMO, "scan": "sbottom_*"})) == (
        400,
        "invalid",
        "$.scan: no patch of 'demo-stop-1l' matches 'sbottom_*'",
    )


def test_a_bad_point_in_a_list_is_named_by_its_index(
    demo: Analysis, as_alice: APIClient
) -> None:
    points = [{"inputs": {"patch": "stop_450_0"}}, {"inputs": {"patch": "nope"}}]

    status, code, message = error(
        submit(as_alice, {"analysis": DEMO, "points": points})
    )

    assert (status, code) == (400, "invalid")
    assert message.startswith("$.points[1]: $.patch: no patch named 'nope'")
    assert not Run.objects.exists()


def test_an_unknown_analysis_is_a_404(db: None, as_alice: APIClient) -> None:
    assert error(submit(as_alice, {"analysis": "nothing-here", "scan": "*"})) == (
        404,
        "not_found",
        "no analysis 'nothing-here' in the catalogue (see `recast catalogue ls`)",
    )


def test_an_oversized_upload_is_a_413_stating_the_limit(
    demo: Analysis, as_alice: APIClient, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.UPLOAD_MAX_BYTES = 100
    big = io.BytesIO(b"[" + b" " * 200 + b"]")

    response = as_alice.post(
        "/api/v1/requests/", {"analysis": DEMO, "signal": big}, format="multipart"
    )

    assert error(response) == (
        413,
        "too_large",
        "$.signal: the file is 202 bytes; the limit is 100 bytes",
    )


def test_malformed_json_is_a_400(as_alice: APIClient) -> None:
    response = as_alice.post(
        "/api/v1/requests/", "{not json", content_type="application/json"
    )

    status, code, message = error(response)
    assert (status, code) == (400, "parse_error")
    assert message.startswith("JSON parse error")


def test_anonymous_submission_is_a_401(demo: Analysis) -> None:
    assert error(submit(APIClient(), {"analysis": DEMO, "scan": "*"})) == (
        401,
        "not_authenticated",
        "Authentication credentials were not provided.",
    )


def test_a_revoked_token_is_refused(demo: Analysis, alice: User) -> None:
    client = client_for(alice)
    alice.api_tokens.update(revoked_at="2020-01-01T00:00:00Z")

    assert error(client.get("/api/v1/requests/")) == (
        401,
        "authentication_failed",
        "the token is unknown, expired or revoked",
    )


def test_results_come_as_json_and_csv_with_model_parameters(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    created = submit(
        as_alice, {"analysis": DEMO, "patches": ["stop_450_0", "stop_550_100"]}
    ).json()
    run = Run.objects.get(point="stop_450_0")
    run.status, run.result = (
        "succeeded",
        json.loads((WORKFLOWS / DEMO / "reference.json").read_text()),
    )
    run.save()

    as_json = as_alice.get(f"/api/v1/requests/{created['id']}/results/").json()
    as_csv = as_alice.get(f"/api/v1/requests/{created['id']}/results/?as=csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode())))

    assert [r["point"] for r in as_json["results"]] == ["stop_450_0", "stop_550_100"]
    assert as_csv["Content-Type"] == "text/csv; charset=utf-8"
    assert rows[0]["m_stop"] == "450" and rows[0]["status"] == "succeeded"
    assert float(rows[0]["cls_obs"]) == run.result["cls_obs"]
    assert rows[1]["cls_obs"] == "" and rows[1]["status"] == "queued"


def test_cancel_stops_every_unfinished_run(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    created = submit(as_alice, {"analysis": DEMO, "scan": "stop_850_*"}).json()

    response = as_alice.post(f"/api/v1/requests/{created['id']}/cancel/")
    again = as_alice.post(f"/api/v1/requests/{created['id']}/cancel/")

    assert response.json() == {"cancelled": 4}
    assert (
        as_alice.get(f"/api/v1/requests/{created['id']}/").json()["status"]
        == "cancelled"
    )
    assert error(again) == (
        409,
        "conflict",
        f"request {created['id']} has already cancelled",
    )


@pytest.mark.parametrize("path", ["", "results/"])
def test_another_users_request_is_a_404(
    demo: Analysis, as_alice: APIClient, bob: User, queued: list[str], path: str
) -> None:
    created = submit(as_alice, {"analysis": DEMO, "scan": "stop_850_0"}).json()

    response = client_for(bob).get(f"/api/v1/requests/{created['id']}/{path}")

    assert error(response) == (404, "not_found", f"no request {created['id']} of yours")


def test_staff_see_every_request(
    demo: Analysis, as_alice: APIClient, staff: User, queued: list[str]
) -> None:
    created = submit(as_alice, {"analysis": DEMO, "scan": "stop_850_0"}).json()

    listed = client_for(staff).get("/api/v1/requests/").json()

    assert [r["id"] for r in listed["results"]] == [created["id"]]


def test_one_point_reads_as_json_and_csv(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    created = submit(as_alice, {"analysis": DEMO, "patches": ["stop_450_0"]}).json()
    run_id = created["runs"][0]["id"]

    as_json = as_alice.get(f"/api/v1/runs/{run_id}/").json()
    as_csv = as_alice.get(f"/api/v1/runs/{run_id}/?as=csv").content.decode()

    assert (as_json["point"], as_json["status"], as_json["result"]) == (
        "stop_450_0",
        "queued",
        None,
    )
    assert as_csv.splitlines()[1].startswith("stop_450_0,queued,450,0,")
