"""The engine's memoised compilers give what the libraries give."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import jq
import jsonpath_rw

from recast.engine import runner  # noqa: F401 (importing the engine applies them)


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
