"""Fine-tune a saved model with a small constant GTF alpha and a low learning rate.

A second training phase for models that sit near the attractor but whose free-running
time scale is slightly off: the adaptive alpha of the first phase (0.14-0.16 for
Rössler at dt = 0.1) corrects the phase every step, so the loss barely sees a 0.2 %
error in the rotation frequency, which D_H punishes (``RESULTS_zoo.md``, session 9).
Every ``--every`` steps the model is scored on the zoo's validation trajectory (data
seed + 3, floor seed + 4, as ``zoo/build.py``); the ``--top`` checkpoints with the
best validation score are then scored on the criteria's test trajectory. Data seed 0.

Usage (repository root; MODEL from ``track_checkpoints.py ... --save PREFIX``):

    KERAS_BACKEND=jax python research/recipe_search/finetune_probe.py MODEL.keras \\
        rossler --dt 0.1 --alpha 0.05 --lr 1e-3 --steps 3000
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_dsr.zoo.selection import validation_length, validation_score  # noqa: E402
from track_checkpoints import MEASURES, _line  # noqa: E402
from keras_dsr.callbacks import ConstantAlpha  # noqa: E402
from keras_dsr.data import TrajectoryWindows  # noqa: E402
from keras_dsr.measures import evaluate  # noqa: E402
from keras_dsr.recipes import simulate_like, floor_scores  # noqa: E402
from keras_dsr.systems import lyapunov_max, simulate  # noqa: E402
from keras_dsr.zoo.criteria import held_out_pair, lyap_steps  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("system")
    p.add_argument("--dt", type=float, default=None, help="the model's data dt")
    p.add_argument("--alpha", type=float, default=0.05, help="constant GTF alpha")
    p.add_argument("--lr", type=float, default=1e-3, help="initial Adam lr (cosine to 1 %%)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--every", type=int, default=500, help="steps between checkpoints")
    p.add_argument("--seq-len", type=int, default=10_000)
    p.add_argument("--noise", type=float, default=0.0,
                   help="training-window noise (Recipe.train_noise), standardised units")
    p.add_argument("--top", type=int, default=2, help="checkpoints scored on the test set")
    p.add_argument("--window-seed", type=int, default=7)
    p.add_argument("--seed", type=int, default=0,
                   help="keras.utils.set_random_seed before training: without it two runs "
                        "from the same weights differ (RESULTS_zoo.md, session 9)")
    a = p.parse_args(argv)
    keras.utils.set_random_seed(a.seed)
    if a.steps % a.every or a.every % 100:
        p.error("--steps must be a multiple of --every, and --every of 100")
    tr = simulate(a.system, 100_000, dt=a.dt, seed=0)
    n_val = validation_length(a.system, tr.dt)
    val = simulate_like(a.system, n_val, 3, tr)
    val_floor = floor_scores(val.x, simulate_like(a.system, n_val, 4, tr).x,
                             ("dstsp", "dh"))
    test, other = held_out_pair(a.system, 0, tr.mean, tr.std, dt=tr.dt)
    test_floor = floor_scores(test, other, ("dstsp", "dh"))
    lyap_true = float(lyapunov_max(a.system))
    n_lyap = lyap_steps(tr.dt, a.system)  # the same physical time at every dt

    def line(s, floor):
        return _line(s, floor, lyap_true)

    model = keras.saving.load_model(a.model, compile=False)
    model.compile(optimizer=keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(a.lr, a.steps, alpha=0.01)))
    windows = TrajectoryWindows(tr.x, seq_len=a.seq_len, batch_size=1, steps_per_epoch=100,
                                noise=a.noise, seed=a.window_seed)
    s = evaluate(model, val.x, measures=MEASURES, dt=tr.dt, lyap_steps=n_lyap)
    print(f"{a.system} dt {tr.dt}, alpha {a.alpha}, lr {a.lr}, noise {a.noise}: before, validation: "
          f"{line(s, val_floor)}", flush=True)
    checkpoints = []
    for k in range(a.steps // a.every):
        model.fit(windows, epochs=a.every // 100, verbose=0, callbacks=[ConstantAlpha(a.alpha)])
        s = evaluate(model, val.x, measures=MEASURES, dt=tr.dt, lyap_steps=n_lyap)
        step = (k + 1) * a.every
        checkpoints.append((validation_score(s, val_floor, lyap_true), step,
                            [np.array(w) for w in model.get_weights()]))
        print(f"{step} steps, validation: {line(s, val_floor)}", flush=True)
    for score, step, weights in sorted(checkpoints, key=lambda c: c[0])[:a.top]:
        model.set_weights(weights)
        s = evaluate(model, test, measures=MEASURES, dt=tr.dt, lyap_steps=n_lyap)
        print(f"test, after {step} steps (validation score {score:.3f}): "
              f"{line(s, test_floor)}", flush=True)


if __name__ == "__main__":
    main()
