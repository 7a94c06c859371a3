"""The lab's ECG benchmark trained through keras_dsr and scored as the lab scores it.

Data: :func:`keras_dsr.datasets.load_ecg` (the Durstewitz lab's 5-d PECUZAL delay
embedding of one ECG lead, 100 000 training and 100 000 test samples; downloaded on
first use, never committed). Model and training: :meth:`keras_dsr.recipes.Recipe.lab_ecg`
(clipped shPLRNN, M = 5, L = 250, affine observation, full forcing; ``--variant gtf``:
constant alpha 0.3, the "shPLRNN + GTF" row of Hess et al., ICML 2023, Table 1;
``--variant agtf``: adaptive alpha and a latent L2, the "+ aGTF" row), 250 000
optimiser steps of 16 windows of 200 samples unless ``--steps`` says otherwise.

Scores (the lab's evaluation, ``evaluate_run`` of its repository, rewritten here
through :func:`keras_dsr.measures.evaluate`): a free run of 1.25 x 100 000 steps from
the first test sample, its first 25 000 steps dropped; D_stsp by 30 bins per
dimension (the lab's choice for N < 6); D_H with Gaussian smoothing sigma = 20;
PE(20), the mean squared 20-step-ahead error, from 1 000 test samples. Floor: the
lab's training file itself scored as a generated trajectory against the test file
(what an ideal model's free run can reach, given that the two recordings differ).

Each seed is one process: several can run side by side (one per core). After each
seed ``results.json`` (rows keyed by variant and seed, merged under a file lock with
the rows already there) and ``RESULTS.md`` are rewritten atomically.

Usage (from the repository root):
    KERAS_BACKEND=jax python experiments/lab_ecg/run.py --seeds 0     # ~65 min a seed
    KERAS_BACKEND=jax python experiments/lab_ecg/run.py --smoke       # seconds, own data
    options: --seeds 0,1 --variant gtf|agtf --steps N --method sequential|deer --save
             --origin URL (a mirror or file:// folder of the lab's data) --out DIR
"""

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

import keras_dsr  # noqa: F401  (selects the backend before keras)
import keras

from keras_dsr.cards import final_logs
from keras_dsr.io import atomic_save_model, atomic_write
from keras_dsr.measures import evaluate, power_spectrum_distance, state_space_divergence
from keras_dsr.models.engine import TrainingDiverged
from keras_dsr.recipes import Recipe, train

HERE = os.path.dirname(os.path.abspath(__file__))
PE_INITS = 1000  # test samples PE(20) starts from (the lab: every sample)


def _data(smoke, origin):
    """(train, test) [T, 5]: the lab's files, or (``smoke``) a noisy 5-d delay embedding
    of a sine-like oscillator made here (no network)."""
    if not smoke:
        from keras_dsr.datasets import load_ecg

        return load_ecg(origin=origin)
    t = np.arange(6000) * 0.05
    rng = np.random.default_rng(0)
    s = np.sin(t) + 0.5 * np.sin(2.1 * t) + 0.05 * rng.normal(size=t.size)
    x = np.stack([s[4 * k: s.size - 4 * (4 - k)] for k in range(5)], axis=1)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    return x[:3000], x[3000:]


def floor(train_x, test_x):
    """The training file scored as a generated trajectory against the test file."""
    return {"dstsp": float(state_space_divergence(test_x, train_x, n_bins=30)),
            "dh": float(power_spectrum_distance(test_x, train_x, sigma=20.0))}


def run_seed(seed, variant="gtf", steps=None, method="sequential", smoke=False,
             origin=None, save=None):
    """Train the lab's recipe with ``seed`` and score it on the test file (a row);
    ``save``: a folder to keep the trained model in (``<variant>_seed<seed>.keras``)."""
    train_x, test_x = _data(smoke, origin)
    changes = {"seed": int(seed), "method": method}
    if steps is not None:
        changes["steps"] = int(steps)
    if smoke:
        changes.update(steps=20, steps_per_epoch=10, hidden_dim=16, seq_len=50)
    recipe = Recipe.lab_ecg(adaptive=variant == "agtf", **changes)
    row = {"variant": variant, "seed": int(seed), "steps": recipe.steps,
           "method": recipe.method, "backend": keras.backend.backend()}
    start = time.perf_counter()
    try:
        model, history, seconds = train(recipe, train_x, verbose=0)
    except TrainingDiverged as e:
        row.update(train_s=time.perf_counter() - start, diverged=str(e),
                   dstsp=float("inf"), dh=float("inf"), pe=float("inf"))
        return row
    if save:
        os.makedirs(save, exist_ok=True)
        atomic_save_model(model, os.path.join(save, f"{variant}_seed{int(seed)}.keras"))
    scores = evaluate(model, test_x, measures=("dstsp", "dh", "pe"), n_bins=30,
                      sigma=20.0, pe_steps=20, pe_max_inits=PE_INITS)
    logs = final_logs(history)
    row.update(train_s=float(seconds), diverged=None, final_loss=logs.get("loss"),
               final_alpha=logs.get("alpha"), **{k: float(v) for k, v in scores.items()})
    return row


@contextlib.contextmanager
def _locked(path):
    """An exclusive lock on ``path + '.lock'`` (rows of concurrent seeds are merged)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: one process at a time
        yield
        return
    with open(path + ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _median(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else float("nan")


def write_results(out, new_rows, floor_scores):
    """Merge ``new_rows`` into ``out/results.json`` (by variant and seed) and rewrite
    ``out/RESULTS.md``; returns all rows."""
    path = os.path.join(out, "results.json")
    with _locked(path):
        rows = []
        if os.path.isfile(path):
            with open(path) as fh:
                rows = json.load(fh)["rows"]
        keys = {(r["variant"], r["seed"]) for r in new_rows}
        rows = [r for r in rows if (r["variant"], r["seed"]) not in keys] + list(new_rows)
        rows.sort(key=lambda r: (r["variant"], r["seed"]))
        with atomic_write(path) as fh:
            json.dump({"floor": floor_scores, "rows": rows}, fh, indent=1)
        with atomic_write(os.path.join(out, "RESULTS.md")) as fh:
            fh.write(markdown(rows, floor_scores))
    return rows


def markdown(rows, floor_scores):
    """RESULTS.md: one table per variant (a row per seed, then the median)."""
    lines = ["# The lab's ECG benchmark through keras_dsr", "",
             "The Durstewitz lab's ECG data (`keras_dsr.datasets.load_ecg`: a 5-d delay "
             "embedding of one lead, 100 000 training and 100 000 test samples) and its "
             "\"shPLRNN + GTF\" setup (`Recipe.lab_ecg()`: clipped shPLRNN, M = 5, L = 250, "
             "affine observation, full forcing, constant alpha 0.3, 16 windows of 200 "
             "samples, 250 000 steps, learning rate 1e-3 to 1e-6), trained here through "
             "`keras_dsr.recipes.train`. Hess et al. (ICML 2023) report this setup in their "
             "Table 1 as the mean over 20 models; differences of this setup from the "
             "lab's code are listed in `Recipe.lab_ecg`'s docstring.", "",
             "Commands (one process per seed, side by side): "
             + ", ".join(f"`{c}`" for c in dict.fromkeys(r["command"] for r in rows))
             + f". Machine: {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPU cores.", "",
             "Scored as the lab's `evaluate_run` scores: a free run of 1.25 T steps from "
             "the first test sample (T: the test file's length), the first 0.25 T dropped; "
             "D_stsp with 30 bins per "
             "dimension; D_H with sigma 20; PE(20) from "
             f"{PE_INITS} test samples. Floor: the training file scored against the test "
             f"file: D_stsp {floor_scores['dstsp']:.3f}, D_H {floor_scores['dh']:.3f}.", ""]
    for variant in sorted({r["variant"] for r in rows}):
        group = [r for r in rows if r["variant"] == variant]
        lines += [f"## {variant}", "",
                  "| seed | steps | method | backend | train s | D_stsp | D_H | PE(20) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in group:
            lines.append(f"| {r['seed']} | {r['steps']} | {r['method']} | {r['backend']} | "
                         f"{r['train_s']:.0f} | {r['dstsp']:.3f} | {r['dh']:.3f} | "
                         f"{r['pe']:.4f} |" + (" diverged" if r.get("diverged") else ""))
        med = {k: _median([r[k] for r in group]) for k in ("train_s", "dstsp", "dh", "pe")}
        lines.append(f"| median | | | | {med['train_s']:.0f} | {med['dstsp']:.3f} | "
                     f"{med['dh']:.3f} | {med['pe']:.4f} |")
        lines.append("")
    return "\n".join(lines)


def recorded_command(argv):
    """The command line for RESULTS.md: ``--origin`` (where this machine read the lab's
    files from; the files are the pinned ones wherever they come from) and ``--out``
    are left out."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--origin", "--out"):
            skip = True
            continue
        if arg.startswith(("--origin=", "--out=")):
            continue
        kept.append(arg)
    return " ".join([f"KERAS_BACKEND={keras.backend.backend()} python "
                     "experiments/lab_ecg/run.py", *kept])


def main(argv=None):
    p = argparse.ArgumentParser(prog="experiments/lab_ecg/run.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0")
    p.add_argument("--variant", choices=("gtf", "agtf"), default="gtf")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (lab: 250000)")
    p.add_argument("--method", choices=("sequential", "deer"), default="sequential",
                   help="the solver along each 200-sample window (same gradients; "
                        "sequential is the faster on a CPU at this length)")
    p.add_argument("--origin", default=None, help="base URL of the lab's data files")
    p.add_argument("--smoke", action="store_true", help="tiny run on data made here")
    p.add_argument("--out", default=None)
    p.add_argument("--save", action="store_true",
                   help="keep each trained model in OUT/models/ (not committed)")
    p.add_argument("--table", action="store_true",
                   help="no training: rewrite RESULTS.md from the rows of results.json")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    out = a.out or (tempfile.mkdtemp(prefix="lab_ecg_smoke_") if a.smoke else HERE)
    os.makedirs(out, exist_ok=True)
    if a.table:
        with open(os.path.join(out, "results.json")) as fh:
            saved = json.load(fh)
        return {"rows": write_results(out, [], saved["floor"]), "floor": saved["floor"],
                "out": out}
    train_x, test_x = _data(a.smoke, a.origin)
    floor_scores = floor(train_x, test_x)
    command = recorded_command(sys.argv[1:] if argv is None else argv)
    rows = []
    for seed in (int(s) for s in a.seeds.split(",")):
        row = run_seed(seed, a.variant, a.steps, a.method, a.smoke, a.origin,
                       save=os.path.join(out, "models") if a.save else None)
        row["command"] = command
        print(json.dumps(row), flush=True)
        rows = write_results(out, [row], floor_scores)
    return {"rows": rows, "floor": floor_scores, "out": out}


if __name__ == "__main__":
    main()
