"""Model selection: recipe parsing (zoo/build.py), BestCheckpoint, tries and fine-tuning
in recipes.train, and the card lines."""

import json
import os
import sys

import numpy as np
import pytest

import keras

from keras_dsr.callbacks import BestCheckpoint
from keras_dsr.recipes import Recipe, train
from keras_dsr.systems import simulate

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo"))
import build  # noqa: E402


def _write_recipe(folder, **extra):
    os.makedirs(folder / "p")
    spec = {"system": "lorenz63", "recipe": {"steps": 600, "steps_per_epoch": 100}, **extra}
    (folder / "p" / "recipe.json").write_text(json.dumps(spec))


def test_load_recipe_merges_the_selection_fields(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "HERE", str(tmp_path))
    ft = {"alpha": 0.05, "learning_rate": 1e-3, "steps": 400, "every": 200}
    _write_recipe(tmp_path, tries=2, select_epochs=[2, 4], finetune=ft)
    system, recipe = build.load_recipe("p")
    assert (system, recipe.steps, recipe.tries, recipe.select_epochs, recipe.finetune) == (
        "lorenz63", 600, 2, (2, 4), ft)


@pytest.mark.parametrize("bad", [[0], [6], [7]])
def test_recipe_rejects_epochs_outside_training(bad):
    # 600 steps of 100 = 6 epochs; the final epoch (6) is always scored
    with pytest.raises(ValueError, match=r"select_epochs.*\[1, 6\)"):
        Recipe(steps=600, steps_per_epoch=100, select_epochs=bad)


@pytest.mark.parametrize("ft, match", [
    ({"alpha": 0.05, "learning_rate": 1e-3, "steps": 400}, "keys"),
    ({"alpha": 1.0, "learning_rate": 1e-3, "steps": 400, "every": 200}, r"alpha must be in \(0, 1\)"),
    ({"alpha": 0.05, "learning_rate": 1e-3, "steps": 400, "every": 150}, "multiple of steps_per_epoch"),
    ({"alpha": 0.05, "learning_rate": 1e-3, "steps": 500, "every": 200}, "multiple of every"),
])
def test_recipe_finetune_errors(ft, match):
    with pytest.raises(ValueError, match=match):
        Recipe(steps_per_epoch=100, finetune=ft)


def test_best_checkpoint_restores_the_best_scored_weights():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    seen, order = [], [0.5, 0.2, 0.9]

    def score_fn(m):  # a fixed order of scores; records the weights scored
        seen.append([np.array(w) for w in m.get_weights()])
        return order[len(seen) - 1]

    sel = BestCheckpoint(score_fn, epochs=[1, 3])
    x = np.arange(8, dtype="float32").reshape(4, 2) / 8
    model.fit(x, x.sum(1, keepdims=True), epochs=4, batch_size=4, verbose=0, callbacks=[sel])
    assert sel.scores == {1: 0.5, 3: 0.2, 4: 0.9} and sel.best_epoch == 3
    for w, kept in zip(model.get_weights(), seen[1]):  # the epoch-3 weights came back
        np.testing.assert_array_equal(w, kept)
    assert not all(np.array_equal(a, b) for a, b in zip(seen[1], seen[2]))


def test_train_tries_and_finetune_keep_the_best():
    traj = simulate("lorenz63", 600, seed=0)
    scores = iter([3.0, 2.0, 1.5, 5.0, 1.0])  # try 0: e1, end; try 1: e1, end; finetune: end
    recipe = Recipe(hidden_dim=8, seq_len=50, batch_size=2, steps=4, steps_per_epoch=2,
                    steps_per_execution=1, tries=2, select_epochs=(1,),
                    finetune={"alpha": 0.1, "learning_rate": 1e-2, "steps": 2, "every": 2})
    model, history, seconds = result = train(recipe, traj.x, score_fn=lambda m: next(scores),
                                             verbose=0)
    cands = result.report["candidates"]
    assert [c["init_seed"] for c in cands] == [0, 1000]
    assert cands[0]["checkpoints"] == {1: 3.0, 2: 2.0} and cands[0]["epoch"] == 2
    assert cands[1]["checkpoints"] == {1: 1.5, 2: 5.0} and cands[1]["epoch"] == 1
    assert result.report["init_seed"] == 1000  # try 1's epoch-1 checkpoint won (1.5)
    ft = result.report["finetune"]
    assert ft["scores"] == {0: 1.5, 2: 1.0} and ft["kept_step"] == 2 and seconds > 0
    from keras_dsr.zoo.card import card_text

    assert "kept the weights after 2 steps (score 1.00)" in card_text("x", {"card": {
        "finetune": ft}}, {})
    old = {k: v for k, v in ft.items() if k != "score"} | {"val_score": 0.75}  # older cards
    assert "(score 0.75)" in card_text("x", {"card": {"finetune": old}}, {})


def test_train_needs_validation_for_selection():
    traj = simulate("lorenz63", 300, seed=0)
    with pytest.raises(ValueError, match="validation"):
        train(Recipe(hidden_dim=4, seq_len=50, steps=2, steps_per_epoch=1, tries=2), traj.x)


def test_card_lines_name_the_kept_checkpoint():
    card = {"candidates": [{"init_seed": 0, "train_seconds": 1.0, "score": 0.8, "epoch": 45,
                            "checkpoints": {"40": 1.1, "45": 0.8, "60": 1.3}}],
            "validation": {"measures": {"dstsp": 0.2, "dh": 0.05, "lyap": 0.9},
                           "floor": {"dstsp": 0.1, "dh": 0.04}}}
    from keras_dsr.zoo.card import card_text

    text = card_text("x", {"card": card}, {})
    assert "1 of 1 initialisation met every criterion on the validation data" in text
    assert "| 0 | 1 | 0.8 | yes | 45 | 40: 1.1, 45: 0.8, 60: 1.3 |" in text
    assert "Kept model on validation: D_stsp 0.200 (floor 0.100)" in text


def test_the_preset_card_counts_initialisations_met_on_validation_and_runs_off_the_attractor():
    """keras_dsr.zoo.card: how many candidates scored <= 1 on validation, and the
    robustness counts, as the card states them."""
    from keras_dsr.zoo.card import card_text

    card = {"candidates": [{"init_seed": s, "train_seconds": 10.0, "score": v, "epoch": 30}
                           for s, v in ((0, 0.7), (1, 1.4), (2, 0.95))],
            "robustness": {"n": 100, "max_dstsp": 0.91, "counts": {
                "reached": 93, "diverged": 1, "fixed_point": 0, "cycle": 4, "other": 2}}}
    text = card_text("demo", {"system": "lorenz63", "dt": 0.01, "card": card}, {})
    assert "2 of 3 initialisations met every criterion on the validation data" in text
    assert "| 1 | 10 | 1.4 | no | 30 | - |" in text and "| 2 | 10 | 0.95 | yes | 30 | - |" in text
    assert ("7 % missed the data's attractor (of all 100: diverged 1, fixed point 0, "
            "cycle 4, other 2); bound of a reached run: D_stsp <= 0.910.") in text
    assert "Robustness" not in card_text("demo", {"card": {}}, {})
