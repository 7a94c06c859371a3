"""Does training on longer sequences capture the slow time scale? (Hindmarsh–Rose)

The experiment behind finding (b) of Hess, Götz & Durstewitz (2026): GTF-DEER
makes long training sequences affordable, and long sequences let a model learn
slow time scales. Here a clipped shPLRNN (the GTF-DEER recipe of
``keras_dsr.recipes``) is trained on a bursting Hindmarsh–Rose neuron (dt = 0.05;
fast spiking in x, y, slow adaptation z with r = 0.006, bursts ~100 time units =
~2 000 samples apart) with training windows of T in ``--lengths`` (default
200, 2 000, 20 000 samples = 10, 100, 1 000 time units). Everything else is
equal: the same training trajectory, the same number of optimiser steps, and
the same number of time steps per batch (``--tokens`` / T windows per batch:
100 x 200, 10 x 2 000, 1 x 20 000).

Each model then runs freely from the first point of an independent test
trajectory (standardised with the training statistics, as in
``keras_dsr.recipes.reconstruct``) and is scored with D_stsp and D_H (docs/method.md §Evaluation measures
protocol: generate 1.25 T_test, drop the first quarter), next to the floor of an
independent true trajectory, and on the slow time scale directly: inter-burst
intervals and spikes per burst of x (``keras_dsr.bursts``), in time units, against the
true test trajectory. W1(IBI) is the Wasserstein-1 distance between the model's
and the test set's inter-burst-interval distributions.

Writes to ``--out``: ``results.json`` (all numbers, training logs), ``table.md``
(the markdown table, also printed) and ``bursts.png`` (x(t) of the true test
trajectory and of each model's free run from the same initial condition, and
the inter-burst-interval histograms).

Usage (from the repository root):
    KERAS_BACKEND=jax python experiments/sequence_length/run.py            # full, ~25 min on 2 CPUs
    KERAS_BACKEND=jax python experiments/sequence_length/run.py --smoke    # tiny budget (~1 min)
    options: --steps N --seed S --lengths 200,2000,20000 --tokens 20000 --out DIR
             --save-models --hidden L --lr LR --train-length N --test-length N
"""

import argparse
import datetime
import json
import os
import platform
import tempfile
import time

import numpy as np

import keras_dsr  # noqa: F401  (selects the backend before keras)
import keras

from keras_dsr.bursts import HR_DEFAULTS, burst_statistics
from keras_dsr.measures import (evaluate, generate_for_evaluation,
                                power_spectrum_distance, state_space_divergence)
from keras_dsr.io import atomic_write
from keras_dsr.recipes import Recipe, train
from keras_dsr.systems import simulate, simulate_ensemble

HERE = os.path.dirname(os.path.abspath(__file__))

SYSTEM = "hindmarsh_rose"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", default="200,2000,20000",
                   help="comma-separated training sequence lengths T (samples)")
    p.add_argument("--steps", type=int, default=1500, help="optimiser steps (all T)")
    p.add_argument("--tokens", type=int, default=20_000,
                   help="time steps per batch; batch size = tokens / T")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of weights and windows; data: train seed, test seed+1, floor seed+2")
    p.add_argument("--hidden", type=int, default=100, help="hidden size L of the shPLRNN")
    p.add_argument("--lr", type=float, default=1e-2, help="initial Adam learning rate")
    p.add_argument("--train-length", type=int, default=100_000, help="training samples")
    p.add_argument("--test-length", type=int, default=100_000, help="test samples")
    p.add_argument("--plot-length", type=int, default=12_000,
                   help="samples of x(t) shown in the figure")
    p.add_argument("--out", default=None, help="output folder (default: this folder; "
                   "--smoke: a temporary folder)")
    p.add_argument("--save-models", action="store_true",
                   help="also save each trained model to OUT/model_T<T>.keras")
    p.add_argument("--smoke", action="store_true", help="tiny budget (~1 min), for CI")
    a = p.parse_args(argv)
    if a.smoke:
        a.lengths, a.steps, a.tokens = "100,1000", 4, 1000
        a.hidden, a.train_length, a.test_length, a.plot_length = 20, 10_000, 10_000, 4_000
    a.lengths = [int(s) for s in a.lengths.split(",") if s.strip()]
    for T in a.lengths:
        if a.tokens % T:
            p.error(f"--tokens ({a.tokens}) must be a multiple of every T (got T = {T}).")
        if a.train_length < 2 * T:
            p.error(f"--train-length ({a.train_length}) must be >= 2 T (T = {T}).")
    if a.out is None:
        a.out = tempfile.mkdtemp(prefix="seqlen_smoke_") if a.smoke else HERE
    os.makedirs(a.out, exist_ok=True)
    return a


def make_data(a):
    """Train (seed), test (seed+1), floor (seed+2) trajectories, z-scored with train stats."""
    t0 = time.perf_counter()
    seeds = (a.seed, a.seed + 1, a.seed + 2)
    if a.train_length == a.test_length:  # one vectorised ODE solve
        trajs = simulate_ensemble(SYSTEM, a.train_length, seeds=seeds, standardize=False)
    else:
        trajs = [simulate(SYSTEM, n, seed=s, standardize=False) for n, s in
                 zip((a.train_length, a.test_length, a.test_length), seeds)]
    raw = [t.clean for t in trajs]
    mean, std = raw[0].mean(0), raw[0].std(0)
    x_train, x_test, x_other = [((r - mean) / std).astype("float32") for r in raw]
    print(f"data: {SYSTEM}, train {x_train.shape}, test {x_test.shape}, dt {trajs[0].dt} "
          f"({time.perf_counter() - t0:.0f} s to simulate)", flush=True)
    return x_train, x_test, x_other, float(trajs[0].dt)


class EpochLog(keras.callbacks.Callback):
    """Prints and keeps loss, alpha, DEER iterations/fallbacks per epoch."""

    def __init__(self, T):
        super().__init__()
        self.T, self.rows = T, []

    def on_epoch_end(self, epoch, logs=None):
        row = {k: float(v) for k, v in (logs or {}).items()}
        self.rows.append(row)
        print(f"  T={self.T} epoch {epoch + 1}: " + ", ".join(
            f"{k} {row[k]:.4g}" for k in ("loss", "alpha", "deer_iterations", "deer_fallbacks")
            if k in row), flush=True)


def burst_summary(x, dt, ref_ibi=None):
    from scipy.stats import wasserstein_distance

    s = burst_statistics(x[:, 0], dt, **HR_DEFAULTS)
    out = {k: v for k, v in s.items() if not isinstance(v, np.ndarray)}
    out["ibi"] = s["ibi"].tolist()
    out["spikes_per_burst"] = s["spikes_per_burst"].tolist()
    if ref_ibi is not None:
        out["w1_ibi"] = (float(wasserstein_distance(s["ibi"], ref_ibi))
                         if len(s["ibi"]) and len(ref_ibi) else float("nan"))
    return out


def fmt(v, d=3):
    if v is not None and np.isinf(v):
        return "inf"  # a diverged free run (the measures return inf)
    return "nan" if v is None or not np.isfinite(v) else f"{v:.{d}g}" if abs(v) < 1e3 else f"{v:.0f}"


def table(rows, truth, floor):
    head = ("| T (samples / time units) | batch | steps | train s | final alpha | D_stsp | D_H "
            "| bursts | IBI mean ± sd | W1(IBI) | spikes/burst mean ± sd | ISI in burst |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        b = r["bursts"]
        lines.append(
            f"| {r['T']} / {r['T'] * r['dt']:g} | {r['batch']} | {r['steps']} | {r['train_s']:.0f} "
            f"| {r['alpha']:.3f} | {fmt(r['dstsp'])} | {fmt(r['dh'])} | {b['n_bursts']} "
            f"| {fmt(b['ibi_mean'], 4)} ± {fmt(b['ibi_sd'])} | {fmt(b['w1_ibi'])} "
            f"| {fmt(b['spb_mean'])} ± {fmt(b['spb_sd'])} | {fmt(b['isi_mean'])} |")
    for name, b, d in (("true test trajectory", truth, None),
                       ("floor: independent true trajectory", floor["bursts"], floor)):
        lines.append(
            f"| {name} | | | | | {fmt(d['dstsp']) if d else '-'} | {fmt(d['dh']) if d else '-'} "
            f"| {b['n_bursts']} | {fmt(b['ibi_mean'], 4)} ± {fmt(b['ibi_sd'])} "
            f"| {fmt(b['w1_ibi']) if 'w1_ibi' in b else '-'} | {fmt(b['spb_mean'])} ± {fmt(b['spb_sd'])} "
            f"| {fmt(b['isi_mean'])} |")
    return "\n".join(lines)


def figure(path, x_test, runs, rows, truth, dt, n):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure", flush=True)
        return
    k = len(runs) + 1
    fig = plt.figure(figsize=(15, 2.0 * k + 1))
    gs = fig.add_gridspec(k, 4)
    t = np.arange(n) * dt
    series = [("true test", x_test[:n, 0])] + [(f"T = {T}", xr[:n, 0]) for T, xr in runs]
    for i, (name, xs) in enumerate(series):
        ax = fig.add_subplot(gs[i, :3])
        ax.plot(t[:len(xs)], xs, lw=0.6, color="k" if i == 0 else f"C{i}")
        ax.set_ylabel(f"x ({name})")
        if i == k - 1:
            ax.set_xlabel("time units (free run from the first test point)")
    ax = fig.add_subplot(gs[:, 3])
    bins = np.linspace(0, 250, 26)
    ax.hist(truth["ibi"], bins=bins, histtype="step", color="k", lw=2, label="true test")
    for i, r in enumerate(rows):
        ax.hist(r["bursts"]["ibi"], bins=bins, histtype="step", color=f"C{i + 1}",
                label=f"T = {r['T']}")
    ax.set_xlabel("inter-burst interval (time units)")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"figure: {path}", flush=True)


def main(argv=None):
    a = parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"{started:%Y-%m-%d %H:%M} UTC, backend {keras.backend.backend()}, "
          f"{platform.node()} ({os.cpu_count()} CPUs), args {vars(a)}", flush=True)
    x_train, x_test, x_other, dt = make_data(a)
    truth = burst_summary(x_test, dt)
    floor = {"dstsp": float(state_space_divergence(x_test, x_other)),
             "dh": float(power_spectrum_distance(x_test, x_other)),
             "bursts": burst_summary(x_other, dt, ref_ibi=truth["ibi"])}
    rows, runs = [], []
    for T in a.lengths:
        t0 = time.perf_counter()
        batch = a.tokens // T
        spe = 100 if a.steps % 100 == 0 else a.steps
        recipe = Recipe(seq_len=T, batch_size=batch, steps=a.steps, steps_per_epoch=spe,
                        hidden_dim=a.hidden, learning_rate=a.lr,
                        train_length=a.train_length, seed=a.seed)
        print(f"T = {T} ({T * dt:g} time units), batch {batch}, {a.steps} steps", flush=True)
        log = EpochLog(T)
        model, _, train_s = train(recipe, x_train, callbacks=[log], verbose=0)
        if a.save_models:
            model.save(os.path.join(a.out, f"model_T{T}.keras"))
        x_gen = generate_for_evaluation(model, x_test)
        scores = evaluate(model, x_test, measures=("dstsp", "dh"), x_gen=x_gen)
        x_plot = np.asarray(model.generate(x_test[0], a.plot_length))
        runs.append((T, x_plot))
        row = dict(T=T, dt=dt, batch=batch, steps=a.steps, train_s=train_s,
                   alpha=float(model.alpha), dstsp=float(scores["dstsp"]),
                   dh=float(scores["dh"]), recipe=recipe.to_dict(), log=log.rows,
                   bursts=burst_summary(x_gen, dt, ref_ibi=truth["ibi"])
                   if np.all(np.isfinite(x_gen)) else None)
        if row["bursts"] is None:
            row["bursts"] = dict(n_spikes=0, n_bursts=0, ibi=[], ibi_mean=float("nan"),
                                 ibi_sd=float("nan"), spikes_per_burst=[],
                                 spb_mean=float("nan"), spb_sd=float("nan"),
                                 isi_mean=float("nan"), w1_ibi=float("nan"),
                                 first_spike=float("nan"), last_spike=float("nan"),
                                 duration=len(x_gen) * dt)
        row["wall_s"] = time.perf_counter() - t0
        rows.append(row)
        b = row["bursts"]
        print(f"T = {T}: train {train_s:.0f} s, wall {row['wall_s']:.0f} s, alpha {row['alpha']:.3f}, "
              f"D_stsp {row['dstsp']:.3f}, D_H {row['dh']:.3f}, bursts {b['n_bursts']}, "
              f"IBI {b['ibi_mean']:.1f} ± {b['ibi_sd']:.1f} (true {truth['ibi_mean']:.1f} ± "
              f"{truth['ibi_sd']:.1f}), spikes/burst {b['spb_mean']:.2f} (true "
              f"{truth['spb_mean']:.2f}), spikes from {b['first_spike']:.0f} to {b['last_spike']:.0f} of "
              f"{b['duration']:.0f} time units", flush=True)
        results = dict(args=dict(vars(a), out=os.path.relpath(a.out)), started=f"{started:%Y-%m-%d %H:%M} UTC",
                           machine=f"{platform.node()}, {platform.processor() or platform.machine()}, "
                                   f"{os.cpu_count()} CPUs", backend=keras.backend.backend(),
                           rows=rows, truth=truth, floor=floor)
        with atomic_write(os.path.join(a.out, "results.json")) as f:  # after every T
            json.dump(results, f, indent=1)
    md = table(rows, truth, floor)
    print("\n" + md, flush=True)
    with atomic_write(os.path.join(a.out, "table.md")) as f:
        f.write(md + "\n")
    figure(os.path.join(a.out, "bursts.png"), x_test, runs, rows, truth, dt, a.plot_length)
    total = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    print(f"total wall-clock {total:.0f} s; outputs in {a.out}", flush=True)
    return results


if __name__ == "__main__":
    main()
