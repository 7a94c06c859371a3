"""experiments/equation_library_baseline: a smoke run of run.py (JAX session), and the
least-squares fit it judges against the true field in the standardised units the
experiment fits in (every backend).

``tests/test_polynomial_cell.py::test_fit_field_recovers_lorenz63_coefficients`` checks
the fitted coefficients on raw (unstandardised) data against hand-written constants;
the test here checks the fitted field itself on standardised data, as
``simulate(...).x`` gives it to the zoo, against the registry's right-hand side.
"""

import json

import numpy as np
import pytest

import keras_dsr  # noqa: F401  (selects the backend before keras)
from keras import ops

from keras_dsr.recipes import Recipe, build_model
from keras_dsr.systems import get_system, simulate

from test_examples import run_experiment


@pytest.mark.slow
def test_run_smoke(tmp_path):
    res = run_experiment("equation_library_baseline", "--out", tmp_path)
    rows = {r["system"]: r for r in res["rows"]}
    assert list(rows) == ["lorenz63", "thomas"]   # the smoke systems
    for r in rows.values():
        for k in ("dstsp", "dh", "lyap"):  # a finite score, or inf with the row diverged
            v = r["scores"][k]
            assert not np.isnan(v) and v >= (0.0 if k != "lyap" else -np.inf)
            assert np.isfinite(v) or r["diverged"]
        assert all(np.isfinite(v) and v > 0 for v in r["floor"].values())
        assert r["lyap_true"] > 0 and isinstance(r["criteria_met"], bool)
        assert len(r["fit_residual"]) == 3 and r["criteria"][0].startswith("| measure")
    assert rows["lorenz63"]["in_library"] and not rows["thomas"]["in_library"]  # sin
    assert rows["lorenz63"]["library_residual"] < 1e-9
    assert rows["thomas"]["library_residual"] > 1e-2
    assert max(rows["lorenz63"]["fit_residual_rel"]) < 1e-3     # finite differences only
    assert max(rows["thomas"]["fit_residual_rel"]) > 0.05       # the field is not cubic
    assert rows["lorenz63"]["preset"]["lyap_true"] == pytest.approx(0.9, rel=0.05)
    assert rows["thomas"]["preset"] is None                    # no Thomas preset ships
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["system"] for r in saved["rows"]] == ["lorenz63", "thomas"]
    text = (tmp_path / "table.md").read_text()
    assert "equation_library_baseline/run.py --smoke" in text
    assert "\n| lorenz63 | yes" in text and "\n| thomas | no" in text


def test_fitted_field_is_lorenz63_in_standardised_units():
    """``fit_field`` on 3 000 standardised Lorenz-63 samples (dt 0.01) gives the true
    field per sampling step in those units, ``dt f(mean + std z) / std``, at 100 points.

    The tolerance is that of the data: the fourth-order finite differences the fit
    regresses on differ from this exact value by up to 8.7e-5 (RMS 6.7e-6) along this
    trajectory, and the fitted field by up to 4.8e-5 (measured), against a field of size
    ~0.3 per step; 2e-4 bounds both, while a wrong unit (dt, mean or std) is off by O(0.1).
    """
    train = simulate("lorenz63", 3_000, seed=0)
    model = build_model(Recipe(cell="polynomial", cell_init="least_squares"), 3)
    model.build((None, 100, 3))
    model.cell.fit_field(train.x)
    z = train.x[np.linspace(10, len(train.x) - 10, 100).astype(int)]
    system = get_system("lorenz63")
    expected = train.dt * system.f(train.mean + train.std * z) / train.std
    got = ops.convert_to_numpy(model.cell.field(z.astype("float32")))
    assert np.abs(expected).max() > 0.2                 # a field of O(0.3) per step
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-4)
