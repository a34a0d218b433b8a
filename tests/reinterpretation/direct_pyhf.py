"""An independent computation of CLs and limits, straight from pyhf, for the
tests to compare the platform's numbers against. Runs inside the step
environment (pyhf is not in the platform's): python direct_pyhf.py BKG SIGNAL."""

import json
import sys

import pyhf

pyhf.set_backend("numpy")
with open(sys.argv[1]) as handle:
    bkgonly = json.load(handle)
with open(sys.argv[2]) as handle:
    signal = json.load(handle)
workspace = pyhf.Workspace(bkgonly)
model = workspace.model(
    patches=[signal["patch"]],
    modifier_settings={
        "normsys": {"interpcode": "code4"},
        "histosys": {"interpcode": "code4p"},
    },
)
data = workspace.data(model)
observed, expected = pyhf.infer.hypotest(
    1.0, data, model, test_stat="qtilde", return_expected_set=True
)
limit_obs, limit_exp = pyhf.infer.intervals.upper_limits.toms748_scan(
    data, model, 0.05, 10.0, level=0.05, rtol=1e-10, atol=1e-12, test_stat="qtilde"
)
json.dump(
    {
        "cls_obs": float(observed),
        "cls_exp": [float(v) for v in expected],
        "mu_up_obs": float(limit_obs),
        "mu_up_exp": [float(v) for v in limit_exp],
    },
    sys.stdout,
)
