"""Overhead of the training engine: Keras ``fit`` against a bare compiled step.

Both run the same math on the same windows, on JAX: a clipped shPLRNN (M = 3,
L = 100) trained by GTF-DEER on windows of T = 10^4 steps (batch 1) with adaptive
GTF (the lab's rule, estimate on the current batch every k = 5 steps) and Adam.

* ``fit``: :class:`keras_dsr.models.DSRModel` with its forcing schedule in the
  compiled step and the in-step guard (finite-update selection, metrics), through
  Keras's own ``fit`` with ``steps_per_execution`` S (default 10), ``verbose=0``;
* ``bare``: one ``jax.jit`` function per step doing only the forward solve, the loss,
  the gradients, the schedule update and the Adam update (``stateless_call`` and
  ``optimizer.stateless_apply`` of the same model), called in a Python loop; no
  metrics, no guard, no callbacks.

Compilation is excluded (one warm-up epoch each); the two are timed in alternating
rounds in one process and the ratio of the medians is reported (the machine is shared
and noisy).

Usage:
    KERAS_BACKEND=jax python benchmarks/bench_train_loop.py
    KERAS_BACKEND=jax python benchmarks/bench_train_loop.py --steps 50 --rounds 5 \\
        --output benchmarks/RESULTS_train_loop.md
"""

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras_dsr  # noqa: E402,F401
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_dsr.cells import ClippedShallowPLRNN  # noqa: E402
from keras_dsr.models import DSRModel  # noqa: E402
from keras_dsr.recipes import simulate_split  # noqa: E402
from keras_dsr.schedules import AdaptiveForcing  # noqa: E402


class Windows(keras.utils.PyDataset):
    def __init__(self, x, t, n, seed=0):
        super().__init__()
        starts = np.random.default_rng(seed).integers(0, len(x) - t, n)
        self.batches = [x[s:s + t][None] for s in starts]

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


def make_model(spe):
    model = DSRModel(cell=ClippedShallowPLRNN(3, 100, seed=0), gtf=AdaptiveForcing(k=5))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=spe)
    return model


def bare_step_fn(model):
    import jax

    opt = model.optimizer

    def loss_fn(trainable, non_trainable, x):
        pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return keras.ops.mean((pred - x[:, 1:]) ** 2), non_trainable

    @jax.jit
    def step(trainable, non_trainable, opt_vars, x):
        (loss, non_trainable), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            trainable, non_trainable, x)
        trainable, opt_vars = opt.stateless_apply(opt_vars, grads, trainable)
        return trainable, non_trainable, opt_vars, loss

    return step


def time_fit(model, data, epochs):
    t0 = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0, shuffle=False)
    return (time.perf_counter() - t0) / (epochs * len(data))


def time_bare(step, state, data, epochs):
    trainable, non_trainable, opt_vars = state
    t0 = time.perf_counter()
    for _ in range(epochs):
        for i in range(len(data)):
            trainable, non_trainable, opt_vars, loss = step(trainable, non_trainable, opt_vars,
                                                            data[i])
    loss.block_until_ready()
    return (time.perf_counter() - t0) / (epochs * len(data)), (trainable, non_trainable, opt_vars)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--length", type=int, default=10_000, help="window length T")
    p.add_argument("--steps", type=int, default=50, help="optimiser steps per timed round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--spe", type=int, default=10, help="steps_per_execution of fit")
    p.add_argument("--output", help="write a markdown table here")
    a = p.parse_args(argv)
    if keras.backend.backend() != "jax":
        sys.exit("bench_train_loop.py runs on JAX (KERAS_BACKEND=jax).")
    train, _ = simulate_split("lorenz63", 100_000, 1_000, seed=0)
    data = Windows(train.x, a.length, a.steps)

    fit_model = make_model(a.spe)
    fit_model.fit(data, epochs=1, verbose=0, shuffle=False)      # compile + warm-up
    bare_model = make_model(1)
    bare_model.build((None, a.length, 3))
    bare_model.optimizer.build(bare_model.trainable_variables)
    step = bare_step_fn(bare_model)
    state = ([v.value for v in bare_model.trainable_variables],
             [v.value for v in bare_model.non_trainable_variables],
             [v.value for v in bare_model.optimizer.variables])
    _, state = time_bare(step, state, data, 1)                    # compile + warm-up

    fit_t, bare_t = [], []
    for r in range(a.rounds):
        fit_t.append(time_fit(fit_model, data, 1))
        t, state = time_bare(step, state, data, 1)
        bare_t.append(t)
        print(f"round {r}: fit {fit_t[-1] * 1e3:.1f} ms/step, bare {t * 1e3:.1f} ms/step",
              flush=True)
    fit_m, bare_m = statistics.median(fit_t), statistics.median(bare_t)
    cmd = "KERAS_BACKEND=jax python benchmarks/bench_train_loop.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    lines = [
        "# Training-engine overhead: `fit` vs a bare compiled step (JAX)",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        f"Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, keras {keras.__version__}, jax "
        f"{__import__('jax').__version__}.",
        "",
        f"Clipped shPLRNN M = 3, L = 100, GTF-DEER, adaptive GTF (k = 5), Adam, batch 1, "
        f"T = {a.length}; {a.steps} steps per round, {a.rounds} alternating rounds, "
        f"compilation excluded; `fit` with steps_per_execution = {a.spe}.",
        "",
        "| | median ms / step | all rounds (ms / step) |",
        "|---|---|---|",
        f"| `fit` (schedule + guard + metrics in the step) | {fit_m * 1e3:.1f} | "
        + ", ".join(f"{t * 1e3:.1f}" for t in fit_t) + " |",
        f"| bare jitted step | {bare_m * 1e3:.1f} | "
        + ", ".join(f"{t * 1e3:.1f}" for t in bare_t) + " |",
        "",
        f"Ratio fit / bare (medians): **{fit_m / bare_m:.3f}**",
        "",
    ]
    print("\n".join(lines))
    if a.output:
        from keras_dsr.io import atomic_write

        with atomic_write(a.output) as fh:
            fh.write("\n".join(lines))


if __name__ == "__main__":
    main()
