"""The step cache, on the engine with the local executor and a three-step spec."""

from __future__ import annotations

import copy
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from recast.catalogue.loader import load_spec, recipe_sha256
from recast.engine import cache as step_cache
from recast.engine import runner
from recast.engine.cache import StepCache
from recast.engine.events import CancelCheck, StepEvent, StepJob, StepOutcome
from recast.engine.local import LocalExecutor

SPECS = Path(__file__).with_name("specs")


class CountingExecutor(LocalExecutor):
    """The local executor, counting the steps it really runs."""

    def __init__(self, envs_dir: Path, images: dict[str, dict[str, Any]]) -> None:
        super().__init__(envs_dir, images)
        self.ran: list[str] = []

    def run(self, job: StepJob, cancelled: CancelCheck) -> StepOutcome:
        self.ran.append(job.name)
        return super().run(job, cancelled)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    recipe = tmp_path_factory.mktemp("recipe")
    (recipe / "requirements.txt").write_text("# nothing beyond the standard library\n")
    image = {
        "name": "test/plain",
        "tag": "1",
        "recipe": str(recipe),
        "recipe_sha256": recipe_sha256(recipe),
    }
    return {"test/plain": image}


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs")


@pytest.fixture
def executor(envs: Path, images: dict[str, dict[str, Any]]) -> CountingExecutor:
    return CountingExecutor(envs, images)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec(SPECS / "three-steps", "workflow.yml", "three-steps")


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Any]:
    source = tmp_path / "inputs" / "source.txt"
    extras = tmp_path / "inputs" / "extras"
    extras.mkdir(parents=True)
    source.write_text("one line\n")
    (extras / "a.txt").write_text("a\nb\n")
    return {"source": str(source), "extras": f"{extras}/*.txt"}


def execute(
    spec: dict[str, Any],
    init: dict[str, Any],
    folder: Path,
    executor: LocalExecutor,
    cache: StepCache | None,
) -> runner.Outcome:
    events: list[StepEvent] = []
    return runner.execute(
        spec,
        init,
        folder / "workflow",
        executor,
        events.append,
        lambda: False,
        60,
        cache,
    )


def cache_in(tmp_path: Path, producer: str, max_bytes: int = 10**9) -> StepCache:
    return StepCache(tmp_path / "cache", max_bytes, producer, roots=())


def finished(outcome: runner.Outcome) -> list[StepEvent]:
    return [e for e in outcome.steps if e.kind == "finished"]


def test_an_identical_run_in_another_folder_reuses_every_step(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    executor: CountingExecutor,
    tmp_path: Path,
) -> None:
    first = execute(spec, inputs, tmp_path / "a", executor, cache_in(tmp_path, "A"))
    executor.ran.clear()

    second = execute(spec, inputs, tmp_path / "b", executor, cache_in(tmp_path, "B"))

    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert executor.ran == []
    events = finished(second)
    assert [(e.name, e.cache["hit"], e.cache["producer"]) for e in events] == [
        ("copy", True, "A"),
        ("double", True, "A"),
        ("count", True, "A"),
    ]
    assert [e.cache["key"] for e in events] == [e.cache["key"] for e in finished(first)]
    count = tmp_path / "b" / "workflow" / "count" / "count.txt"
    assert second.outputs("count") == {"count": str(count)}
    assert count.read_text().strip() == "4"
    log = (tmp_path / "b" / "workflow" / "_recast" / "logs" / "copy.log").read_text()
    key = events[0].cache["key"]
    assert log == (
        f"recast: reused from cache entry {key}, first produced by run A\ncopied\n"
    )


def test_a_changed_input_file_runs_the_steps_that_read_it_again(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    executor: CountingExecutor,
    tmp_path: Path,
) -> None:
    execute(spec, inputs, tmp_path / "a", executor, cache_in(tmp_path, "A"))
    executor.ran.clear()
    Path(inputs["source"]).write_text("another line\n")

    execute(spec, inputs, tmp_path / "b", executor, cache_in(tmp_path, "B"))

    assert executor.ran == ["copy", "double", "count"]


def test_a_file_matched_by_a_glob_parameter_is_part_of_the_key(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    executor: CountingExecutor,
    tmp_path: Path,
) -> None:
    execute(spec, inputs, tmp_path / "a", executor, cache_in(tmp_path, "A"))
    executor.ran.clear()
    extras = Path(inputs["extras"]).parent
    (extras / "b.txt").write_text("c\n")

    outcome = execute(spec, inputs, tmp_path / "b", executor, cache_in(tmp_path, "B"))

    assert executor.ran == ["count"]
    assert Path(outcome.outputs("count")["count"]).read_text().strip() == "5"


def test_a_failed_run_resumes_from_its_last_good_step(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    executor: CountingExecutor,
    tmp_path: Path,
) -> None:
    broken = copy.deepcopy(spec)
    count = broken["stages"][2]["scheduler"]["step"]["process"]
    count["cmd"] = "no-such-command {doubled} > {outdir}/count.txt"
    failed = execute(broken, inputs, tmp_path / "a", executor, cache_in(tmp_path, "A"))
    executor.ran.clear()

    fixed = execute(spec, inputs, tmp_path / "b", executor, cache_in(tmp_path, "B"))

    assert (failed.status, failed.failed_step) == ("failed", "count")
    assert fixed.status == "succeeded"
    assert executor.ran == ["count"]
    assert [(e.name, e.cache["hit"]) for e in finished(fixed)] == [
        ("copy", True),
        ("double", True),
        ("count", False),
    ]


def test_a_failed_step_is_never_stored(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    executor: CountingExecutor,
    tmp_path: Path,
) -> None:
    broken = copy.deepcopy(spec)
    count = broken["stages"][2]["scheduler"]["step"]["process"]
    count["cmd"] = "exit 3"

    for folder in ("a", "b"):
        execute(broken, inputs, tmp_path / folder, executor, cache_in(tmp_path, "A"))

    assert executor.ran == ["copy", "double", "count", "count"]
    entries = list((tmp_path / "cache" / "entries").iterdir())
    assert len(entries) == 2


def test_without_a_cache_every_step_runs(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    executor: CountingExecutor,
    tmp_path: Path,
) -> None:
    for folder in ("a", "b"):
        outcome = execute(spec, inputs, tmp_path / folder, executor, None)

    assert executor.ran == ["copy", "double", "count"] * 2
    assert all(e.cache == {} for e in outcome.steps)


def test_two_workers_with_the_same_key_run_the_step_once(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    executor: CountingExecutor,
    tmp_path: Path,
) -> None:
    slow = copy.deepcopy(spec)
    first = slow["stages"][0]["scheduler"]["step"]["process"]
    first["cmd"] = "sleep 1 && " + first["cmd"]

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(
            pool.map(
                lambda name: execute(
                    slow, inputs, tmp_path / name, executor, cache_in(tmp_path, name)
                ),
                ["a", "b"],
            )
        )

    assert [o.status for o in outcomes] == ["succeeded", "succeeded"]
    assert sorted(executor.ran) == ["copy", "count", "double"]


def test_the_least_recently_used_entries_go_beyond_the_size_limit(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    executor: CountingExecutor,
    tmp_path: Path,
) -> None:
    outcome = execute(spec, inputs, tmp_path / "a", executor, cache_in(tmp_path, "A"))
    keys = [e.cache["key"] for e in finished(outcome)]
    entries = tmp_path / "cache" / "entries"
    sizes = [
        json.loads((entries / key / "entry.json").read_text())["bytes"] for key in keys
    ]
    for age, key in zip((30, 10, 20), keys, strict=True):
        stamp = time.time() - age
        os.utime(entries / key / "entry.json", (stamp, stamp))

    evicted = step_cache.evict(cache_in(tmp_path, "A", max_bytes=sum(sizes) - sizes[0]))

    assert evicted == [keys[0]]
    assert sorted(p.name for p in entries.iterdir()) == sorted(keys[1:])


def test_outputs_larger_than_the_limit_are_not_stored(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    executor: CountingExecutor,
    tmp_path: Path,
) -> None:
    outcome = execute(
        spec, inputs, tmp_path / "a", executor, cache_in(tmp_path, "A", max_bytes=10)
    )

    assert outcome.status == "succeeded"
    assert [e.cache["stored"] for e in finished(outcome)] == [True, False, True]


def test_a_changed_entry_is_dropped_and_its_step_runs_again(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    executor: CountingExecutor,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcome = execute(spec, inputs, tmp_path / "a", executor, cache_in(tmp_path, "A"))
    key = finished(outcome)[0].cache["key"]
    stored = tmp_path / "cache" / "entries" / key / "outputs" / "copied.txt"
    stored.chmod(0o644)
    stored.write_text("tampered\n")
    executor.ran.clear()

    again = execute(spec, inputs, tmp_path / "b", executor, cache_in(tmp_path, "B"))

    assert executor.ran == ["copy"]
    assert Path(again.outputs("copy")["copied"]).read_text() == "one line\n"
    assert (
        f"cache entry {key}: copied.txt changed since it was stored; "
        "dropping the entry" in caplog.text
    )


def test_a_half_written_entry_is_never_found_and_swept_after_a_day(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    executor: CountingExecutor,
    tmp_path: Path,
) -> None:
    cache = cache_in(tmp_path, "A")
    outcome = execute(spec, inputs, tmp_path / "a", executor, cache)
    key = finished(outcome)[0].cache["key"]
    # What a writer that crashed before its rename leaves behind.
    crashed = tmp_path / "cache" / "tmp" / f"{key}-crashed"
    (crashed / "outputs").mkdir(parents=True)
    step_cache.entry_remove(cache.entries / key)

    assert step_cache.entry_find(cache, key) is None
    step_cache.evict(cache)
    assert crashed.exists()  # it could still be a writer at work
    a_day_ago = time.time() - 25 * 3600
    os.utime(crashed, (a_day_ago, a_day_ago))
    step_cache.evict(cache)
    assert not crashed.exists()


def test_an_executor_that_cannot_name_its_image_runs_every_step(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    envs: Path,
    images: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> None:
    class Unnamed(CountingExecutor):
        def image_identity(self, image: str, tag: str) -> str | None:
            return None

    executor = Unnamed(envs, images)

    for folder in ("a", "b"):
        execute(spec, inputs, tmp_path / folder, executor, cache_in(tmp_path, "A"))

    assert executor.ran == ["copy", "double", "count"] * 2


def test_a_restore_that_fails_halfway_leaves_nothing_linked(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    executor: CountingExecutor,
    tmp_path: Path,
) -> None:
    cache = cache_in(tmp_path, "A")
    outcome = execute(spec, inputs, tmp_path / "a", executor, cache)
    entry = step_cache.entry_find(cache, finished(outcome)[1].cache["key"])
    assert entry is not None
    workdir = tmp_path / "b" / "double"
    workdir.mkdir(parents=True)
    (workdir / "sub").write_text("a file where the entry has a folder\n")
    job = StepJob(
        name="double",
        command="",
        image="test/plain",
        tag="1",
        workdir=str(workdir),
        readonly=[],
        log_path=str(tmp_path / "b" / "double.log"),
    )

    restored = step_cache.entry_restore(entry, job)

    assert restored is False
    assert sorted(p.name for p in workdir.iterdir()) == ["sub"]
    assert step_cache.entry_find(cache, entry.key) is not None
