"""How D_H answers a pure time-scale error: a true trajectory slowed by a few tenths of a percent.

The criteria's floor trajectory (data seed + 2) is resampled at times ``t (1 - f)``
(linear interpolation between samples) for each slowdown ``f`` and scored with D_H
against the test trajectory (seed + 1), both standardised like a seed-0 training
trajectory. For a system with a sharp spectral line (Rössler) this shows how exactly
a model must match the time scale to meet the D_H bar (2 x the floor).

Usage (repository root):

    KERAS_BACKEND=jax python research/recipe_search/dh_time_scale.py rossler --dt 0.1
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402

from keras_dsr.measures import power_spectrum_distance  # noqa: E402
from keras_dsr.systems import simulate  # noqa: E402
from keras_dsr.zoo.criteria import held_out_pair  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("system")
    p.add_argument("--dt", type=float, default=None)
    p.add_argument("--slowdowns", type=float, nargs="+",
                   default=[0.0, 0.0005, 0.001, 0.0018, 0.003])
    a = p.parse_args(argv)
    tr = simulate(a.system, 100_000, dt=a.dt, seed=0)
    test, other = held_out_pair(a.system, 0, tr.mean, tr.std, dt=tr.dt)
    t = np.arange(len(other), dtype=np.float64)
    print(f"{a.system}, dt {tr.dt}: D_H bar {2 * float(power_spectrum_distance(test, other)):.4f}")
    for f in a.slowdowns:
        x = np.stack([np.interp(t * (1 - f), t, other[:, d]) for d in range(other.shape[1])], 1)
        print(f"slowed by {100 * f:.2f} %: D_H {float(power_spectrum_distance(test, x)):.4f}")


if __name__ == "__main__":
    main()
