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
    assert "kept epoch 45; scores after epochs 40: 1.10, 45: 0.80, 60: 1.30" in lines[1]
