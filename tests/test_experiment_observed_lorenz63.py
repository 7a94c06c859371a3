"""experiments/observed_lorenz63: a smoke run of run.py (on every backend)."""

import numpy as np
import pytest
from test_examples import experiment_module


def _experiment():
    return experiment_module("observed_lorenz63")


@pytest.mark.slow
def test_run_smoke(tmp_path):
    res = _experiment().main(["--smoke", "--seeds", "0", "--out", str(tmp_path)])
    rows = res["rows"]
    assert sorted((r["part"], r["seed"]) for r in rows) == [("a", 0), ("b", 0)]
    for r in rows:
        assert r["train_s"] > 0 and r["lyap_true"] == pytest.approx(0.9056)
        assert not np.isnan(r["lyap"])  # a diverged free run: inf
        for key in ("scores", "floors"):
            for space in ("embedded", "recorded"):
                assert set(r[key][space]) == {"dstsp", "dh"}
                assert all(v >= 0 and not np.isnan(v) for v in r[key][space].values())
        assert all(np.isfinite(v) for v in r["floors"]["embedded"].values())
    a = next(r for r in rows if r["part"] == "a")
    assert 2 <= a["dim"] <= 6 and a["lag"] > 1   # x delay-embedded
    text = (tmp_path / "RESULTS.md").read_text()
    assert (tmp_path / "results.json").is_file()
    assert "Command: `KERAS_BACKEND=" in text and "observed_lorenz63/run.py --smoke" in text
    assert text.count("\n| 0 |") == 2 and text.count("\n| median |") == 2
    assert "CPU cores" in text and "| met |" in text
