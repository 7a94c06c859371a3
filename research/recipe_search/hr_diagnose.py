"""Why is a Hindmarsh-Rose model's lambda_max too high? Bursts and a float64 check.

For each saved model (shallow PLRNN cells: ``ClippedShallowPLRNN`` or ``ShallowPLRNN``):

1. **Bursts.** The model runs freely for ``--time`` time units from the first point of
   a true trajectory (data seed + 1, sampled at the model's ``--dt``), after 20 000
   steps of transient; ``keras_dsr.bursts`` counts bursts, spikes
   per burst and inter-burst intervals (IBI), next to the same numbers of that true
   trajectory over the same time. A regular burster has spike counts with sd 0 and an
   IBI sd of a few samples; the true system's vary.
2. **lambda_max in float64, two ways.** The cell's map is rewritten in numpy float64
   from its weights. From a point on the model's attractor (the end of that transient),
   ``--time`` time units give (a) the tangent estimate (one vector, renormalised every
   step) and (b) two trajectories ``d0`` apart, renormalised
   every step, for several ``d0`` in standardised units. If (b) matches (a) down to
   ``d0`` = 1e-10 and up to 1e-3, the excess is a property of the map at every scale,
   not a float32 or a kink artefact. (c) The whole spectrum (QR of M tangent vectors):
   a flow has a zero exponent along the trajectory, a map learned from it need not.

``--true`` gives the true system's spectrum (``lyapunov_spectrum``) and does (b) for it
(DOP853, rtol 1e-11; renormalised every time unit over ``--time`` time units;
standardised with the training statistics), which checks
``keras_dsr.systems.lyapunov_max``.

Usage (repository root; models from ``track_checkpoints.py ... --save PREFIX``):

    KERAS_BACKEND=jax python research/recipe_search/hr_diagnose.py A.keras B.keras
    KERAS_BACKEND=jax python research/recipe_search/hr_diagnose.py --dt 0.0125 C.keras
    python research/recipe_search/hr_diagnose.py --true

Results: ``RESULTS_zoo.md`` (session 10).
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from keras_dsr.bursts import HR_DEFAULTS, burst_statistics  # noqa: E402
from keras_dsr.systems import get_system, simulate  # noqa: E402

SYSTEM = "hindmarsh_rose"
D0 = (1e-10, 1e-7, 1e-5, 1e-3)


def burst_line(name, x, dt):
    s = burst_statistics(x[:, 0], dt, **HR_DEFAULTS)
    return (f"{name}: {s['n_bursts']} bursts, spikes/burst {s['spb_mean']:.2f} +- "
            f"{s['spb_sd']:.2f}, IBI {s['ibi_mean']:.2f} +- {s['ibi_sd']:.2f} time units")


def float64_map(cell):
    """``(F, J)``: the cell's map and Jacobian in numpy float64 (shallow PLRNNs)."""
    from keras_dsr.cells import ClippedShallowPLRNN, ShallowPLRNN

    if not isinstance(cell, ShallowPLRNN) or getattr(cell, "input_dim", 0):
        raise SystemExit(f"hr_diagnose: needs an autonomous (clipped) shallow PLRNN, got "
                         f"{type(cell).__name__}.")
    w = {v.path.split("/")[-1]: np.asarray(v, dtype=np.float64) for v in cell.weights}
    a, W1, W2, h1, h2 = w["a"], w["W1"], w["W2"], w["h1"], w["h2"]
    clipped = isinstance(cell, ClippedShallowPLRNN)

    def F(z):
        u = W2 @ z
        hidden = np.maximum(u + h2, 0.0) - (np.maximum(u, 0.0) if clipped else 0.0)
        return a * z + W1 @ hidden + h1

    def J(z):
        u = W2 @ z
        d = (u + h2 > 0).astype(np.float64) - ((u > 0).astype(np.float64) if clipped else 0.0)
        return np.diag(a) + (W1 * d) @ W2

    return F, J


def model_lyap(F, J, z0, steps, dt):
    """Tangent estimate, full spectrum (QR) and two-trajectory estimates, per time unit."""
    z, v, s = z0.copy(), np.ones_like(z0) / np.sqrt(z0.size), 0.0
    q, spec = np.eye(z0.size), np.zeros(z0.size)
    for _ in range(steps):
        jz = J(z)
        v = jz @ v
        n = np.linalg.norm(v)
        s, v = s + np.log(n), v / n
        q, r = np.linalg.qr(jz @ q)
        spec += np.log(np.abs(np.diag(r)))
        z = F(z)
    out = {"tangent": s / steps / dt, "spectrum": np.round(spec / steps / dt, 4).tolist()}
    for d0 in D0:
        z, s = z0.copy(), 0.0
        y = z + d0 * np.ones_like(z0) / np.sqrt(z0.size)
        for _ in range(steps):
            z, y = F(z), F(y)
            d = np.linalg.norm(y - z)
            s, y = s + np.log(d / d0), z + (y - z) * d0 / d
        out[f"d0 {d0:g}"] = s / steps / dt
    return out


def true_lyap(tr, time_units):
    from scipy.integrate import solve_ivp

    sys_ = get_system(SYSTEM)
    sd = tr.std

    def f(t, x):
        return np.concatenate([sys_.f(x[:3]), sys_.f(x[3:])])

    out = {}
    for d0 in D0[:3]:
        x = tr.states[-1].copy()
        y, s = x + d0 * sd / np.sqrt(3), 0.0
        for _ in range(time_units):
            r = solve_ivp(f, (0.0, 1.0), np.concatenate([x, y]), method="DOP853",
                          rtol=1e-11, atol=1e-12).y[:, -1]
            x, y = r[:3], r[3:]
            d = np.linalg.norm((y - x) / sd)
            s, y = s + np.log(d / d0), x + (y - x) * d0 / d
        out[f"d0 {d0:g}"] = s / time_units
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="*")
    p.add_argument("--dt", type=float, default=None,
                   help="the models' sampling interval (default: the system's, 0.05)")
    p.add_argument("--time", type=int, default=3000,
                   help="time units of the free runs, the float64 estimates and --true")
    p.add_argument("--true", action="store_true", help="two-trajectory check of the true system")
    a = p.parse_args(argv)
    tr = simulate(SYSTEM, 100_000, dt=a.dt, seed=0)
    steps = int(round(a.time / tr.dt))
    true_run = (simulate(SYSTEM, steps, dt=tr.dt, seed=1).states - tr.mean) / tr.std
    if a.true:
        from keras_dsr.systems import lyapunov_spectrum

        lam, _ = lyapunov_spectrum(SYSTEM, 3)
        print("true system, spectrum (variational equations):",
              np.round(np.asarray(lam), 4).tolist(), flush=True)
        print("true system, two trajectories:", {k: round(float(v), 4) for k, v in
                                                   true_lyap(tr, a.time).items()})
    if not a.models:
        return
    import keras

    print(f"dt {tr.dt}, {a.time} time units ({steps} steps)")
    print(burst_line("true trajectory (seed 1)", true_run, tr.dt), flush=True)
    for path in a.models:
        model = keras.saving.load_model(path, compile=False)
        name = os.path.basename(path)
        run = model.generate(true_run[:1].astype("float32"), 20_000 + steps)[0]
        print(burst_line(name, run[20_000:], tr.dt), flush=True)
        F, J = float64_map(model.cell)
        lam = model_lyap(F, J, run[20_000 - 1].astype(np.float64), steps, tr.dt)
        print(f"{name}: float64 spectrum {lam.pop('spectrum')}; lambda_max " +
              ", ".join(f"{k} {v:.4f}" for k, v in lam.items()), flush=True)


if __name__ == "__main__":
    main()
