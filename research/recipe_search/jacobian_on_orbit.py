"""A model's Jacobians on the TRUE orbit against the true one-step propagators.

``expansion_by_phase.py`` follows the model along its own free run. This script asks a
narrower question: is the model's Jacobian wrong where the data are? Along an
independent true trajectory (data seed + 1, standardised with the training statistics)
it compares the model's Jacobian ``J(x_t)`` with the true one-step propagator ``M_t``
(composed from ``--sub`` sub-steps ``expm(Jf(x_mid) h)`` of the ODE's Jacobian on a
``dt / sub`` grid, in standardised coordinates). Printed, per model:

* the Benettin exponent of the products of ``J(x_t)`` along the true orbit (next to
  the true one of the ``M_t``), split by region of the first variable (bins in
  standard deviations, rising / falling);
* the relative error ``|J - M| / |M - I|`` (median over the active and quiet steps);
* the error of the Jacobian's last row and column (for Hindmarsh-Rose the slow
  variable z): mean and sd along the orbit, next to the true entries.

Usage (repository root):

    KERAS_BACKEND=jax python research/recipe_search/jacobian_on_orbit.py \\
        hindmarsh_rose MODEL.keras [MODEL.keras ...] --dt 0.05 --time 3000
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from scipy.linalg import expm  # noqa: E402

from keras_dsr.lyapunov import local_growth  # noqa: E402
from keras_dsr.systems import get_system, simulate  # noqa: E402
from keras_dsr.zoo.criteria import held_out_length  # noqa: E402

BINS = ((-9.0, -1.0), (-1.0, -0.5), (-0.5, 0.5), (0.5, 1.5), (1.5, 9.0))


def true_propagators(system, dt, steps, sub, seed, mean, std):
    """Standardised true orbit ``[steps, D]`` and one-step propagators ``[steps, D, D]``."""
    fine = simulate(system, steps * sub + 1, dt=dt / sub, seed=seed, standardize=False).states
    jf = get_system(system).jacobian(0.5 * (fine[:-1] + fine[1:])) * (dt / sub)
    small = expm(jf).reshape(steps, sub, jf.shape[-1], jf.shape[-1])
    prop = np.empty((steps,) + jf.shape[1:])
    for t in range(steps):
        p = small[t, 0]
        for k in range(1, sub):
            p = small[t, k] @ p
        prop[t] = p
    prop = prop * (1.0 / std)[:, None] * std[None, :]  # D^-1 M D: standardised coordinates
    return (fine[::sub][:steps] - mean) / std, prop


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("system")
    p.add_argument("models", nargs="+")
    p.add_argument("--dt", type=float, default=None, help="the models' sampling interval")
    p.add_argument("--seed", type=int, default=0, help="data seed of the models' recipe")
    p.add_argument("--time", type=float, default=3000.0, help="time units scored")
    p.add_argument("--transient", type=float, default=200.0, help="time units left out")
    p.add_argument("--sub", type=int, default=8, help="sub-steps per propagator")
    a = p.parse_args(argv)
    # training statistics: a run as long in time as the criteria's test (the probes' data)
    tr = simulate(a.system, held_out_length(a.system, a.dt), dt=a.dt, seed=a.seed)
    dt, steps = tr.dt, int(round(a.time / tr.dt))
    xs, prop = true_propagators(a.system, dt, steps, a.sub, a.seed + 1, tr.mean, tr.std)
    k0 = int(round(a.transient / dt))
    r_true, v_true = local_growth(prop)
    x1 = xs[k0:, 0]
    rising = np.gradient(xs[:, 0])[k0:] > 0
    active = x1 > -0.5

    def by_region(r):
        r = r[k0:]
        parts = []
        for lo, hi in BINS:
            for up in (True, False):
                m = (x1 >= lo) & (x1 < hi) & (rising == up)
                if m.any():
                    parts.append(f"x1 in [{lo:g}, {hi:g}) {'rising' if up else 'falling'} "
                                 f"({100 * m.mean():.0f} %): {r[m].sum() / len(r) / dt:+.4f}")
        return f"{r.mean() / dt:.4f} per time unit = " + "; ".join(parts)

    eye = np.eye(prop.shape[-1])
    print(f"{a.system}, dt {dt}, {a.time:g} time units: true lambda_max {by_region(r_true)}")
    last_true = prop[k0:, -1] - eye[-1]
    print(f"true last row of M - I: mean {np.round(last_true.mean(0), 5).tolist()}, "
          f"sd {np.round(last_true.std(0), 5).tolist()}", flush=True)
    for path in a.models:
        model = keras.saving.load_model(path, compile=False)
        jac = np.asarray(model.cell.jacobian(keras.ops.convert_to_tensor(xs.astype("float32"))),
                         dtype=np.float64)
        r_model, _ = local_growth(jac)
        err = (np.linalg.norm(jac - prop, axis=(1, 2))
               / np.linalg.norm(prop - eye, axis=(1, 2)))[k0:]
        stretch = np.log(np.linalg.norm(np.einsum("tij,tj->ti", jac, v_true), axis=1))
        row, col = (jac - prop)[k0:, -1], (jac - prop)[k0:, :, -1]
        print(f"{os.path.basename(path)}:\n  lambda_max of J along the true orbit "
              f"{by_region(r_model)}\n  growth of the true leading vector under J "
              f"{stretch[k0:].mean() / dt:.4f} (true {r_true[k0:].mean() / dt:.4f})\n"
              f"  |J - M| / |M - I| median: active {np.median(err[active]):.3f}, quiet "
              f"{np.median(err[~active]):.3f}\n  last row J - M: mean "
              f"{np.round(row.mean(0), 5).tolist()}, sd {np.round(row.std(0), 5).tolist()}"
              f"; last column: mean {np.round(col.mean(0), 5).tolist()}, sd "
              f"{np.round(col.std(0), 5).tolist()}", flush=True)


if __name__ == "__main__":
    main()
