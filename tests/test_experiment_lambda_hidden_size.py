"""experiments/lambda_hidden_size: a smoke run writes one scored row per (L, start)."""

import numpy as np

from test_examples import run_experiment


def test_lambda_hidden_size_smoke(tmp_path):
    res = run_experiment("lambda_hidden_size", "--out", tmp_path)
    rows = res["rows"]
    assert [(r["hidden"], r["start"]) for r in rows] == [(8, 0), (8, 1500), (16, 0), (16, 1500)]
    assert 0.8 < res["meta"]["lyap_true"] < 1.0  # Lorenz-63: 0.906
    for r in rows:
        assert np.isfinite(r["dh"]) and 0.0 <= r["dh"] <= 1.0 and r["dstsp"] >= 0.0
        assert np.isfinite(r["lyap"])
    assert (tmp_path / "results.json").exists() and (tmp_path / "table.md").exists()
