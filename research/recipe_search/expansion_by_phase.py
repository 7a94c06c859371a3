"""Where along the orbit does a model's lambda_max come from? Model vs true system, by phase.

Runs the Benettin recursion (one tangent vector, renormalised each step;
``keras_dsr.lyapunov.local_growth``) along
(a) the model's free run from the first point of the criteria's test trajectory, with
the model's Jacobians, and (b) the test trajectory itself, with the true one-step
propagators expm(J(x_mid) dt) of the ODE (J at the midpoint of each step). The per-step
log growth, divided by dt, is split by phase: "active" where the first observed variable
exceeds ``--threshold`` (in standard deviations of the training data; for
Hindmarsh-Rose x > -0.5 are the spikes of a burst), "quiet" elsewhere. The two parts
sum to the exponent. Results: ``RESULTS_zoo.md``.

Usage (repository root):

    KERAS_BACKEND=jax python research/recipe_search/expansion_by_phase.py MODEL.keras \\
        hindmarsh_rose --seed 0
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
from keras_dsr.zoo.criteria import held_out_pair  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("system")
    p.add_argument("--seed", type=int, default=0, help="data seed of the model's recipe")
    p.add_argument("--dt", type=float, default=None, help="sampling interval of the model's recipe")
    p.add_argument("--steps", type=int, default=60_000)
    p.add_argument("--transient", type=int, default=5_000, help="steps left out at the start")
    p.add_argument("--threshold", type=float, default=-0.5)
    a = p.parse_args(argv)
    model = keras.saving.load_model(a.model, compile=False)
    tr = simulate(a.system, 100_000, dt=a.dt, seed=a.seed)
    test, _ = held_out_pair(a.system, a.seed, tr.mean, tr.std, dt=tr.dt)
    n, k, dt = a.steps, a.transient, tr.dt
    gen, lat = model.generate(test[:1], n, return_latent=True)
    gen = np.asarray(gen)[0]
    lat = keras.ops.convert_to_tensor(np.asarray(lat)[0][:-1])
    r_model = local_growth(np.asarray(model.cell.jacobian(lat), dtype=np.float64))[0][k:]
    states = test[:n].astype(np.float64) * tr.std + tr.mean  # back to the ODE's units
    jac = get_system(a.system).jacobian(0.5 * (states[:-1] + states[1:]))
    r_true = local_growth(np.array([expm(j * dt) for j in jac]))[0][k:]
    for name, r, x in (("model", r_model, gen[k + 1:n, 0]), ("true", r_true, test[k + 1:n, 0])):
        active = x > a.threshold
        print(f"{name}: lambda_max {r.mean() / dt:.4f} per time unit = active "
              f"{r[active].sum() / len(r) / dt:.4f} + quiet {r[~active].sum() / len(r) / dt:.4f}"
              f" (active {100 * active.mean():.0f} % of the steps)", flush=True)


if __name__ == "__main__":
    main()
