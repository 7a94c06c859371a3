"""GTF-DEER on one training window of T = 100 000 steps, and its gradient against BPTT.

Trains a clipped shPLRNN on a single Lorenz-63 window of ``--seq-len`` steps
(default 100 000 = 1000 time units; every batch is that whole window) with
``keras_dsr.recipes.train`` (GTF-DEER, adaptive GTF, Adam with cosine decay), and
reports per epoch the mean number of Newton iterations per step (``deer_iterations``
in the logs) and the time per optimiser step. Then it computes the gradient of the
training loss on that window twice with the same weights and alpha: by GTF-DEER
(parallel Newton solve, one differentiable Newton step) and by sequential BPTT
(``method="sequential"``, a ``scan`` over 10^5 steps), and prints their maximum
relative difference (docs/method.md §DEER: they must agree to float32 rounding). In full mode
the trained model also runs freely and is scored (D_stsp, D_H) against an independent
test trajectory.

Run:  python examples/long_sequence.py                 (300 steps at T = 100 000; ~13 min
                                                        on a loaded 2-core CPU)
      python examples/long_sequence.py --steps 600 --seq-len 200000
      python examples/long_sequence.py --smoke         (T = 100 000, 4 steps; CI smoke mode)

Prints a line per epoch (``epoch k: loss ..., alpha ..., Newton iterations/step ...,
... s/step``), then ``Newton iterations per step: mean ..., max ...``, ``time per step:
... s (median, compilation excluded)``, the gradient comparison
``max relative gradient difference DEER vs BPTT = ...`` with both timings, and in full
mode ``D_stsp = ...   D_H = ...``.

Measured (JAX, 2 CPU cores shared with other jobs, load ~8): full mode 2.0 s per step,
2.9 Newton iterations per step on average (3 at most), gradient difference 2.5e-5 at
alpha 0.64 (DEER 4.5 s, BPTT 3.2 s), 761 s in all; 300 steps are too few for the
adaptive alpha to anneal (0.64 at the end) and the free run fell onto a fixed point
(D_stsp 15.5; floor 0.03): a reconstruction needs thousands of steps (see
``examples/train_lorenz63.py``). Smoke mode (alpha 0.2): 5 iterations, 0.8 s per
step, difference 2.4e-6, 2 min in all.
"""

import argparse
import time

import numpy as np

import keras_dsr  # noqa: F401  (JAX unless a backend was chosen)
import keras
from keras import ops
from keras_dsr.measures import evaluate, power_spectrum_distance, state_space_divergence
from keras_dsr.models import DSRModel
from keras_dsr.recipes import Recipe, train
from keras_dsr.systems import simulate_ensemble
from keras_dsr.utils import value_and_grad


class StepTimer(keras.callbacks.Callback):
    """Times every optimiser step (end of batch to end of batch); prints a line per epoch."""

    def on_train_begin(self, logs=None):
        self.times, self.last, self.first = [], time.perf_counter(), True

    def on_train_batch_end(self, batch, logs=None):
        if logs:  # reading a log value waits for the step to finish
            float(logs["loss"])
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now

    def on_epoch_end(self, epoch, logs=None):
        spent = self.times[-self.params["steps"]:]
        print(f"epoch {epoch + 1}: loss {logs['loss']:.4f}, alpha {logs['alpha']:.3f}, "
              f"Newton iterations/step {logs['deer_iterations']:.2f}, {np.mean(spent):.2f} "
              "s/step" + (" (incl. compilation)" if self.first else ""), flush=True)
        self.first = False


def loss_and_grads(model, x):
    """Training loss of ``model`` on windows ``x`` and its gradient (numpy, per variable)."""
    fixed = [v.value for v in model.non_trainable_variables]
    target = ops.convert_to_tensor(x[:, 1:])
    inputs = ops.convert_to_tensor(x)

    def loss(*trainable):
        pred, _ = model.stateless_call(list(trainable), fixed, inputs)
        return ops.mean((pred - target) ** 2)

    fn = value_and_grad(loss)
    args = [v.value for v in model.trainable_variables]
    fn(*args)  # compile
    t0 = time.perf_counter()
    value, grads = fn(*args)
    grads = [np.asarray(ops.convert_to_numpy(g), dtype=np.float64) for g in grads]
    return float(ops.convert_to_numpy(value)), grads, time.perf_counter() - t0


def alpha(text):
    """argparse type of ``--alpha``: "adaptive" or a number (the Recipe checks [0, 1])."""
    return text if text == "adaptive" else float(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a handful of steps, for CI")
    parser.add_argument("--seq-len", type=int, default=100_000, help="window length T")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps")
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--alpha", type=alpha, default="adaptive",
                        help='GTF forcing: "adaptive" (default) or a constant in [0, 1]')
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tol = 1e-10  # ODE tolerances of keras_dsr.systems
    if args.smoke:  # T stays 10^5: a looser ODE tolerance, few steps, a fixed alpha < 1
        args.steps, args.steps_per_epoch, args.hidden, args.alpha, tol = 4, 2, 32, 0.2, 1e-6
    for opt, value, low in (("--seq-len", args.seq_len, 10), ("--steps", args.steps, 1),
                            ("--steps-per-epoch", args.steps_per_epoch, 1),
                            ("--hidden", args.hidden, 1)):
        if value < low:
            parser.error(f"{opt} must be >= {low}, got {value}")
    if not args.lr > 0:
        parser.error(f"--lr must be > 0, got {args.lr}")

    T = args.seq_len
    try:
        recipe = Recipe(seq_len=T, batch_size=1, steps=args.steps,
                        steps_per_epoch=min(args.steps_per_epoch, args.steps),
                        hidden_dim=args.hidden, learning_rate=args.lr, alpha=args.alpha,
                        train_length=T, seed=args.seed)
    except ValueError as e:  # e.g. --alpha outside [0, 1]
        parser.error(str(e))
    seeds = [args.seed] if args.smoke else [args.seed, args.seed + 1, args.seed + 2]
    trajs = simulate_ensemble("lorenz63", T, seeds=seeds, standardize=False,
                              rtol=tol, atol=tol)
    mean, std = trajs[0].clean.mean(0), trajs[0].clean.std(0)   # training statistics
    x, *test_other = [((t.clean - mean) / std).astype("float32") for t in trajs]
    print(f"Lorenz-63, one window of T = {T} steps ({T * trajs[0].dt:g} time units), "
          f"{args.steps} GTF-DEER steps, {keras.backend.backend()} backend")

    timer = StepTimer()
    model, history, seconds = train(recipe, x, callbacks=[timer], verbose=0)
    h = history.history
    steady = timer.times[1:] or timer.times
    print(f"Newton iterations per step: mean {np.mean(h['deer_iterations']):.2f}, "
          f"max {np.max(h['deer_iterations']):.2f} (epoch means); fallbacks to the loop: "
          f"{np.mean(h['deer_fallbacks']):.2f}")
    print(f"time per step: {np.median(steady):.3f} s (median, compilation excluded); "
          f"training {seconds:.0f} s in all")

    # The same loss and weights, solved by DEER and by sequential BPTT.
    window = x[None]
    twin = DSRModel.from_config(dict(model.get_config(), method="sequential"))
    twin.build(window.shape)
    twin.set_weights(model.get_weights())   # cell weights and the current alpha
    l_deer, g_deer, t_deer = loss_and_grads(model, window)
    l_seq, g_seq, t_seq = loss_and_grads(twin, window)
    scale = max(max(np.max(np.abs(g)) for g in g_seq), 1e-30)
    diff = max(np.max(np.abs(a - b)) for a, b in zip(g_deer, g_seq)) / scale
    print(f"gradient on the T = {T} window at alpha = {model.alpha:.3f}: loss DEER "
          f"{l_deer:.6f}, BPTT {l_seq:.6f}")
    print(f"max relative gradient difference DEER vs BPTT = {diff:.2e} "
          f"(max |g_deer - g_bptt| / max |g_bptt| over all weights); "
          f"time DEER {t_deer:.2f} s, BPTT {t_seq:.2f} s")

    if test_other:  # full mode: the free run against an independent test trajectory
        test, other = test_other
        s = evaluate(model, test)
        print(f"D_stsp = {s['dstsp']:.3f}   D_H = {s['dh']:.3f}   (floor of an independent "
              f"true trajectory: {state_space_divergence(test, other):.3f} / "
              f"{power_spectrum_distance(test, other):.3f})")
    return diff


if __name__ == "__main__":
    main()
