"""experiments/sequence_length: a smoke run of run.py."""

import numpy as np
import pytest

from test_examples import run_experiment


@pytest.mark.slow
def test_run_smoke(tmp_path):
    res = run_experiment("sequence_length", "--out", tmp_path)
    assert [r["T"] for r in res["rows"]] == [100, 1000]   # the smoke lengths
    for r in res["rows"]:  # D_stsp and D_H of each model: finite numbers
        assert np.isfinite(r["dstsp"]) and r["dstsp"] >= 0.0 and 0.0 <= r["dh"] <= 1.0
        assert r["bursts"]["duration"] > 0
    assert np.isfinite(res["floor"]["dstsp"]) and np.isfinite(res["floor"]["dh"])
    assert res["truth"]["n_bursts"] >= 3 and np.isfinite(res["truth"]["ibi_mean"])
    assert (tmp_path / "results.json").exists() and (tmp_path / "table.md").exists()
