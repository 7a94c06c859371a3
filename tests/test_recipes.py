"""Recipes: validation, round trip, and a tiny end-to-end reconstruction on each backend."""

import numpy as np
import pytest

import keras_dsr  # noqa: F401
import keras
from keras_dsr.recipes import (Recipe, build_model, make_cell, reconstruct, simulate_split, train,
                               training_windows)
from keras_dsr.systems import simulate, simulate_ensemble


@pytest.mark.parametrize("field,value,match", [
    ("cell", "lstm", "`cell` must be one of"),
    ("seq_len", 5, "`seq_len` must be >= 10"),
    ("seed", -5, "seed must be an integer >= 0, got -5"),
    ("learning_rate", float("inf"), "learning_rate must be a finite number > 0, got inf"),
    ("forcing", "half", "`forcing` must be"),
    ("tries", 0, "tries must be an integer >= 1"),
    ("steps", 0, "steps must be an integer >= 1"),
    ("batch_size", 2.5, "batch_size must be an integer >= 1"),
    ("alpha", 1.5, "`alpha` must be 'adaptive' or in"),
    ("learning_rate", -1.0, "learning_rate must be a finite number > 0, got -1.0"),
    ("gtf_gamma", 1.0, "`gtf_gamma` must be in"),
    ("latent_dim", 0, "latent_dim must be an integer >= 1 or None, got 0"),
    ("chunk_size", 0, "chunk_size must be an integer >= 1 or None, got 0"),
    ("init_seed", 1.5, "init_seed must be an integer >= 0 or None, got 1.5"),
    ("latent_l2", -1e-5, "latent_l2 must be a finite number >= 0"),
    ("latent_l2", float("nan"), "latent_l2 must be a finite number >= 0"),
    ("train_noise", -0.1, "train_noise must be a finite number >= 0"),
    ("train_noise", float("inf"), "train_noise must be a finite number >= 0"),
    ("dt", 0.0, "dt must be a finite number > 0 or None"),
    ("dt", "0.1", "dt must be a finite number > 0 or None"),
    ("dt", float("inf"), "dt must be a finite number > 0 or None"),
    ("cell_init", "sindy", "`cell_init` must be one of"),
])
def test_bad_fields(field, value, match):
    with pytest.raises(ValueError, match=match):
        Recipe(**{field: value})


def test_dict_round_trip_and_unknown_keys():
    r = Recipe(seq_len=500, alpha=0.2, cell="alrnn")
    assert Recipe.from_dict(r.to_dict()) == r
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['sequence_length'\]"):
        Recipe.from_dict({"sequence_length": 10})


def test_least_squares_init_needs_the_polynomial_cell():
    with pytest.raises(ValueError, match="needs `cell='polynomial'`"):
        Recipe(cell_init="least_squares")


def test_polynomial_cell_least_squares_init_then_gtf_deer():
    """cell_init='least_squares' starts training from the fitted field (the first
    epoch's loss is already far below a random start's), and GTF-DEER trains on."""
    x = simulate("lorenz63", 4_000, seed=0).x
    recipe = Recipe(cell="polynomial", seq_len=200, batch_size=4, steps=20,
                    steps_per_epoch=10, learning_rate=1e-4, alpha=0.2)
    fitted, hist, _ = train(recipe.replace(cell_init="least_squares"), x, verbose=0)
    keras.utils.set_random_seed(recipe.weight_seed)
    random_start = build_model(recipe, 3)  # untrained: its loss on the same kind of windows
    random_loss = random_start.evaluate(training_windows(recipe, x), verbose=0,
                                      return_dict=True)["loss"]
    assert hist.history["loss"][0] < 1e-3 * random_loss
    assert np.isfinite(hist.history["loss"][-1])
    w0 = make_cell(recipe, 3)
    w0.fit_field(x)
    assert not np.allclose(fitted.cell.get_weights()[0], w0.get_weights()[0])  # trained on


@pytest.mark.parametrize("cell", ["clipped_shplrnn", "shplrnn", "plrnn", "alrnn", "polynomial"])
def test_cells(cell):
    c = make_cell(Recipe(cell=cell, latent_dim=5, hidden_dim=7), 3)
    assert c.latent_dim == 5
    with pytest.raises(ValueError, match="must be >= the number of observed"):
        make_cell(Recipe(cell=cell, latent_dim=2), 3)
    # the affine observation x = B z maps M = 2 latent units to N = 3 observed ones
    assert make_cell(Recipe(cell=cell, latent_dim=2, observation="affine"), 3).latent_dim == 2


def test_affine_observation_with_fewer_latent_units_trains_and_generates():
    """M = 2 < N = 3 with the affine observation (the lab's EEG setup has M = 16, N = 64):
    a few training steps, predictions equal to a numpy loop of GTF through pinv(B), and
    a finite free run."""
    from test_dsr_model import forced_loop_numpy

    x = simulate("lorenz63", 1_000, seed=0).x
    model, _, _ = train(Recipe(latent_dim=2, observation="affine", hidden_dim=8, seq_len=50,
                               batch_size=2, steps=4, steps_per_epoch=2, alpha=0.3,
                               method="sequential", train_length=1_000), x, verbose=0)
    assert model.cell.latent_dim == 2 and model.observed_dim == 3
    windows = np.stack([x[:60], x[100:160]]).astype("float32")
    pred = np.asarray(keras.ops.convert_to_numpy(model(windows)))
    np.testing.assert_allclose(pred, forced_loop_numpy(model, windows, 0.3), rtol=1e-4,
                               atol=1e-5)
    assert np.all(np.isfinite(model.generate(x[0], 500)))


def test_train_lowers_loss_and_reconstruct_scores():
    x = simulate("lorenz63", 3_000, seed=0).x
    recipe = Recipe(hidden_dim=16, seq_len=100, batch_size=4, steps=20, steps_per_epoch=10,
                    learning_rate=1e-2, alpha=0.5, train_length=3_000)
    model, history, seconds = train(recipe, x, verbose=0)
    loss = history.history["loss"]
    assert len(loss) == 2 and loss[-1] < loss[0] and seconds > 0
    assert history.history["alpha"][-1] == pytest.approx(0.5)
    # Same recipe, same seed: same weights (reproducible).
    again, _, _ = train(recipe, x, verbose=0)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    result = reconstruct("lorenz63", recipe.replace(steps=4, steps_per_epoch=2),
                         test_length=2_000, with_floor=True, verbose=0)
    assert set(result.scores) == {"dstsp", "dh"} and set(result.floor) == {"dstsp", "dh"}
    assert result.generated.shape == (2_000, 3)
    # The test set is standardised with the training statistics.
    np.testing.assert_allclose(result.test.mean, result.train.mean)


def test_reconstruct_refuses_a_driven_system(monkeypatch):
    import keras_dsr.recipes as recipes

    def no_simulation(*args, **kwargs):
        raise AssertionError("a driven system must be refused before any simulation")

    monkeypatch.setattr(recipes, "simulate_split", no_simulation)
    with pytest.raises(ValueError, match=r"'duffing' is driven by an external input.*"
                                         r"Choose an autonomous system: .*lorenz63"):
        reconstruct("duffing", Recipe(steps=1, steps_per_epoch=1))


def test_init_seed_and_chunk_size():
    """``init_seed`` changes the weights only; ``chunk_size`` reaches the DEER solve."""
    base = Recipe(hidden_dim=4, seed=3)
    assert base.weight_seed == 3 and base.replace(init_seed=7).weight_seed == 7
    w = [make_cell(r, 3) for r in (base, base.replace(init_seed=3), base.replace(init_seed=7))]
    for c in w:
        c.build((None, 3))
    np.testing.assert_array_equal(w[0].get_weights()[0], w[1].get_weights()[0])
    assert not np.allclose(w[0].get_weights()[0], w[2].get_weights()[0])
    model = build_model(base.replace(chunk_size=50), 3)
    assert model.solver_options == {"chunk_size": 50}
    model.build((None, 120, 3))
    assert model.gtf.chunk_size == 50


def test_latent_l2_is_added_to_the_loss():
    """``latent_l2`` puts a LatentL2 penalty into the model; the loss grows by its value."""
    from keras_dsr.regularizers import LatentL2

    assert build_model(Recipe(hidden_dim=4), 3).regularizers == []
    x = simulate("lorenz63", 400, seed=0).x.astype("float32")[None]
    losses = {}
    for strength in (0.0, 0.5):
        model = build_model(Recipe(hidden_dim=4, alpha=0.3, latent_l2=strength), 3)
        model.build((None, 400, 3))
        losses[strength] = float(model.evaluate(x, verbose=0, return_dict=True)["loss"])
        if strength:
            (reg,) = model.regularizers
            assert isinstance(reg, LatentL2) and reg.strength == 0.5
            w = {v.path.split("/")[-1]: np.asarray(v) for v in model.cell.weights}
            penalty = 0.5 * ((w["W1"] ** 2).sum() + (w["W2"] ** 2).sum())
    # same weights (same seed): the losses differ by exactly the penalty
    assert losses[0.5] - losses[0.0] == pytest.approx(penalty, rel=1e-4)


def test_train_noise_reaches_the_windows(monkeypatch):
    """``train_noise`` is the noise of the training windows: the batches ``fit`` sees are
    the clean windows plus Gaussian noise of that standard deviation."""
    import keras_dsr.data

    seen = []

    class Spy(keras_dsr.data.TrajectoryWindows):
        def __getitem__(self, index):
            item = super().__getitem__(index)
            seen.append((self.window_starts(index)[1], item[0]))
            return item

    monkeypatch.setattr(keras_dsr.data, "TrajectoryWindows", Spy)
    x = simulate("lorenz63", 2_000, seed=0).x
    for noise in (0.0, 0.3):
        seen.clear()
        train(Recipe(hidden_dim=4, seq_len=200, batch_size=8, steps=2, steps_per_epoch=2,
                     alpha=0.3, train_noise=noise), x, verbose=0)
        assert seen
        for starts, batch in seen:
            clean = np.stack([x[s:s + 200] for s in starts])
            resid = batch - clean
            if noise == 0.0:
                np.testing.assert_allclose(resid, 0.0, atol=1e-6)
            else:
                assert abs(resid.std() - noise) < 0.02 and abs(resid.mean()) < 0.02


def test_fit_order_of_trajectory_windows():
    """Keras's ``fit`` permutes each epoch's batches with Python's ``random`` (its default
    ``shuffle=True``); with ``shuffle=False`` it asks for them in order, and two fits from
    the same weights agree exactly without any seeding (the TrajectoryWindows docstring)."""
    import random

    from keras_dsr.callbacks import ConstantAlpha
    from keras_dsr.data import TrajectoryWindows

    x = simulate("lorenz63", 3_000, seed=0).x
    w0 = None
    runs = []
    for shuffle, py_seed in ((False, 1), (False, 2), (True, 1), (True, 2)):
        random.seed(py_seed)
        model = build_model(Recipe(hidden_dim=4, seq_len=100, steps=8, alpha=0.2), 3)
        model.build((None, 100, 3))
        if w0 is None:
            w0 = [np.array(v) for v in model.get_weights()]
        model.set_weights(w0)
        calls = []

        class Spy(TrajectoryWindows):
            def __getitem__(self, index):
                calls.append((self.epoch, int(index)))
                return super().__getitem__(index)

        ds = Spy(x, seq_len=100, batch_size=2, steps_per_epoch=4, seed=3)
        model.fit(ds, epochs=2, verbose=0, shuffle=shuffle, callbacks=[ConstantAlpha(0.2)])
        runs.append((calls, [np.array(v) for v in model.get_weights()]))
    for calls, _ in runs[:2]:  # the last 8 calls are the 2 x 4 steps (Keras peeks first)
        assert [i for _, i in calls[-8:]] == [0, 1, 2, 3, 0, 1, 2, 3]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    # shuffle=True: the order follows Python's random state
    assert runs[2][0] != runs[3][0]


def test_build_model_compiled():
    model = build_model(Recipe(hidden_dim=4), 3)
    assert model.optimizer is not None and model.cell.latent_dim == 3


def test_simulate_split_one_solve_standardised_with_training_statistics():
    """Train / test / extra come from one ensemble solve; all in training units."""
    tr, te, ex = simulate_split("lorenz63", 3_000, 1_200, seed=4, n_extra=1)
    assert tr.x.shape == (3_000, 3) and te.x.shape == ex.x.shape == (1_200, 3)
    assert tr.states.shape == (3_000, 3) and te.t.shape == (1_200,)
    np.testing.assert_allclose(tr.x.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(tr.x.std(0), 1.0, atol=1e-5)
    for t in (te, ex):  # the test sets are in the training units, not their own
        np.testing.assert_array_equal(t.mean, tr.mean)
        np.testing.assert_allclose(t.x, (t.states - tr.mean) / tr.std, rtol=1e-5, atol=1e-5)
    # the same ensemble as simulate_ensemble with seeds 4, 5, 6 (first 1 200 steps)
    raw = simulate_ensemble("lorenz63", 3_000, seeds=(4, 5, 6), standardize=False)
    for t, r in zip((tr, te, ex), raw):
        np.testing.assert_allclose(t.states, r.states[:len(t.states)])
    assert np.abs(te.x - ex.x).max() > 1.0  # independent initial conditions


@pytest.mark.backend_independent
def test_simulate_split_and_held_out_pair_at_a_recipe_dt(monkeypatch):
    """``Recipe.dt`` resamples the data: every trajectory is sampled at that dt."""
    from keras_dsr.recipes import simulate_like
    from keras_dsr.systems import get_system, simulate
    from keras_dsr.zoo import criteria
    from keras_dsr.zoo.criteria import held_out_pair

    monkeypatch.setattr(criteria, "TEST_LENGTH", 3_000)  # held-out pairs of 3 000 steps

    assert Recipe().dt is None and Recipe(dt=0.1).to_dict()["dt"] == 0.1
    tr, te = simulate_split("rossler", 400, 300, seed=2, dt=0.1)
    assert tr.dt == te.dt == 0.1
    np.testing.assert_allclose(np.diff(te.t), 0.1, rtol=1e-9)
    # every other sample of the default dt (0.05) from the same initial condition (up
    # to the adaptive solver's error, grown by the chaos over 40 time units: ~6e-4; one
    # sample off would differ by ~0.5)
    fine = simulate("rossler", 800, dt=0.05, seed=2, standardize=False)
    np.testing.assert_allclose(tr.states, fine.states[::2], rtol=0, atol=5e-3)
    # validation and criteria trajectories follow the training data's dt
    assert simulate_like("rossler", 50, 5, tr).dt == 0.1
    test, other = held_out_pair("rossler", 2, tr.mean, tr.std, dt=0.1)
    # sampled every 0.1 time units: central differences over 2 dt match the right-hand
    # side (to the O(dt^2) error of the difference; with dt = 0.05 they would be half)
    for x in (test, other):
        raw = x[:2000].astype("float64") * tr.std + tr.mean
        d = (raw[2:] - raw[:-2]) / 0.2
        f = get_system("rossler").f(raw[1:-1])
        assert np.median(np.abs(d - f)) < 0.02 * np.median(np.abs(f))
