import cProfile
import pstats
import time
from pathlib import Path

from recast.catalogue import loader
from recast.catalogue.services import analysis_load
from recast.reinterpretation import execution
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.services import request_submit
from recast.storage.services import blob_store

W = Path("/work/recast-bench/benchmarks/workflows")


def test_profile(db, settings):
    analysis, _, _ = analysis_load(loader.read_entry(W / "three-steps", W))
    blob = blob_store((W / "three-steps/example/result.json").read_bytes())

    def one(i):
        point = check_point(
            analysis, {"message": f"m{i}", "result": f"sha256:{blob.sha256}"}
        )
        req = request_submit(analysis, [point], enqueue_runs=False, use_cache=False)
        run = req.runs.get()
        t = time.perf_counter()
        s = execution.run_execute(str(run.id))
        return s, time.perf_counter() - t

    print(one(-1))
    print([one(i) for i in range(3)])
    p = cProfile.Profile()
    p.enable()
    for i in range(5):
        one(10 + i)
    p.disable()
    pstats.Stats(p).sort_stats("cumulative").print_stats(
        "recast/|yadage|packtivity|subprocess.py.*(communicate|wait|_execute_child)|sleep|rocrate|prov",
        70,
    )
