"""Does lambda_max of a Lorenz-63 reconstruction depend on the hidden size L?

The zoo's first Lorenz-63 build (clipped shPLRNN, L = 100, the default recipe of
``keras_dsr.recipes``) reproduced the attractor's geometry and power spectrum but
its largest Lyapunov exponent came out ~20 % high (1.08 vs 0.90 per time unit):
a piecewise-linear map that fits the data one step ahead can still have
Jacobians that stretch too much. This experiment trains the same recipe on the
same data (Lorenz-63, data seed ``--seed``, 10^5 steps, dt = 0.01) with hidden
sizes ``--hidden`` (default 100, 200, 400) and scores every model under the zoo's
protocol (``keras_dsr.zoo.criteria``: test trajectory of seed + 1, floor seed + 2,
both from one ensemble solve, standardised with the training statistics), from
``--starts`` initial conditions on the test trajectory (0, T/3, 2T/3 by default):
D_stsp, D_H and lambda_max (QR method along a 20 000-step free run, per time unit)
against the true system's lambda_max.

Writes ``results.json`` and ``table.md`` to ``--out`` (default this folder) and
prints the table.

Usage (from the repository root):
    KERAS_BACKEND=jax python experiments/lambda_hidden_size/run.py         # ~25 min on 2 CPUs
    KERAS_BACKEND=jax python experiments/lambda_hidden_size/run.py --smoke # tiny (~1 min)
    options: --hidden 100,200,400 --steps N --seed S --starts 3 --out DIR
"""

import argparse
import datetime
import json
import os
import platform
import time

import numpy as np

import keras_dsr  # noqa: F401  (selects the backend before keras)
import keras

from keras_dsr.io import atomic_write
from keras_dsr.measures import evaluate
from keras_dsr.recipes import Recipe, train
from keras_dsr.systems import lyapunov_max, simulate, simulate_ensemble

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEM = "lorenz63"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", default="100,200,400", help="hidden sizes L (comma-separated)")
    p.add_argument("--steps", type=int, default=3000, help="Adam steps (default: the recipe's)")
    p.add_argument("--seed", type=int, default=1, help="data seed (the zoo preset's: 1)")
    p.add_argument("--starts", type=int, default=3, help="initial conditions per model")
    p.add_argument("--train-length", type=int, default=100_000)
    p.add_argument("--test-length", type=int, default=100_000)
    p.add_argument("--lyap-steps", type=int, default=20_000)
    p.add_argument("--seq-len", type=int, default=10_000)
    p.add_argument("--smoke", action="store_true", help="tiny budget for CI")
    p.add_argument("--out", default=HERE)
    a = p.parse_args(argv)
    if a.smoke:
        a.hidden, a.steps, a.starts = "8,16", 20, 2
        a.train_length, a.test_length, a.lyap_steps, a.seq_len = 4_000, 3_000, 1_000, 500
    a.hidden = [int(h) for h in a.hidden.split(",")]
    return a


def main(argv=None):
    a = parse(argv)
    tr = simulate(SYSTEM, a.train_length, seed=a.seed)
    test, other = simulate_ensemble(SYSTEM, a.test_length, seeds=(a.seed + 1, a.seed + 2),
                                    standardize=False)
    test = ((test.clean - tr.mean) / tr.std).astype("float32")
    lyap_true = float(lyapunov_max(SYSTEM))
    starts = [i * a.test_length // a.starts for i in range(a.starts)]
    rows = []
    for h in a.hidden:
        recipe = Recipe(hidden_dim=h, steps=a.steps, seed=a.seed, seq_len=a.seq_len,
                        train_length=a.train_length,
                        steps_per_epoch=min(100, a.steps))
        model, _, seconds = train(recipe, tr.x, verbose=0)
        for s in starts:
            sc = evaluate(model, test, measures=("dstsp", "dh", "lyap"), dt=tr.dt,
                          lyap_steps=a.lyap_steps, init_index=s)
            rows.append({"hidden": h, "start": s, "train_seconds": round(seconds, 1),
                         **{k: float(v) for k, v in sc.items()}})
            print(json.dumps(rows[-1]), flush=True)
    lines = [f"lambda_max true = {lyap_true:.3f} (per time unit)", "",
             "| L | start | D_stsp | D_H | lambda_max | error |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['hidden']} | {r['start']} | {r['dstsp']:.3f} | {r['dh']:.3f} | "
                     f"{r['lyap']:.3f} | {100 * (r['lyap'] - lyap_true) / lyap_true:+.1f} % |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(a.out, exist_ok=True)
    with atomic_write(os.path.join(a.out, "table.md")) as f:
        f.write(table + "\n")
    meta = {"date": datetime.date.today().isoformat(), "backend": keras.backend.backend(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
            "args": {k: v for k, v in vars(a).items() if k != "out"}, "lyap_true": lyap_true}
    results = {"meta": meta, "rows": rows}
    with atomic_write(os.path.join(a.out, "results.json")) as f:
        json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
