"""SSM (linear recurrence, nonlinear readout) vs GTF-DEER shPLRNN on chaotic flows.

The paper's finding (a) (Hess, Götz & Durstewitz 2026): models whose *training-time
recurrence is linear* (modern SSMs: S4/S5/LRU/Mamba-like, here
:class:`keras_dsr.models.SSMModel`) often fail to learn nonlinear chaotic dynamics,
while a clipped shallow PLRNN trained with GTF-DEER (:mod:`keras_dsr.recipes`) does.

For each system and seed the script
  1. simulates the training trajectory (seed s) and an independent test trajectory
     (seed s + 1), standardised with the *training* statistics, exactly as
     :func:`keras_dsr.recipes.reconstruct` does, and a third one (seed s + 2) for
     the floor;
  2. trains (1) the GTF-DEER clipped shPLRNN with :func:`keras_dsr.recipes.train`
     and (2) an ``SSMModel`` with its default training (one-step-ahead MSE, the
     observed series as input), on the *same* windows (``TrajectoryWindows`` with
     the same seed, window length and batch size) for the *same* number of
     optimiser steps (Adam, cosine decay to 1 % for both);
  3. lets both run freely from the first test point and scores them with
     :func:`keras_dsr.measures.evaluate` (docs/method.md §Evaluation measures: generate 1.25 T_test, drop the
     first quarter): D_stsp, D_H, PE(20), and lambda_max (per time unit).

lambda_max of the SSM: the library's ``lyapunov_max_model`` needs ``cell.jacobian``,
which ``SSMModel`` does not have, so it is computed here by the same Benettin method
on the SSM's free-running map (h, x) -> (h', x'), with Jacobian-vector products from
``jax.jvp`` (:func:`lyapunov_max_jvp`). The same routine applied to the GTF-DEER
model is printed next to the library's value as a check. PE(20) of the SSM from
``evaluate`` starts its hidden state at zero at every test point (cold); the script
also reports it after reading in the preceding ``--warmup`` test points (warm).

Run (from the repository root):
    KERAS_BACKEND=jax python experiments/ssm_vs_gtf_deer/run.py            # full run
    KERAS_BACKEND=jax python experiments/ssm_vs_gtf_deer/run.py --smoke    # < 1 min
Options: --systems lorenz63 rossler, --steps N, --seed S [S ...], --out DIR,
--models gtf ssm [ssm_noskip]. Results of the committed runs: RESULTS.md.
Results (table, JSON, figure) go to --out (default: this folder; --smoke: a temp dir).
"""

import argparse
import datetime
import json
import math
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import numpy as np  # noqa: E402

import keras_dsr  # noqa: E402,F401
import keras  # noqa: E402
from keras_dsr import recipes  # noqa: E402
from keras_dsr.io import atomic_write  # noqa: E402
from keras_dsr.data import TrajectoryWindows  # noqa: E402
from keras_dsr.measures import evaluate, generate_for_evaluation  # noqa: E402
from keras_dsr.models import SSMModel  # noqa: E402
from keras_dsr.systems import get_system, lyapunov_max, simulate  # noqa: E402

MODELS = ("GTF-DEER shPLRNN", "SSM (LRU + MLP)")
SSM_NO_SKIP = "SSM, readout of h only"  # --models ssm_noskip: skip_input=False
DIMS = {"lorenz63": (0, 2)}  # projection shown in the figure (default (0, 1))


# ------------------------------------------------------------------ data
def make_data(system, recipe, test_length):
    """Train (seed s), test (s + 1) and floor (s + 2) trajectories, as in ``reconstruct``."""
    train = simulate(system, recipe.train_length, seed=recipe.seed)
    test = recipes.simulate_like(system, test_length, recipe.seed + 1, train)
    other = recipes.simulate_like(system, test_length, recipe.seed + 2, train)
    return train, test, other


class OneStepWindows(TrajectoryWindows):
    """The windows of ``TrajectoryWindows`` as ``(x, x[:, 1:])`` (SSM targets)."""

    def __getitem__(self, index):
        x, _ = super().__getitem__(index)
        return x, x[:, 1:]


# ------------------------------------------------------------------ models
def train_ssm(recipe, x, units, readout, lr, verbose, skip_input=True):
    """``SSMModel`` on the same windows / steps / lr schedule shape as ``recipes.train``."""
    keras.utils.set_random_seed(recipe.seed)
    windows = OneStepWindows(x, seq_len=recipe.seq_len, batch_size=recipe.batch_size,
                             steps_per_epoch=recipe.steps_per_epoch, seed=recipe.seed)
    model = SSMModel(n_features=x.shape[1], units=units, readout_units=readout,
                     skip_input=skip_input, seed=recipe.seed)
    sched = keras.optimizers.schedules.CosineDecay(lr, decay_steps=recipe.steps,
                                                   alpha=recipe.final_lr_fraction)
    model.compile(optimizer=keras.optimizers.Adam(sched))
    epochs = max(1, -(-recipe.steps // recipe.steps_per_epoch))
    t0 = time.perf_counter()
    history = model.fit(windows, epochs=epochs, verbose=verbose)
    return model, history, time.perf_counter() - t0


def lyapunov_max_jvp(step, state0, steps, transient, dt, seed=0):
    """Benettin lambda_max of the map ``state -> step(state)`` (1-D states), per time unit.

    The tangent vector is pushed through ``jax.jvp`` of ``step`` along the map's
    own orbit from ``state0`` and renormalised every step; the first ``transient``
    steps only align the vector (and let the orbit settle). Returns inf if the orbit
    or the tangent becomes non-finite.
    """
    import jax
    import jax.numpy as jnp

    v0 = jax.random.normal(jax.random.PRNGKey(seed), state0.shape, state0.dtype)
    v0 = v0 / jnp.linalg.norm(v0)

    @jax.jit
    def run(s0, v0):
        def body(carry, _):
            s, v = carry
            s_new, w = jax.jvp(step, (s,), (v,))
            r = jnp.linalg.norm(w)
            return (s_new, w / r), jnp.log(r)

        _, logs = jax.lax.scan(body, (s0, v0), None, length=transient + steps)
        return logs

    logs = np.asarray(run(jnp.asarray(state0), v0), dtype=np.float64)[transient:]
    if not np.all(np.isfinite(logs)):
        return float("inf")
    return float(logs.sum() / (steps * dt))


def ssm_step_fn(model):
    """The SSM's free-running map on the flat state ``[h (S), x (N)]``."""
    import jax.numpy as jnp

    rnn, s = model.rnn, model.rnn.state_size

    def step(state):
        h, x = state[None, :s], state[None, s:]
        y, h_new = rnn.step(h, x)
        x_new = x + y if model.residual else y
        return jnp.concatenate([h_new[0], x_new[0]])

    return step, s


def ssm_lyapunov(model, x0, dt, steps=10_000, transient=1_000):
    import jax.numpy as jnp

    step, s = ssm_step_fn(model)
    state0 = jnp.concatenate([jnp.zeros(s, "float32"), jnp.asarray(x0, "float32")])
    return lyapunov_max_jvp(step, state0, steps, transient, dt)


def dsr_lyapunov_jvp(model, x0, dt, steps=10_000, transient=1_000):
    """The jvp-Benettin routine on the GTF-DEER model (check against the library)."""
    from keras import ops

    z0 = model.gtf.initial_state(ops.convert_to_tensor(np.asarray(x0, "float32")[None]))[0]
    return lyapunov_max_jvp(lambda z: model.cell(z), z0, steps, transient, dt)


def ssm_warm_pe(model, x_test, n=20, warmup=500, max_inits=1000, batch=100, seed=0):
    """PE(n) of the SSM with its state read in from the ``warmup`` preceding test points."""
    T = x_test.shape[0]
    starts = np.arange(warmup - 1, T - n)
    rng = np.random.default_rng(seed)
    if max_inits < starts.size:
        starts = np.sort(rng.choice(starts, max_inits, replace=False))
    sq = 0.0
    for i in range(0, starts.size, batch):
        s = starts[i:i + batch]
        win = np.stack([x_test[t - warmup + 1:t + 1] for t in s]).astype("float32")
        gen = model.generate(win, n)
        err = gen[:, n - 1].astype(np.float64) - x_test[s + n]
        if not np.all(np.isfinite(err)):
            return float("inf")
        sq += float(np.sum(err ** 2))
    return sq / (starts.size * x_test.shape[1])


# ------------------------------------------------------------------ one run
def run_one(system, seed, args):
    recipe = recipes.Recipe(seq_len=args.seq_len, batch_size=1, steps=args.steps,
                            steps_per_epoch=args.steps_per_epoch, hidden_dim=args.hidden,
                            train_length=args.train_length, seed=seed)
    t0 = time.perf_counter()
    train, test, other = make_data(system, recipe, args.test_length)
    dt = float(train.dt)
    floor = recipes.floor_scores(test.x, other.x, ("dstsp", "dh"))
    data_s = time.perf_counter() - t0
    print(f"== {system} seed {seed}: dt {dt}, train {train.x.shape}, test {test.x.shape}, "
          f"floor D_stsp {floor['dstsp']:.3f} D_H {floor['dh']:.3f} ({data_s:.0f} s)",
          flush=True)
    rows, gens = [], {}

    if "gtf" in args.models:
        rows.append(run_gtf(recipe, train, test, dt, gens, args))
    for key, name, skip in (("ssm", MODELS[1], True), ("ssm_noskip", SSM_NO_SKIP, False)):
        if key in args.models:
            rows.append(run_ssm(recipe, train, test, dt, gens, args, name, skip))
    true_lyap = (float(lyapunov_max(system)) if not args.smoke
                 else float(get_system(system).lyapunov_ref))
    rows.append(dict(model="true (floor)", dstsp=floor["dstsp"], dh=floor["dh"], pe=0.0,
                     pe_warm=None, lyap=true_lyap, lyap_jvp=None, train_s=None,
                     eval_s=None, wall_s=data_s))
    for r in rows:
        r.update(system=system, seed=seed)
    return rows, dict(test=test.x, short_true=test.x[:args.short], gens=gens, dt=dt)


def run_gtf(recipe, train, test, dt, gens, args):
    """(1) GTF-DEER shPLRNN: train with the recipe, free-run, score."""
    measures = ("dstsp", "dh", "pe", "lyap")
    t0 = time.perf_counter()
    model, hist, train_s = recipes.train(recipe, train.x, verbose=args.verbose)
    t1 = time.perf_counter()
    x_gen = generate_for_evaluation(model, test.x)
    sc = evaluate(model, test.x, measures=measures, dt=dt, x_gen=x_gen,
                  lyap_steps=args.lyap_steps)
    sc["lyap_jvp"] = dsr_lyapunov_jvp(model, test.x[0], dt, steps=args.lyap_steps,
                                      transient=min(1000, args.lyap_steps))
    sc["pe_warm"] = None
    eval_s = time.perf_counter() - t1
    gens[MODELS[0]] = (x_gen, model.generate(test.x[0], args.short))
    print(f"   {MODELS[0]}: trained {train_s:.0f} s, alpha {model.alpha:.3f}, {sc}", flush=True)
    return dict(model=MODELS[0], train_s=train_s, eval_s=eval_s,
                wall_s=time.perf_counter() - t0, final_alpha=float(model.alpha),
                final_loss=float(hist.history["loss"][-1]),
                params=int(model.count_params()), **sc)


def run_ssm(recipe, train, test, dt, gens, args, name, skip_input):
    """(2) SSMModel, default one-step training on the same windows; free-run, score."""
    t0 = time.perf_counter()
    ssm, hist, train_s = train_ssm(recipe, train.x, args.ssm_units, tuple(args.ssm_readout),
                                   args.ssm_lr, args.verbose, skip_input=skip_input)
    t1 = time.perf_counter()
    x_gen = generate_for_evaluation(ssm, test.x)
    sc = evaluate(ssm, test.x, measures=("dstsp", "dh", "pe"), dt=dt, x_gen=x_gen)
    sc["lyap"] = ssm_lyapunov(ssm, test.x[0], dt, steps=args.lyap_steps,
                              transient=min(1000, args.lyap_steps))
    sc["lyap_jvp"] = sc["lyap"]
    sc["pe_warm"] = ssm_warm_pe(ssm, test.x, warmup=args.warmup)
    eval_s = time.perf_counter() - t1
    gens[name] = (x_gen, ssm.generate(test.x[0], args.short))
    print(f"   {name}: trained {train_s:.0f} s, {sc}", flush=True)
    return dict(model=name, train_s=train_s, eval_s=eval_s,
                wall_s=time.perf_counter() - t0, final_alpha=None,
                final_loss=float(hist.history["loss"][-1]),
                params=int(ssm.count_params()), **sc)


# ------------------------------------------------------------------ report
def _fmt(v, spec=".3f"):
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return "inf (diverged)" if v > 0 else str(v)
    return format(v, spec)


def markdown_table(rows):
    head = ("| system | seed | model | D_stsp | D_H | PE(20) | PE(20) warm | "
            "lambda_max | train s | eval s |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['seed']} | {r['model']} | {_fmt(r['dstsp'])} | "
            f"{_fmt(r['dh'])} | {_fmt(r['pe'], '.3g')} | {_fmt(r.get('pe_warm'), '.3g')} | "
            f"{_fmt(r['lyap'])} | {_fmt(r['train_s'], '.0f')} | {_fmt(r['eval_s'], '.0f')} |")
    return "\n".join(lines)


def figure(panels, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = 2 + max(len(p["gens"]) for _, _, p in panels)
    fig, axes = plt.subplots(len(panels), ncol, figsize=(4 * ncol, 3.6 * len(panels)),
                             squeeze=False)
    for row, (system, seed, p) in zip(axes, panels):
        i, j = DIMS.get(system, (0, 1))
        test = p["test"]
        lo, hi = test.min(0) - 0.5 * test.std(0), test.max(0) + 0.5 * test.std(0)
        series = [("true (test)", test)] + [(m, g[0]) for m, g in p["gens"].items()]
        for k, (ax, (name, x)) in enumerate(zip(row[:-1], series)):
            x = x[:20_000]
            color = "k" if k == 0 else f"C{k - 1}"
            ax.plot(x[:, i], x[:, j], lw=0.3, color=color)
            if np.all(np.isfinite(x[-1])) and np.ptp(x[-2000:], axis=0).max() < 1e-3:
                ax.plot(np.clip(x[-1, i], lo[i], hi[i]), np.clip(x[-1, j], lo[j], hi[j]),
                        "o", ms=9, color=color)
                name += " (fixed point)"
            elif not np.all(np.isfinite(x)):
                name += " (diverged)"
            ax.set_xlim(lo[i], hi[i])
            ax.set_ylim(lo[j], hi[j])
            ax.set_title(f"{system} (seed {seed}): {name}", fontsize=9)
            ax.set_xlabel(f"x{i + 1}")
            ax.set_ylabel(f"x{j + 1}")
        ax = row[-1]
        t = np.arange(p["short_true"].shape[0]) * p["dt"]
        ax.plot(t, p["short_true"][:, 0], "k", lw=1.2, label="true (test)")
        for k, (m, g) in enumerate(p["gens"].items()):
            ax.plot(t[: g[1].shape[0]], np.clip(g[1][:, 0], lo[0], hi[0]), f"C{k}",
                    lw=0.9, label=m)
        ax.set_title(f"{system}: free runs from the first test point", fontsize=9)
        ax.set_xlabel("time")
        ax.set_ylabel("x1")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def machine():
    import jax

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
            f"load average {os.getloadavg()[0]:.1f} at start, Python "
            f"{platform.python_version()}, keras {keras.__version__}, jax {jax.__version__}, "
            f"backend {keras.backend.backend()}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--systems", nargs="+", default=None,
                   help="default: lorenz63 rossler (--smoke: lorenz63)")
    p.add_argument("--models", nargs="+", default=["gtf", "ssm"],
                   choices=["gtf", "ssm", "ssm_noskip"],
                   help="gtf: GTF-DEER shPLRNN; ssm: SSMModel defaults; ssm_noskip: "
                        "SSMModel(skip_input=False), readout of the linear state only")
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps per model")
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more seeds")
    p.add_argument("--seq-len", type=int, default=5_000, help="window length T")
    p.add_argument("--steps-per-epoch", type=int, default=100)
    p.add_argument("--hidden", type=int, default=100, help="shPLRNN hidden size L")
    p.add_argument("--ssm-units", type=int, default=64, help="SSM complex modes")
    p.add_argument("--ssm-readout", type=int, nargs="+", default=[64, 64],
                   help="SSM readout MLP hidden sizes")
    p.add_argument("--ssm-lr", type=float, default=3e-3, help="SSM initial Adam lr")
    p.add_argument("--train-length", type=int, default=100_000)
    p.add_argument("--test-length", type=int, default=100_000)
    p.add_argument("--lyap-steps", type=int, default=10_000)
    p.add_argument("--warmup", type=int, default=500, help="SSM warm-up for PE warm")
    p.add_argument("--short", type=int, default=1500, help="steps in the time-series panel")
    p.add_argument("--verbose", type=int, default=2)
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--smoke", action="store_true", help="tiny budget (CI, < 1 min)")
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.seq_len, args.steps_per_epoch, args.hidden = 4, 200, 2, 16
        args.ssm_units, args.ssm_readout = 8, [16]
        args.train_length = args.test_length = 5_000
        args.lyap_steps, args.warmup, args.short = 500, 50, 300
    if args.systems is None:
        args.systems = ["lorenz63"] if args.smoke else ["lorenz63", "rossler"]
    out = args.out or (tempfile.mkdtemp(prefix="ssm_vs_gtf_deer_") if args.smoke else HERE)
    os.makedirs(out, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    info = dict(command="KERAS_BACKEND=jax python experiments/ssm_vs_gtf_deer/run.py " + " ".join(
        map(str, argv if argv is not None else sys.argv[1:])),
        started=started.isoformat(timespec="seconds"), machine=machine(), args=vars(args))
    print(info["command"], "\n", info["machine"], flush=True)
    rows, panels = [], []
    for system in args.systems:
        for seed in args.seed:
            r, panel = run_one(system, seed, args)
            rows += r
            panels.append((system, seed, panel))
            info["rows"] = rows
            with atomic_write(os.path.join(out, "results.json")) as fh:
                json.dump(info, fh, indent=1)
    info["wall_s"] = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    with atomic_write(os.path.join(out, "results.json")) as fh:
        json.dump(info, fh, indent=1)
    print("\n" + markdown_table(rows))
    checks = [r for r in rows if r["model"] == MODELS[0]]
    if checks:
        print("\nlambda_max check, GTF-DEER: library (analytic Jacobians) vs jvp-Benettin: "
              + ", ".join(f"{r['system']}/{r['seed']} {r['lyap']:.3f} vs {r['lyap_jvp']:.3f}"
                          for r in checks))
    figure(panels, os.path.join(out, "free_runs.png"))
    print(f"\nwall {info['wall_s']:.0f} s; results and figure in {out}")
    return rows


if __name__ == "__main__":
    main()
