"""experiments/lambda_hidden_size: a smoke run writes one scored row per (L, start)."""

import json
import os

import numpy as np

from test_examples import ROOT, run_python

SCRIPT = os.path.join(ROOT, "experiments", "lambda_hidden_size", "run.py")


def test_lambda_hidden_size_smoke(tmp_path):
    stdout = run_python(SCRIPT, "--smoke", "--out", tmp_path, what="experiment")
    res = json.loads((tmp_path / "results.json").read_text())
    rows = res["rows"]
    assert [(r["hidden"], r["start"]) for r in rows] == [(8, 0), (8, 1500), (16, 0), (16, 1500)]
    assert 0.8 < res["meta"]["lyap_true"] < 1.0  # Lorenz-63: 0.906
    for r in rows:
        assert np.isfinite(r["dh"]) and 0.0 <= r["dh"] <= 1.0 and r["dstsp"] >= 0.0
    table = (tmp_path / "table.md").read_text()
    assert table.count("\n| 8 |") == 2 and "| 16 | 1500 |" in table and table in stdout + "\n"
