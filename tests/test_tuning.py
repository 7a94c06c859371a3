"""keras-tuner search of DSR models (keras_dsr.tuning), scored by attractor measures."""

import importlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import BACKEND
from keras_dsr.recipes import Recipe
from keras_dsr.systems import simulate

kt = pytest.importorskip("keras_tuner")
if BACKEND == "tensorflow":  # keras-tuner imports tensorboard for every trial on TF
    pytest.importorskip("tensorboard", reason="keras-tuner needs tensorboard on TF")

from keras_dsr.tuning import OBJECTIVE, DSRHyperModel, DSRScore  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# tiny trials; sequential GTF compiles fastest (the method is not what is searched here)
BASE = Recipe(batch_size=2, steps=2, steps_per_epoch=1, method="sequential")


@pytest.fixture(scope="module")
def data():
    x_train = simulate("lorenz63", 400, seed=0, burn_in=5.0).x
    x_val = simulate("lorenz63", 120, seed=1, burn_in=5.0).x
    return x_train, x_val


def _hypermodel(data, **kwargs):
    return DSRHyperModel(*data, hidden_dims=(4, 8), seq_lens=(20, 40), base=BASE, **kwargs)


@pytest.mark.parametrize("tuner_name", ["RandomSearch", "Hyperband", "BayesianOptimization"])
def test_tuners_search_by_attractor_measure(tuner_name, data, tmp_path):
    dh_weight = 2.0 if tuner_name == "RandomSearch" else 0.0
    hm = _hypermodel(data, dh_weight=dh_weight)
    kw = dict(objective=hm.objective, directory=str(tmp_path), project_name="p",
              overwrite=True, seed=1)
    if tuner_name == "Hyperband":
        tuner = kt.Hyperband(hm, max_epochs=2, factor=3, **kw)
    elif tuner_name == "BayesianOptimization":
        tuner = kt.BayesianOptimization(hm, max_trials=2, num_initial_points=1, **kw)
    else:
        tuner = kt.RandomSearch(hm, max_trials=2, **kw)
    search = {"epochs": 1} if tuner_name == "RandomSearch" else {}
    tuner.search(verbose=0, **search)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    for t in trials:
        assert np.isfinite(t.score)
        dstsp = t.metrics.get_last_value("val_dstsp")
        dh = t.metrics.get_last_value("val_dh")
        if tuner_name == "RandomSearch":  # one epoch: the score is that epoch's combination
            np.testing.assert_allclose(t.score, dstsp + dh_weight * dh, rtol=1e-6)
        else:  # D_stsp alone, at the best epoch
            history = [obs.value[0] for obs in t.metrics.get_history("val_dstsp")]
            assert t.score == pytest.approx(min(history))
    best = tuner.get_best_hyperparameters(1)[0]
    recipe = hm.recipe(best)
    assert isinstance(recipe, Recipe) and recipe.method == "sequential"
    assert recipe.hidden_dim == best.get("hidden_dim") and recipe.seq_len == best.get("seq_len")
    model = tuner.get_best_models(1)[0]
    assert model.generate(data[1][0], 5).shape == (5, 3)


def test_search_space_is_a_recipe(data):
    hm = _hypermodel(data, alpha_schedules=("constant",), estimators="batch_max",
                     latent_dims=(3, 5), learning_rates=(1e-3, 1e-2), alpha_range=0.2)
    hp = kt.HyperParameters()
    recipe = hm.recipe(hp)  # registers the space; defaults are the first choices
    names = {h.name for h in hp.space}
    assert {"latent_dim", "hidden_dim", "learning_rate", "seq_len", "alpha_schedule",
            "alpha", "gtf_gamma", "alpha_estimator"} <= names
    assert recipe.alpha == 0.2  # one value: a fixed hyperparameter
    assert recipe.latent_dim == 3 and recipe.hidden_dim == 4 and recipe.seq_len == 20
    assert 1e-3 <= recipe.learning_rate <= 1e-2
    assert not hp.is_active("gtf_gamma")  # adaptive-GTF settings inactive for constant alpha
    model = hm.build(hp)
    assert type(model.schedule).__name__ == "ConstantForcing" and model.method == "sequential"
    adaptive = _hypermodel(data, alpha_schedules="adaptive", gtf_gammas=0.9,
                           estimators="batch_max").recipe(kt.HyperParameters())
    assert (adaptive.alpha, adaptive.gtf_gamma, adaptive.alpha_estimator) == (
        "adaptive", 0.9, "batch_maximum")  # the lab's name of the alias batch_max


def test_constructor_and_fit_errors(data):
    x_train, x_val = data
    with pytest.raises(ValueError, match="seq_lens"):
        DSRHyperModel(x_train, x_val, seq_lens=(1000,))
    with pytest.raises(ValueError, match="latent_dims"):
        DSRHyperModel(x_train, x_val, latent_dims=(2,))
    with pytest.raises(ValueError, match="alpha_schedules"):
        DSRHyperModel(x_train, x_val, alpha_schedules=("linear",))
    with pytest.raises(ValueError, match="x_val has 2 variables"):
        DSRHyperModel(x_train, x_val[:, :2])
    with pytest.raises(ValueError, match="estimators"):
        DSRHyperModel(x_train, x_val, estimators=("nope",))
    with pytest.raises(ValueError, match="alpha_range"):
        DSRHyperModel(x_train, x_val, alpha_range=(0.5, 0.1))
    with pytest.raises(TypeError, match="base"):
        DSRHyperModel(x_train, x_val, base={"steps": 2})
    hm = _hypermodel(data)
    with pytest.raises(TypeError, match="holds its data"):
        hm.fit(kt.HyperParameters(), None, x_train)


def test_dsr_score_callback():
    cb = DSRScore(dh_weight=4.0, diverged_score=50.0)
    logs = {"val_dstsp": 2.0, "val_dh": 0.5}
    cb.on_epoch_end(0, logs)
    assert logs[OBJECTIVE] == 4.0
    logs = {"val_dstsp": float("inf"), "val_dh": 1.0}
    cb.on_epoch_end(0, logs)
    assert logs[OBJECTIVE] == 50.0  # finite: Bayesian optimisation maps inf to 0
    with pytest.raises(ValueError, match="DSRMeasures"):
        cb.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ValueError, match="dh_weight"):
        DSRScore(dh_weight=-1)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cb))
    assert again.get_config() == cb.get_config()


def test_missing_keras_tuner_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_tuner", None)  # import keras_tuner fails
    monkeypatch.delitem(sys.modules, "keras_dsr.tuning")
    with pytest.raises(ImportError, match=r"pip install 'keras-dsr\[tuner\]'"):
        importlib.import_module("keras_dsr.tuning")


def test_import_keras_dsr_does_not_import_keras_tuner():
    if BACKEND != "jax":
        pytest.skip("checked once, in the JAX session")
    code = "import sys, keras_dsr, keras_dsr.cli; assert 'keras_tuner' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, KERAS_BACKEND="jax"))
    assert proc.returncode == 0, proc.stderr[-2000:]
