"""zoo/build.py's model selection helpers: recipe parsing and checkpoint scoring."""

import json
import os
import sys

import numpy as np
import pytest

import keras

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo"))
import build  # noqa: E402


def _write_recipe(folder, **extra):
    os.makedirs(folder / "p")
    spec = {"system": "lorenz63", "recipe": {"steps": 600, "steps_per_epoch": 100}, **extra}
    (folder / "p" / "recipe.json").write_text(json.dumps(spec))


def test_load_recipe_select_epochs(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "HERE", str(tmp_path))
    _write_recipe(tmp_path, tries=2, select_epochs=[4, 2])
    system, recipe, tries, epochs = build.load_recipe("p")
    assert (system, recipe.steps, tries, epochs) == ("lorenz63", 600, 2, [2, 4])


@pytest.mark.parametrize("bad", [[0], [6], [7]])
def test_load_recipe_rejects_epochs_outside_training(tmp_path, monkeypatch, bad):
    # 600 steps of 100 = 6 epochs; the final epoch (6) is always scored
    monkeypatch.setattr(build, "HERE", str(tmp_path))
    _write_recipe(tmp_path, select_epochs=bad)
    with pytest.raises(ValueError, match=r"select_epochs must lie in \[1, 6\)"):
        build.load_recipe("p")


def test_checkpoints_keep_a_copy_of_the_weights_after_each_listed_epoch():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    seen = []

    def score_fn(m):  # a stand-in for the validation score: the current kernel sum
        w = m.get_weights()[0]
        seen.append(np.array(w))
        return float(np.sum(w)), {"kernel_sum": float(np.sum(w))}

    ckpt = build._Checkpoints([1, 3], score_fn)
    x = np.arange(8, dtype="float32").reshape(4, 2) / 8
    model.fit(x, x.sum(1, keepdims=True), epochs=4, batch_size=4, verbose=0, callbacks=[ckpt])
    assert [r[1] for r in ckpt.rows] == [1, 3]
    for (score, _, s, weights), w in zip(ckpt.rows, seen):
        np.testing.assert_array_equal(weights[0], w)  # stored, not a live reference
        assert score == s["kernel_sum"] == pytest.approx(float(np.sum(w)))
    # training went on after epoch 3: the stored epoch-3 weights are not the final ones
    assert not np.array_equal(ckpt.rows[1][3][0], model.get_weights()[0])


def test_card_lines_name_the_kept_checkpoint():
    row = {"init_seed": 0, "train_seconds": 1.0, "val_dstsp": 0.2, "val_dh": 0.05,
           "val_lyap": 0.9, "val_floor": {"dstsp": 0.1, "dh": 0.04}, "val_score": 0.8,
           "epoch": 45, "checkpoints": {"40": 1.1, "45": 0.8, "60": 1.3}}
    lines = build._candidate_lines([row])
    assert "scored after the epochs listed and at the end on a validation" in lines[0]
    assert lines[0].startswith("- Model selection: 1 initialisation on the same data")
    assert "kept epoch 45; scores after epochs 40: 1.10, 45: 0.80, 60: 1.30" in lines[1]


def test_load_finetune(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "HERE", str(tmp_path))
    ft = {"alpha": 0.05, "learning_rate": 1e-3, "steps": 400, "every": 200}
    _write_recipe(tmp_path, finetune=ft)
    assert build.load_finetune("p") == ft


@pytest.mark.parametrize("ft, match", [
    ({"alpha": 0.05, "learning_rate": 1e-3, "steps": 400}, "keys"),
    ({"alpha": 1.0, "learning_rate": 1e-3, "steps": 400, "every": 200}, r"alpha must be in \(0, 1\)"),
    ({"alpha": 0.05, "learning_rate": 1e-3, "steps": 400, "every": 150}, "multiple of steps_per_epoch"),
    ({"alpha": 0.05, "learning_rate": 1e-3, "steps": 500, "every": 200}, "multiple of every"),
])
def test_load_finetune_errors(tmp_path, monkeypatch, ft, match):
    monkeypatch.setattr(build, "HERE", str(tmp_path))
    _write_recipe(tmp_path, finetune=ft)
    with pytest.raises(ValueError, match=match):
        build.load_finetune("p")


def _tiny_dsr_model():
    from keras_dsr.recipes import Recipe, train
    from keras_dsr.systems import simulate

    traj = simulate("lorenz63", 400, seed=0)
    recipe = Recipe(hidden_dim=8, seq_len=50, batch_size=2, steps=2, steps_per_epoch=1)
    model, _, _ = train(recipe, traj.x, verbose=0)
    return model, recipe, traj


def test_finetune_keeps_the_best_checkpoint_and_its_weights():
    model, recipe, traj = _tiny_dsr_model()
    ft = {"alpha": 0.1, "learning_rate": 1e-2, "steps": 3, "every": 1}
    start = [np.array(w) for w in model.get_weights()]
    seen = []

    def score_fn(m):  # a stand-in for the validation score: a fixed order of scores
        seen.append([np.array(w) for w in m.get_weights()])
        return [0.9, 0.4, 0.7][len(seen) - 1], {"dstsp": 0.1, "dh": 0.2, "lyap": 0.3}

    row, seconds = build.finetune(model, recipe, traj.x, ft, score_fn, start_score=1.0)
    assert row["scores"] == {1: 0.9, 2: 0.4, 3: 0.7} and row["kept_step"] == 2
    assert row["val_score"] == 0.4 and row["val_dstsp"] == 0.1 and seconds > 0
    for w, kept in zip(model.get_weights(), seen[1]):  # the weights after step 2
        np.testing.assert_array_equal(np.asarray(w), kept)
    assert not all(np.array_equal(a, b) for a, b in zip(seen[1], start))  # it trained
    # no checkpoint beats the start: the starting weights come back
    row, _ = build.finetune(model, recipe, traj.x, ft, lambda m: (2.0, {}), start_score=1.0)
    assert row["kept_step"] == 0 and row["val_score"] == 1.0
    for w, kept in zip(model.get_weights(), seen[1]):
        np.testing.assert_array_equal(np.asarray(w), kept)
    lines = build._finetune_lines(dict(row, **ft, seconds=0.1))
    assert "kept the starting weights (no checkpoint beat them)" in lines[0]
