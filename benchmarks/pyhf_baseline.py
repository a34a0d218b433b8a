"""The baseline of bench_scan: a plain pyhf loop (numpy backend, as a user
would write it) over some points, run inside the step environment:
python pyhf_baseline.py BKGONLY OUT SIGNAL...; writes CLs and seconds per point."""

import json
import sys
import time
import warnings

import pyhf

warnings.simplefilter("ignore", RuntimeWarning)
pyhf.set_backend("numpy")
with open(sys.argv[1]) as handle:
    bkgonly = json.load(handle)
points = {}
for path in sys.argv[3:]:
    started = time.monotonic()
    with open(path) as handle:
        signal = json.load(handle)
    workspace = pyhf.Workspace(bkgonly)
    model = workspace.model(
        patches=[signal["patch"]],
        modifier_settings={
            "normsys": {"interpcode": "code4"},
            "histosys": {"interpcode": "code4p"},
        },
    )
    observed, expected = pyhf.infer.hypotest(
        1.0, workspace.data(model), model, test_stat="qtilde", return_expected_set=True
    )
    points[signal["metadata"]["name"]] = {
        "cls_obs": float(observed),
        "cls_exp": [float(v) for v in expected],
        "seconds": time.monotonic() - started,
    }
with open(sys.argv[2], "w") as handle:
    json.dump(points, handle)
