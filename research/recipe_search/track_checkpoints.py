"""Train one recipe and follow its validation measures over training, checkpoint by checkpoint.

Every ``--every`` epochs the model is scored on the zoo's *validation* trajectory (data
seed + 3, floor seed + 4, as ``zoo/build.py`` selects among tries): D_stsp, D_H and
lambda_max (averaged over ``--lyap-steps`` steps; default ``criteria.lyap_steps``, the
same physical time at every dt) with the build's
``validation_score``. After training, the ``--top`` checkpoints with the best validation
score are scored on the criteria's *test* trajectory (seed + 1; lambda_max over
``criteria.lyap_steps``). This shows whether a measure drifts during training or sits
at a level, i.e. whether picking a checkpoint could help. Results: ``RESULTS_zoo.md``.

Usage (repository root):

    KERAS_BACKEND=jax python research/recipe_search/track_checkpoints.py lorenz96 \\
        '{"seq_len": 5000, "chunk_size": 250, "init_seed": 1000, "latent_l2": 3e-5}' \\
        --every 3
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_dsr.zoo.selection import validation_length, validation_score  # noqa: E402
from keras_dsr.measures import evaluate  # noqa: E402
from keras_dsr.recipes import Recipe, simulate_like, floor_scores, train  # noqa: E402
from keras_dsr.systems import lyapunov_max, simulate  # noqa: E402
from keras_dsr.zoo.criteria import held_out_pair, lyap_steps  # noqa: E402

MEASURES = ("dstsp", "dh", "lyap")


def _line(s, floor, lyap_true):
    rel = 100 * (s["lyap"] - lyap_true) / lyap_true
    return (f"D_stsp {s['dstsp']:.3f} (bar {floor['dstsp'] + 0.2:.3f}), D_H {s['dh']:.4f} "
            f"(bar {2 * floor['dh']:.4f}), lambda_max {s['lyap']:.4f} ({rel:+.1f} %), "
            f"score {validation_score(s, floor, lyap_true):.3f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("system")
    p.add_argument("recipe", nargs="?", default="{}", help="JSON of Recipe overrides")
    p.add_argument("--every", type=int, default=3, help="epochs between checkpoints")
    p.add_argument("--lyap-steps", type=int, default=None,
                   help="steps of the validation lambda_max average (default: "
                        "criteria.lyap_steps at the recipe's dt)")
    p.add_argument("--top", type=int, default=3, help="checkpoints scored on the test set")
    p.add_argument("--save", default=None, help="save those checkpoints as PREFIX_epN.keras")
    a = p.parse_args(argv)
    recipe = Recipe.from_dict(json.loads(a.recipe))
    system = a.system
    tr = simulate(system, recipe.train_length, dt=recipe.dt, seed=recipe.seed)
    n_val = validation_length(system, tr.dt)
    val = simulate_like(system, n_val, recipe.seed + 3, tr)
    val_floor = floor_scores(val.x, simulate_like(system, n_val, recipe.seed + 4, tr).x,
                             ("dstsp", "dh"))
    test, other = held_out_pair(system, recipe.seed, tr.mean, tr.std, dt=tr.dt)
    test_floor = floor_scores(test, other, ("dstsp", "dh"))
    lyap_true = float(lyapunov_max(system))
    val_lyap_steps = a.lyap_steps or lyap_steps(tr.dt, system)
    print(f"{system} {a.recipe}: true lambda_max {lyap_true:.4f}", flush=True)
    checkpoints = []

    class Track(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % a.every:
                return
            s = evaluate(self.model, val.x, measures=MEASURES, dt=tr.dt,
                         lyap_steps=val_lyap_steps)
            checkpoints.append((validation_score(s, val_floor, lyap_true), epoch + 1,
                                [np.array(w) for w in self.model.get_weights()]))
            print(f"epoch {epoch + 1} ({(epoch + 1) * recipe.steps_per_epoch} steps, alpha "
                  f"{float((logs or {}).get('alpha', np.nan)):.3f}) validation: "
                  f"{_line(s, val_floor, lyap_true)}", flush=True)

    model, _, seconds = train(recipe, tr.x, callbacks=[Track()], verbose=0)
    print(f"trained in {seconds:.0f} s", flush=True)
    for score, epoch, weights in sorted(checkpoints, key=lambda c: c[0])[:a.top]:
        model.set_weights(weights)
        s = evaluate(model, test, measures=MEASURES, dt=tr.dt, lyap_steps=lyap_steps(tr.dt, system))
        print(f"test, epoch {epoch} (validation score {score:.3f}): "
              f"{_line(s, test_floor, lyap_true)}", flush=True)
        if a.save:
            model.save(f"{a.save}_ep{epoch}.keras")


if __name__ == "__main__":
    main()
