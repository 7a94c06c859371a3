"""Lorenz-63 from partial and from noisy observations: the criteria of issue 23.

Two parts, each a GTF-DEER-trained clipped shPLRNN (the recipe of
``examples/partial_observation.py``, whose ``run`` this experiment calls: hidden
size 100, 3 000 optimiser steps, training windows of 2 000 samples, 50 000
training samples at dt = 0.01; free runs started from a forced warm-up of 50 test
samples, :func:`keras_dsr.observed.warm_start`):

(a) ``x`` alone (N = 1), noise-free by default, delay-embedded (``--embed auto``:
    lag from the auto mutual information, dimension from false nearest neighbours),
    or not embedded (``--embed none --latent M --observation affine``: M latent units,
    an affine observation of x; the embedding space is then x itself).
    Scored in the embedding space and on the recorded channel against a clean test
    trajectory through the same observation; floor: an independent true trajectory
    through that observation. Criteria (medians over the seeds): D_stsp (embedding)
    <= floor + 0.3, D_H (embedding) <= 2 x floor, lambda_max of the model within
    20 % of the true 0.906, and every training under 10 minutes.
(b) all three variables with 10 % Gaussian observation noise on the training data
    (``--noise-b``, fraction of each variable's standard deviation), scored against a
    clean test trajectory. Criteria (medians): D_stsp <= 0.3, D_H <= 0.1.

lambda_max of a model: per time unit (per-step exponent / dt), from the free run that
starts at the warm-started state, averaged over ``--lyap-steps`` steps (default
20 000 = 200 time units, the averaging time of ``keras_dsr.zoo.criteria``); the true
value is the registry's reference for Lorenz-63.

Seeds run interleaved (a 0, b 0, a 1, ...). After every run ``results.json`` (all
rows, merged with the rows already there, keyed by part, variant and seed) and
``RESULTS.md`` (per-seed tables, medians, criteria) are rewritten atomically.

Usage (from the repository root):
    KERAS_BACKEND=jax python experiments/observed_lorenz63/run.py          # ~1 min a run
    KERAS_BACKEND=jax python experiments/observed_lorenz63/run.py --seq-len 10000 \
        --train-length 100000                                     # ~5 min a run
    KERAS_BACKEND=jax python experiments/observed_lorenz63/run.py --smoke  # seconds
    options: --parts a,b --seeds 0,1,2,3,4 --embed auto|DIM:LAG --latent M
             --observation identity|affine --noise-a F --noise-b F --steps N
             --seq-len T --train-length N --lyap-steps N --out DIR
"""

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

import keras_dsr  # noqa: F401  (selects the backend before keras)
import keras

from keras_dsr.io import atomic_write
from keras_dsr.models.engine import TrainingDiverged
from keras_dsr.reconstruction import floor_scores
from keras_dsr.systems import get_system

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TRUE_LYAP = float(get_system("lorenz63").lyapunov_ref)  # per time unit
TRAIN_LIMIT_S = 600.0
SEQ_LEN, TRAIN_LENGTH = 2000, 50_000  # the example's training windows and samples


def _example():
    """examples/partial_observation.py (the shared data, training and scoring)."""
    path = os.path.join(ROOT, "examples", "partial_observation.py")
    spec = importlib.util.spec_from_file_location("partial_observation_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _example_run():
    """``run`` of examples/partial_observation.py."""
    return _example().run


def variant_of(part, embed="auto", latent=None, observation="identity", noise=0.0,
               seq_len=SEQ_LEN, train_length=TRAIN_LENGTH):
    """A short label of a run's measurement and training options (rows are grouped by it)."""
    recipe = ""
    if (seq_len, train_length) != (SEQ_LEN, TRAIN_LENGTH):
        recipe = f", windows {seq_len}, {train_length} training samples"
    if part == "b":
        return f"all variables, noise {noise:g}" + recipe
    label = "x" + (f", embed {embed}" if embed not in (None, "none") else "")
    if latent is not None:
        label += f", M = {latent} {observation}"
    return label + (f", noise {noise:g}" if noise else "") + recipe


def run_seed(part, seed, smoke=False, steps=3000, embed="auto", latent=None,
             observation="identity", noise=None, lyap_steps=20_000, seq_len=SEQ_LEN,
             train_length=TRAIN_LENGTH):
    """One training and its scores for part ``"a"`` (x alone) or ``"b"`` (noisy, all).

    Returns a dict: part, variant, seed, train_s, dim, lag, lyap (model, per time
    unit), lyap_true, lyap_rel_err, scores (``embedded``, ``recorded``: D_stsp and
    D_H of the model) and floors (same keys), finite and training_diverged (the
    training stopped with ``TrainingDiverged``: scores and lambda_max inf).
    """
    run = _example_run()
    if part == "a":
        noise = 0.0 if noise is None else noise
        observe = "x"
    elif part == "b":
        noise = 0.1 if noise is None else noise
        embed, latent, observation, observe = None, None, "identity", None
    else:
        raise ValueError(f"part must be 'a' or 'b', got {part!r}.")
    kwargs = dict(quick=smoke, seed=seed, noise=noise, embed=embed, latent=latent,
                  observation=observation, observe=observe, steps=steps, seq_len=seq_len,
                  train_length=train_length)
    start = time.perf_counter()
    try:
        out = run(lyap_steps=200 if smoke else lyap_steps, **kwargs)
    except TrainingDiverged:
        out = _diverged(time.perf_counter() - start, **kwargs)
    lyap = float(out["lyap"])
    return {
        "part": part, "seed": int(seed),
        "variant": variant_of(part, embed, latent, observation, noise, seq_len, train_length),
        "train_s": float(out["seconds"]), "dim": int(out["dim"]), "lag": int(out["lag"]),
        "lyap": lyap, "lyap_true": TRUE_LYAP,
        "lyap_rel_err": abs(lyap - TRUE_LYAP) / TRUE_LYAP,
        "scores": {k: {m: float(v) for m, v in out[k].items()} for k in ("embedded", "recorded")},
        "floors": {k: {m: float(v) for m, v in out["floor_" + k].items()}
                   for k in ("embedded", "recorded")},
        "finite": bool(out["finite"]),
        "training_diverged": bool(out.get("training_diverged", False)),
    }


def _diverged(seconds, quick, seed, noise, embed, latent, observation, observe, steps,
              seq_len, train_length, test_length=50_000):
    """The row of a training that stopped diverged (``TrainingDiverged``): every score
    and lambda_max infinite, the floors as the example computes them, ``seconds`` the
    wall time until the stop (simulation included)."""
    if quick:
        train_length, test_length = 4_000, 3_000
    prep, x_test, x_other = _example().prepare_data(seed, noise, embed, latent, train_length,
                                                    test_length, observe, observation)
    ch = list(prep.channels)
    inf = {"dstsp": float("inf"), "dh": float("inf")}
    return {"dim": prep.observation.dim, "lag": prep.observation.lag, "seconds": seconds,
            "embedded": inf, "recorded": dict(inf), "lyap": float("inf"),
            "floor_embedded": floor_scores(x_test, x_other),
            "floor_recorded": floor_scores(x_test[:, ch], x_other[:, ch]), "finite": False,
            "training_diverged": True}


def _f(v, d=3):
    return "inf" if np.isinf(v) else "nan" if not np.isfinite(v) else f"{v:.{d}f}"


def _median(rows, get):
    return float(np.median([get(r) for r in rows]))


def criteria(part, rows):
    """``[(criterion, value, bound, met)]`` on the medians of ``rows``."""
    med = lambda get: _median(rows, get)  # noqa: E731
    emb = lambda m: med(lambda r: r["scores"]["embedded"][m])  # noqa: E731
    flo = lambda m: med(lambda r: r["floors"]["embedded"][m])  # noqa: E731
    lyap_err = abs(med(lambda r: r["lyap"]) - TRUE_LYAP) / TRUE_LYAP
    if part == "a":
        out = [("median D_stsp (embedding) <= median floor + 0.3", emb("dstsp"),
                flo("dstsp") + 0.3),
               ("median D_H (embedding) <= 2 x median floor", emb("dh"), 2 * flo("dh")),
               ("median lambda_max within 20 % of the true value (relative error)",
                lyap_err, 0.2),
               ("every training under 10 minutes (longest, s)",
                max(r["train_s"] for r in rows), TRAIN_LIMIT_S)]
    else:
        out = [("median D_stsp (clean test) <= 0.3", emb("dstsp"), 0.3),
               ("median D_H (clean test) <= 0.1", emb("dh"), 0.1)]
    return [(name, v, b, bool(np.isfinite(v) and v <= b)) for name, v, b in out]


def tables(results):
    """The markdown body: per variant, per-seed rows, medians and criteria."""
    lines = []
    titles = {"a": "(a) x alone", "b": "(b) 10 % observation noise, fully observed"}
    groups = {}
    for r in results["rows"]:
        groups.setdefault((r["part"], r["variant"]), []).append(r)
    for (part, variant), rows in sorted(groups.items()):
        rows = sorted(rows, key=lambda r: r["seed"])
        lines += [f"## {titles[part]}: {variant}", ""]
        commands = sorted({r["command"] for r in rows if "command" in r})
        if commands:
            lines += ["Command: " + "; ".join(f"`{c}`" for c in commands), ""]
        if part == "a":
            lines += ["| seed | dim:lag | train s | D_stsp emb (floor) | D_H emb (floor) "
                      "| D_stsp x (floor) | D_H x (floor) | lambda_max (true) |",
                      "|---|---|---|---|---|---|---|---|"]
        else:
            lines += ["| seed | train s | D_stsp (floor) | D_H (floor) | lambda_max (true) |",
                      "|---|---|---|---|---|"]

        def cells(get_s, get_f, m):
            return f"{_f(get_s(m))} ({_f(get_f(m))})"

        for label, pick in [(str(r["seed"]), [r]) for r in rows] + [("median", rows)]:
            med = lambda get: _median(pick, get)  # noqa: E731
            s = {k: (lambda m, k=k: med(lambda r: r["scores"][k][m])) for k in
                 ("embedded", "recorded")}
            f = {k: (lambda m, k=k: med(lambda r: r["floors"][k][m])) for k in
                 ("embedded", "recorded")}
            lyap = f"{_f(med(lambda r: r['lyap']))} ({TRUE_LYAP:.3f})"
            secs = f"{med(lambda r: r['train_s']):.0f}"
            if part == "a":
                dl = (f"{pick[0]['dim']}:{pick[0]['lag']}" if len(pick) == 1 else "")
                lines.append(f"| {label} | {dl} | {secs} | "
                             f"{cells(s['embedded'], f['embedded'], 'dstsp')} | "
                             f"{cells(s['embedded'], f['embedded'], 'dh')} | "
                             f"{cells(s['recorded'], f['recorded'], 'dstsp')} | "
                             f"{cells(s['recorded'], f['recorded'], 'dh')} | {lyap} |")
            else:
                lines.append(f"| {label} | {secs} | "
                             f"{cells(s['embedded'], f['embedded'], 'dstsp')} | "
                             f"{cells(s['embedded'], f['embedded'], 'dh')} | {lyap} |")
        seeds = ", ".join(str(r["seed"]) for r in rows)
        lines += ["", f"Seeds run: {seeds}."]
        stopped = [str(r["seed"]) for r in rows if r.get("training_diverged")]
        if stopped:
            lines += ["", f"Training stopped diverged (TrainingDiverged: the trained model's "
                      f"free run left the data's bounds) for seed{'s' * (len(stopped) > 1)} "
                      f"{', '.join(stopped)}: scores and lambda_max inf, \"train s\" the "
                      f"wall time until the stop."]
        lines += ["", "| criterion | value | bound | met |", "|---|---|---|---|"]
        for name, v, b, met in criteria(part, rows):
            lines.append(f"| {name} | {_f(v)} | {_f(b)} | {'met' if met else 'not met'} |")
        lines.append("")
    return "\n".join(lines)


HEADER = """# Lorenz-63 from partial and from noisy observations

A clipped shPLRNN (hidden size 100) trained by GTF-DEER with the recipe of
`examples/partial_observation.py` (3 000 optimiser steps, windows of 2 000 samples,
50 000 training samples at dt = 0.01, unless a section's title says otherwise: the
`keras-dsr reconstruct` default, windows of 10 000 and 100 000 training samples, is
the alternative tried), free runs started from a forced warm-up on
50 test samples and scored on 50 000 clean test samples (generate 1.25 T, drop the
first quarter). (a): x alone, delay-embedded ("embed"), or not embedded and modelled by
M latent units with an affine observation of x ("M = 3 affine"; then the embedding
space is x itself and "emb" equals "x"); scores in the embedding space ("emb") and
on the recorded channel x; floor: an independent true trajectory through the same
observation. (b): all variables, Gaussian observation noise on the training
data only; scores against clean test data. lambda_max: per time unit, from the
warm-started free run, averaged over {lyap_steps} steps; true value {true:.4f}.
"train s": seconds of training (the optimiser steps, compilation included).

The command that produced each section is stated under its title.

Machine: {machine}, backend {backend}. Timings are on a 2-core machine shared with
other work; they are upper bounds of what the same machine does unloaded.
"""


def write_results(out_dir, results):
    with atomic_write(os.path.join(out_dir, "results.json")) as fh:
        json.dump(results, fh, indent=1)
    text = HEADER.format(**results["meta"], true=TRUE_LYAP) + "\n" + tables(results)
    with atomic_write(os.path.join(out_dir, "RESULTS.md")) as fh:
        fh.write(text)
    return text


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default="a,b", help="comma-separated parts: a, b")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps")
    p.add_argument("--embed", default="auto", help="(a) 'auto' or DIM:LAG or 'none'")
    p.add_argument("--latent", type=int, default=None, help="(a) latent size M")
    p.add_argument("--observation", default="identity", help="(a) identity or affine")
    p.add_argument("--noise-a", type=float, default=0.0, help="(a) observation noise")
    p.add_argument("--noise-b", type=float, default=0.1, help="(b) observation noise")
    p.add_argument("--seq-len", type=int, default=SEQ_LEN, help="training window length")
    p.add_argument("--train-length", type=int, default=TRAIN_LENGTH,
                   help="training samples (the Recipe's default: 100 000)")
    p.add_argument("--lyap-steps", type=int, default=20_000)
    p.add_argument("--out", default=None,
                   help="output folder (default: this folder; --smoke: a temporary one)")
    p.add_argument("--smoke", action="store_true", help="tiny budget, for CI")
    a = p.parse_args(argv)
    a.parts = [s.strip() for s in a.parts.split(",") if s.strip()]
    a.seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    if a.out is None:
        a.out = tempfile.mkdtemp(prefix="observed_smoke_") if a.smoke else HERE
    os.makedirs(a.out, exist_ok=True)
    return a


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    path = os.path.join(a.out, "results.json")
    results = {"rows": []}
    if os.path.exists(path) and not a.smoke:
        with open(path, encoding="utf-8") as fh:
            results = json.load(fh)
    results["meta"] = {
        "command": "KERAS_BACKEND=" + keras.backend.backend() + " python experiments/"
                   "observed_lorenz63/run.py" + "".join(" " + s for s in argv
                                                       if not os.path.isabs(s)),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "backend": keras.backend.backend(), "lyap_steps": 200 if a.smoke else a.lyap_steps}
    embed = None if a.embed == "none" else a.embed
    for seed in a.seeds:
        for part in a.parts:
            row = run_seed(part, seed, smoke=a.smoke, steps=a.steps, embed=embed,
                           latent=a.latent, observation=a.observation,
                           noise=a.noise_a if part == "a" else a.noise_b,
                           lyap_steps=a.lyap_steps, seq_len=a.seq_len,
                           train_length=a.train_length)
            row["command"] = results["meta"]["command"]
            key = (row["part"], row["variant"], row["seed"])
            results["rows"] = [r for r in results["rows"]
                               if (r["part"], r["variant"], r["seed"]) != key] + [row]
            s = row["scores"]["embedded"]
            print(f"({part}) seed {seed} [{row['variant']}]: train {row['train_s']:.0f} s, "
                  f"D_stsp {s['dstsp']:.3f}, D_H {s['dh']:.3f}, lambda_max "
                  f"{row['lyap']:.3f}", flush=True)
            write_results(a.out, results)
    print(tables(results), flush=True)
    return results


if __name__ == "__main__":
    main()
