"""Exports of a finished request, each checked by the validator of its target:
CAP's ATLAS deposit schemas, hepdata-validator, and a citable record."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from recast.archive.exports import analyses_json, cap_problems
from recast.catalogue.models import Analysis
from recast.cli.main import cli
from recast.core.errors import Conflict, InvalidInput
from recast.reinterpretation.exports import request_export
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import Request, Run
from recast.reinterpretation.services import request_refresh, request_submit
from tests.api.conftest import client_for, error
from tests.conftest import DEMO, SHARED_DATA, WORKFLOWS

CAP_SCHEMAS = SHARED_DATA / "cap-schemas"


@pytest.fixture
def finished(demo: Analysis) -> Request:
    """A two-point request whose runs finished: the numbers are the demo's
    reference result (the format is under test here, not the physics)."""
    demo.references = {
        "inspire": 1234567,
        "arxiv": "2101.01234",
        "hepdata": {"record": "ins1234567", "doi": "10.17182/hepdata.1"},
    }
    demo.save()
    points = [
        check_point(demo, {"patch": name}) for name in ("stop_650_100", "stop_750_0")
    ]
    request = request_submit(demo, points, enqueue_runs=False)
    reference = json.loads((WORKFLOWS / DEMO / "reference.json").read_text())
    for run in request.runs.all():
        Run.objects.filter(id=run.id).update(
            status="succeeded",
            result={**reference, "point": run.point},
            archive_sha256="ab" * 32,
            finished_at=timezone.now(),
        )
    request_refresh(request.id)
    request.refresh_from_db()
    return request


@pytest.mark.skipif(
    not CAP_SCHEMAS.exists(), reason="CAP's schemas are not beside the project"
)
def test_each_point_exports_a_cap_deposit_valid_against_caps_atlas_schemas(
    finished: Request, tmp_path: Path
) -> None:
    written = request_export(finished, "cap", tmp_path)

    records = [json.loads(path.read_text()) for path in written]
    assert [p.name for p in written] == ["stop_650_100.json", "stop_750_0.json"]
    assert [cap_problems(record, CAP_SCHEMAS) for record in records] == [[], []]
    assert (
        records[0]["limits"]["CLs_obs"]
        == finished.runs.get(point="stop_650_100").result["cls_obs"]
    )
    assert records[0]["workflows"][0]["workflow"]["stages"][0]["name"] == "patch"
    assert records[0]["likelihoods"]["channels"]


@pytest.mark.skipif(
    not CAP_SCHEMAS.exists(), reason="CAP's schemas are not beside the project"
)
def test_the_cap_check_catches_a_broken_deposit(
    finished: Request, tmp_path: Path
) -> None:
    [record, _] = [
        json.loads(p.read_text()) for p in request_export(finished, "cap", tmp_path)
    ]
    del record["basic_info"]["glance_id"]
    record["limits"]["CLs_obs"] = "small"

    assert cap_problems(record, CAP_SCHEMAS) == [
        "$.basic_info: 'glance_id' is a required property",
        "$.limits.CLs_obs: 'small' is not of type 'number'",
    ]


def test_the_hepdata_export_passes_hepdata_validator(
    finished: Request, tmp_path: Path
) -> None:
    request_export(finished, "hepdata", tmp_path)

    submission = list(yaml.safe_load_all((tmp_path / "submission.yaml").read_text()))
    table = yaml.safe_load((tmp_path / "cls_and_upper_limits.yaml").read_text())
    names = [v["header"]["name"] for v in table["independent_variables"]]
    assert submission[0]["record_ids"] == [{"id": 1234567, "type": "inspire"}]
    assert names == ["m_stop", "m_lsp"]  # the patchset's order, not alphabetical
    assert table["independent_variables"][0]["values"] == [
        {"value": 650},
        {"value": 750},
    ]
    assert len(table["dependent_variables"]) == 12


def test_the_inspire_export_is_a_citable_record_with_the_papers_bibtex(
    finished: Request, tmp_path: Path
) -> None:
    request_export(finished, "inspire", tmp_path)

    record = json.loads((tmp_path / "record.json").read_text())
    bib = (tmp_path / "original.bib").read_text()
    assert record["title"].startswith("Reinterpretation of Demo: top squark")
    assert record["signal_model"]["parameters"] == ["m_stop", "m_lsp"]
    assert record["archive_sha256"] == {
        "stop_650_100": "ab" * 32,
        "stop_750_0": "ab" * 32,
    }
    assert bib.startswith("@article{recastdemo:1234567,\n")
    assert '    eprint = "2101.01234",\n' in bib


def test_an_unfinished_request_cannot_be_exported(
    demo: Analysis, tmp_path: Path
) -> None:
    request = request_submit(
        demo, [check_point(demo, {"patch": "stop_450_0"})], enqueue_runs=False
    )

    with pytest.raises(
        Conflict,
        match=f"request {request.id} is queued; export it once it has finished",
    ):
        request_export(request, "hepdata", tmp_path)


def test_an_unknown_target_is_refused(finished: Request, tmp_path: Path) -> None:
    with pytest.raises(
        InvalidInput, match=r"\$.to: must be one of cap, hepdata, inspire, not 'zenodo'"
    ):
        request_export(finished, "zenodo", tmp_path)


def test_analyses_json_lists_analyses_with_an_inspire_record() -> None:
    listed = analyses_json(
        [
            {"slug": "b", "references": {"inspire": 2}},
            {"slug": "a", "references": {"inspire": 1}},
            {"slug": "c", "references": {}},
        ],
        "https://recast.example/",
    )

    assert (
        listed["url_templates"]["main_url"]
        == "https://recast.example/api/v1/analyses/{name}/"
    )
    assert listed["analyses"] == [
        {"inspire_id": 1, "implementations": [{"name": "a"}]},
        {"inspire_id": 2, "implementations": [{"name": "b"}]},
    ]


def test_the_api_serves_an_export_as_a_tarball(
    finished: Request, tmp_path: Path
) -> None:
    client = client_for(User.objects.create_user("owner"))
    Request.objects.filter(id=finished.id).update(
        owner=User.objects.get(username="owner")
    )

    response = client.get(f"/api/v1/requests/{finished.id}/export/?to=hepdata")
    with tarfile.open(fileobj=io.BytesIO(b"".join(response.streaming_content))) as tar:
        names = sorted(tar.getnames())

    assert response.status_code == 200
    assert f"hepdata-{finished.id}/submission.yaml" in names
    assert f"hepdata-{finished.id}/cls_and_upper_limits.yaml" in names


def test_the_api_refuses_an_unknown_export_target(finished: Request) -> None:
    owner = User.objects.create_user("owner2")
    Request.objects.filter(id=finished.id).update(owner=owner)

    response = client_for(owner).get(
        f"/api/v1/requests/{finished.id}/export/?to=zenodo"
    )

    assert error(response) == (
        400,
        "invalid",
        "$.to: must be one of cap, hepdata, inspire, not 'zenodo'",
    )


def test_the_catalogue_is_served_in_hepdatas_analyses_format(finished: Request) -> None:
    listed = APIClient().get("/api/v1/analyses.json").json()

    assert listed["tool"] == "recast"
    assert listed["analyses"] == [
        {"inspire_id": 1234567, "implementations": [{"name": DEMO}]}
    ]


def test_the_cli_exports_a_local_request(finished: Request, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["export", str(finished.id), "--to", "inspire", "--output", str(tmp_path)]
    )

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["original.bib", "record.json"]
