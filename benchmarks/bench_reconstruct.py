"""Where the time of ``keras-dsr reconstruct lorenz63`` goes, and what two choices save.

In one process, one variant after the other (ratios; absolute times on a shared
machine are noisy, so run it on a quiet one; ~8 min on 2 CPU cores):

* simulation: the training, test and floor trajectories (3 x 10^5 steps of
  Lorenz-63, DOP853) as three separate solves vs one ensemble solve
  (``keras_dsr.recipes.simulate_split``, what ``reconstruct`` does);
* training: the default recipe (clipped shPLRNN, L = 100, T = 10 000 windows,
  batch 1, adaptive GTF, ``--train-steps`` Adam steps, default the recipe's 3 000) on
  the same data, with DEER over the whole window and with ``chunk_size`` C
  (``--chunks``, default 250: the CLI's default on a CPU), one after the other;
  wall clock of ``keras_dsr.recipes.train`` (compilation included, as a user sees it).
  A full run is timed because the cost per step changes along it (adaptive GTF
  lowers alpha, and DEER needs more Newton iterations at small alpha).

Usage:
    KERAS_BACKEND=jax python benchmarks/bench_reconstruct.py
    KERAS_BACKEND=jax python benchmarks/bench_reconstruct.py --output benchmarks/RESULTS_reconstruct.md
    options: --rounds R (simulation repeats) --train-steps S --chunks 250,1000
"""

import argparse
import os
import platform
import sys
import time

import keras_dsr  # noqa: F401  (selects the backend before keras)
import keras

from keras_dsr.recipes import Recipe, simulate_like, simulate_split, train
from keras_dsr.systems import simulate


def bench_simulation(rounds):
    sep, ens = 0.0, 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        tr = simulate("lorenz63", 100_000, seed=0)
        simulate_like("lorenz63", 100_000, 1, tr)
        simulate_like("lorenz63", 100_000, 2, tr)
        t1 = time.perf_counter()
        simulate_split("lorenz63", 100_000, 100_000, 0, n_extra=1)
        t2 = time.perf_counter()
        sep, ens = sep + t1 - t0, ens + t2 - t1
    return sep / rounds, ens / rounds


def bench_training(steps, chunks):
    x = simulate("lorenz63", 100_000, seed=0).x
    seconds = {}
    for c in [None] + chunks:
        _, history, seconds[c] = train(Recipe(chunk_size=c, steps=steps), x, verbose=0)
        print(f"chunk_size {c}: {seconds[c]:.1f} s, final loss "
              f"{history.history['loss'][-1]:.3g}", flush=True)
    return seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2, help="repeats of the simulation timing")
    p.add_argument("--train-steps", type=int, default=3000)
    p.add_argument("--chunks", default="250")
    p.add_argument("--output", help="also write the markdown table here")
    a = p.parse_args(argv)
    chunks = [int(c) for c in a.chunks.split(",") if c]
    sep, ens = bench_simulation(a.rounds)
    seconds = bench_training(a.train_steps, chunks)
    dense = seconds[None]
    lines = [
        f"Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"backend {keras.backend.backend()}; command: `KERAS_BACKEND="
        f"{keras.backend.backend()} python benchmarks/bench_reconstruct.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`".rstrip() + "",
        "",
        "| what | time | ratio |",
        "|---|---|---|",
        f"| simulation, 3 separate solves (3 x 10^5 steps) | {sep:.1f} s | 1 |",
        f"| simulation, one ensemble solve (simulate_split) | {ens:.1f} s | {ens / sep:.2f} |",
        f"| training ({a.train_steps} steps), whole-window DEER | {dense:.1f} s | 1 |",
    ]
    for c in chunks:
        lines.append(f"| training ({a.train_steps} steps), chunk_size = {c} | {seconds[c]:.1f} s | "
                     f"{seconds[c] / dense:.2f} |")
    table = "\n".join(lines)
    print(table)
    if a.output:
        with open(a.output, "w") as f:
            f.write("# `keras-dsr reconstruct lorenz63`: simulation and training step\n\n"
                    + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
