"""Pages of a list: the total is right whether the page showed it or a count
query had to, and the count query is run only when the page cannot tell."""

from __future__ import annotations

import pytest

from recast.catalogue.models import Analysis
from tests.api.conftest import client_for
from tests.api.test_queries import statements

SLUGS = ["page-a", "page-b", "page-c"]


@pytest.fixture
def three(db: None) -> list[Analysis]:
    return [
        Analysis.objects.create(
            slug=slug, title=slug, collaboration="ATLAS", input_schema={}
        )
        for slug in SLUGS
    ]


@pytest.mark.parametrize(
    ("query", "slugs", "counted"),
    [
        ("", SLUGS, False),
        ("?limit=2", SLUGS[:2], True),
        ("?limit=2&offset=2", SLUGS[2:], False),
        ("?limit=3", SLUGS, True),
        ("?offset=3", [], True),
        ("?offset=9", [], True),
    ],
)
def test_the_total_is_the_same_whether_a_page_shows_it_or_a_count_does(
    three: list[Analysis], query: str, slugs: list[str], counted: bool
) -> None:
    client = client_for(None)

    with statements() as seen:
        page = client.get(f"/api/v1/analyses/{query}").json()

    assert page["count"] == len(SLUGS)
    assert [a["slug"] for a in page["results"]] == slugs
    assert any("COUNT(" in sql for sql in seen) is counted


@pytest.mark.django_db
def test_an_empty_catalogue_is_a_page_of_none_without_a_count() -> None:
    with statements() as seen:
        page = client_for(None).get("/api/v1/analyses/").json()

    assert (page["count"], page["results"], page["next"]) == (0, [], None)
    assert len(seen) == 1
