"""experiments/lab_ecg: a smoke run of run.py on data it makes itself (every backend)."""

import json

import keras
import numpy as np
import pytest
from test_examples import experiment_module


def _experiment():
    return experiment_module("lab_ecg")


def test_floor_and_recorded_command():
    exp = _experiment()
    x = np.random.default_rng(0).normal(size=(4000, 5))
    f = exp.floor(x, x)  # a file scored against itself: both measures 0
    assert f["dstsp"] == 0.0 and f["dh"] == pytest.approx(0.0, abs=1e-12)
    g = exp.floor(x, 2 * x)
    assert g["dstsp"] > 0.1 and g["dh"] >= 0
    cmd = exp.recorded_command(["--seeds", "1", "--origin", "file:///mirror/", "--out=o"])
    assert cmd.endswith("experiments/lab_ecg/run.py --seeds 1") and "mirror" not in cmd


@pytest.mark.slow
def test_run_smoke(tmp_path):
    exp = _experiment()
    res = exp.main(["--smoke", "--seeds", "0,1", "--out", str(tmp_path)])
    assert [(r["variant"], r["seed"]) for r in res["rows"]] == [("gtf", 0), ("gtf", 1)]
    for r in res["rows"]:
        assert r["train_s"] > 0 and r["diverged"] is None and r["steps"] == 20
        assert r["final_alpha"] == pytest.approx(0.3)  # the lab's constant alpha
        assert all(np.isfinite(r[k]) and r[k] >= 0 for k in ("dstsp", "dh", "pe"))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"] == res["rows"] and set(saved["floor"]) == {"dstsp", "dh"}
    again = exp.main(["--smoke", "--seeds", "1", "--out", str(tmp_path), "--save"])
    assert len(again["rows"]) == 2  # a seed run again replaces its row
    kept = keras.saving.load_model(tmp_path / "models" / "gtf_seed1.keras", compile=False)
    assert kept.observed_dim == 5
    (tmp_path / "RESULTS.md").unlink()
    assert exp.main(["--table", "--out", str(tmp_path)])["rows"] == again["rows"]
    text = (tmp_path / "RESULTS.md").read_text()
    assert "experiments/lab_ecg/run.py --smoke --seeds 1" in text
    assert text.count("\n| median |") == 1 and "CPU cores" in text
