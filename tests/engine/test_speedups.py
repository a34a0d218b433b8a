"""The engine's memoised compilers give what the libraries give; a spec that
passed validation is not validated again, one that fails, fails every time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jq
import jsonpath_rw
import pytest

from recast.engine import runner  # noqa: F401 (importing the engine applies them)
from recast.engine.speedups import validated_once


def test_a_jq_program_is_compiled_once_and_gives_the_same_paths_in_threads() -> None:
    document = {"a": [{"b": "x"}, {"b": "y"}], "c": "z"}
    program = 'paths(type=="string")'

    with ThreadPoolExecutor(8) as pool:
        found = list(
            pool.map(
                lambda _: jq.jq(program).transform(document, multiple_output=True),
                range(200),
            )
        )

    assert jq.jq(program) is jq.jq(program)
    assert found == [[["a", 0, "b"], ["a", 1, "b"], ["c"]]] * 200


def test_a_jsonpath_is_parsed_once_and_finds_the_same_values() -> None:
    first = jsonpath_rw.parse("stages[*].name")

    values = [m.value for m in first.find({"stages": [{"name": "a"}, {"name": "b"}]})]

    assert jsonpath_rw.parse("stages[*].name") is first
    assert values == ["a", "b"]


def test_a_spec_that_passed_is_validated_once_and_a_bad_one_every_time() -> None:
    calls: list[Any] = []

    def validate(data: Any) -> None:
        calls.append(data)
        if data.get("bad"):
            raise ValueError("bad spec")

    checked = validated_once(validate)
    checked({"stages": [1]})
    checked({"stages": [1]})
    assert len(calls) == 1
    checked({"stages": [2]})  # another spec is validated
    assert len(calls) == 2

    for _ in range(2):
        with pytest.raises(ValueError, match="bad spec"):
            checked({"bad": True})
    assert len(calls) == 4
