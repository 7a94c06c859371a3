"""How good can a PolynomialFlow be on a polynomial system, before any GTF-DEER training?

Two fields are put into :class:`keras_dsr.cells.PolynomialFlow` (cubic, bound 10) and
scored on the zoo criteria's test trajectory (D_stsp, D_H, lambda_max; JAX):

* ``exact``: the system's own vector field written in the standardised variables
  (least squares of ``dt * f(mean + std * u) / std`` on random points ``u``: exact,
  since an affine change of variables keeps a cubic field cubic), so only the
  Runge-Kutta discretisation of the flow map errs;
* ``fitted``: ``PolynomialFlow.fit_field`` on the training trajectory (fourth-order
  finite differences), the start of ``Recipe(cell_init="least_squares")``.

Each at 1, 2 and 4 RK4 substeps per sample. This separates what the model class and the
integrator can reach from what training adds. Results: ``RESULTS_zoo.md``, session 12.

Usage (repository root):

    KERAS_BACKEND=jax python research/recipe_search/polynomial_start.py hindmarsh_rose
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from keras_dsr.cells import PolynomialFlow  # noqa: E402
from keras_dsr.measures import evaluate  # noqa: E402
from keras_dsr.models import DSRModel  # noqa: E402
from keras_dsr.recipes import Recipe, floor_scores  # noqa: E402
from keras_dsr.systems import get_system, lyapunov_max, simulate  # noqa: E402
from keras_dsr.zoo.criteria import held_out_pair, lyap_steps  # noqa: E402


def exact_field(cell, system, mean, std, dt, n_points=2000, seed=0):
    """Set ``cell.W`` to ``system``'s field in standardised units per sampling step."""
    sys_ = get_system(system)
    u = 2.0 * np.random.default_rng(seed).normal(size=(n_points, cell.latent_dim))
    target = np.asarray(sys_.rhs(mean + u * std, sys_.params)) / std * dt
    phi = np.prod(u[:, None, :] ** cell.exponents, -1)
    coef = np.linalg.lstsq(phi / cell.feature_scales, target, rcond=None)[0]
    cell.W.assign(coef.T.astype("float32"))
    return float(np.abs(phi / cell.feature_scales @ coef - target).max())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("system")
    p.add_argument("--substeps", type=int, nargs="+", default=[1, 2, 4])
    a = p.parse_args(argv)
    recipe = Recipe()
    tr = simulate(a.system, recipe.train_length, seed=recipe.seed)
    test, other = held_out_pair(a.system, recipe.seed, tr.mean, tr.std)
    floor = floor_scores(test, other, ("dstsp", "dh"))
    lyap_true = lyapunov_max(a.system)
    print(f"{a.system}: floor D_stsp {floor['dstsp']:.3f} (bar {floor['dstsp'] + 0.2:.3f}), "
          f"D_H {floor['dh']:.4f} (bar {2 * floor['dh']:.4f}), true lambda_max {lyap_true:.4f}")
    for kind in ("exact", "fitted"):
        for sub in a.substeps:
            cell = PolynomialFlow(tr.x.shape[1], substeps=sub, bound=10.0)
            model = DSRModel(cell=cell)
            model.build((1, 10, tr.x.shape[1]))
            if kind == "exact":
                err = exact_field(cell, a.system, tr.mean, tr.std, tr.dt)
                note = f"max fit error {err:.1e}"
            else:
                note = f"residual rms {np.array2string(cell.fit_field(tr.x), precision=1)}"
            s = evaluate(model, test, measures=("dstsp", "dh", "lyap"), dt=tr.dt,
                         lyap_steps=lyap_steps(tr.dt, a.system))
            rel = 100 * (s["lyap"] - lyap_true) / lyap_true
            print(f"{kind:6s} substeps {sub}: D_stsp {s['dstsp']:.3f}, D_H {s['dh']:.4f}, "
                  f"lambda_max {s['lyap']:.4f} ({rel:+.1f} %)   [{note}]", flush=True)


if __name__ == "__main__":
    main()
