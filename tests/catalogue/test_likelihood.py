"""`recast catalogue add-likelihood`: a published likelihood becomes an analysis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recast.catalogue.likelihood import likelihood_add
from recast.catalogue.models import Analysis
from recast.core.errors import InvalidInput
from tests.conftest import DEMO, SHARED_DATA, WORKFLOWS

DATA = WORKFLOWS / DEMO / "data"
ATLAS = SHARED_DATA / "atlas-1lbb"


@pytest.mark.django_db
def test_it_registers_a_likelihood_under_the_generic_workflow() -> None:
    analysis, version = likelihood_add(
        "copy-of-demo",
        DATA / "BkgOnly.json",
        DATA / "patchset.json",
        title="Copy",
        inspire=1755298,
        hepdata_doi="10.17182/hepdata.90607",
    )

    assert analysis.kind == "public-likelihood"
    assert analysis.example_inputs == {"patch": "stop_450_0"}
    assert analysis.references == {
        "inspire": 1755298,
        "hepdata": {"record": "ins1755298", "doi": "10.17182/hepdata.90607"},
    }
    assert [s["name"] for s in version.spec["stages"]] == [
        "patch",
        "fit",
        "summarise",
        "plot",
    ]


@pytest.mark.django_db
@pytest.mark.skipif(
    not ATLAS.exists(), reason="the shared ATLAS likelihood is not on this machine"
)
def test_it_registers_the_published_atlas_1lbb_likelihood() -> None:
    analysis, _ = likelihood_add(
        "atlas-1lbb",
        ATLAS / "BkgOnly.json",
        ATLAS / "patchset.json",
        collaboration="ATLAS",
    )

    assert analysis.collaboration == "ATLAS"
    assert analysis.example_inputs["patch"].startswith("C1N2_Wh_hbb_")


@pytest.mark.django_db
def test_a_patchset_for_another_workspace_is_refused(tmp_path: Path) -> None:
    patchset = json.loads((DATA / "patchset.json").read_text())
    patchset["metadata"]["digests"]["sha256"] = "0" * 64
    (tmp_path / "patchset.json").write_text(json.dumps(patchset))

    with pytest.raises(InvalidInput) as caught:
        likelihood_add("other", DATA / "BkgOnly.json", tmp_path / "patchset.json")

    assert caught.value.message == (
        "patchset.json: $.metadata.digests.sha256: this patchset was made for "
        "another workspace"
    )
    assert not Analysis.objects.exists()


@pytest.mark.django_db
def test_a_file_that_is_not_a_workspace_is_refused(tmp_path: Path) -> None:
    (tmp_path / "BkgOnly.json").write_text('{"channels": []}')

    with pytest.raises(InvalidInput) as caught:
        likelihood_add("other", tmp_path / "BkgOnly.json")

    assert caught.value.message == (
        "BkgOnly.json: not a pyhf workspace (it needs channels, observations, "
        "measurements, version)"
    )


@pytest.mark.django_db
def test_a_bad_slug_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        likelihood_add("Not A Slug", DATA / "BkgOnly.json")

    assert (
        caught.value.message
        == "--slug: 'Not A Slug' is not a slug (a-z, 0-9 and -, at most 100)"
    )
