"""experiments/ssm_vs_gtf_deer/run.py runs end to end in its smoke mode."""

import math
import os

import pytest

from test_examples import run_experiment


@pytest.mark.slow
def test_ssm_vs_gtf_deer_smoke(tmp_path):
    rows = {r["model"]: r for r in run_experiment("ssm_vs_gtf_deer", "--out", tmp_path)}
    assert {"GTF-DEER shPLRNN", "SSM (LRU + MLP)", "true (floor)"} <= set(rows), rows
    for name in ("GTF-DEER shPLRNN", "SSM (LRU + MLP)"):
        r = rows[name]
        assert r["system"] == "lorenz63"
        assert all(math.isfinite(r[k]) for k in ("dstsp", "dh", "pe", "lyap")), r
        assert r["dstsp"] >= 0 and 0 <= r["dh"] <= 1 and r["pe"] >= 0
    assert os.path.isfile(tmp_path / "results.json")
    assert os.path.isfile(tmp_path / "free_runs.png")
