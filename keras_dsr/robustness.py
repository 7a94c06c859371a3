"""Robustness of a reconstruction: where its free runs go from many initial conditions.

A model scored from one initial condition can hide coexisting attractors: a model
whose free run from the test set's first point is chaotic may send a third of its
other initial conditions to a limit cycle. :func:`free_run_fates` starts free runs
from ``n`` initial conditions spread over the neighbourhood of the data's attractor
(:func:`initial_conditions`: data points plus Gaussian perturbations of a fraction
of each variable's standard deviation), discards a burn-in, and classifies the
last ``steps`` states of each run, in this order:

* ``"diverged"``: a non-finite state, or a state farther than ``bound_factor``
  times the data's largest deviation from its mean;
* ``"reached"``: the run's states are distributed like the data: D_stsp
  (:func:`keras_dsr.measures.state_space_divergence`) of the run against the first
  half of the data at most ``max_dstsp`` (default: D_stsp of ``steps`` states of the
  data's second half against its first half, + 0.2: the zoo's criterion relative to
  a floor of the same sample size, since D_stsp grows as samples shrink);
* ``"fixed_point"``: every variable's standard deviation over the run is below
  ``1e-3`` of the data's;
* ``"cycle"``: the run is periodic: for some period p (in steps, 1 <= p <= half the
  checked tail), every state lies within ``cycle_tol`` (relative to the data's
  scale) of the segment between the states p and p + 1 steps later, so a cycle of
  a flow whose period is not a whole number of steps is found too;
* ``"other"``: bounded and neither of those: another attractor (or a long
  transient).

Example:
    >>> import numpy as np
    >>> def henon(x0, steps):          # the Hénon map, x0 [B, 2] -> [B, steps, 2]
    ...     out, x = [], np.asarray(x0, dtype=float)
    ...     for _ in range(steps):
    ...         x = np.stack([1 - 1.4 * x[:, 0] ** 2 + x[:, 1], 0.3 * x[:, 0]], axis=1)
    ...         out.append(x)
    ...     return np.stack(out, axis=1)
    >>> data = henon([[0.1, 0.1]], 21_000)[0, 1_000:]
    >>> fates = free_run_fates(henon, data, n=20, steps=5_000, burn_in=1_000)
    >>> fates.counts    # the Hénon map's basin ends close to its attractor's tips
    {'diverged': 2, 'reached': 18, 'fixed_point': 0, 'cycle': 0, 'other': 0}
"""

import dataclasses
import warnings
from typing import Dict, List

import numpy as np

from keras_dsr._checks import check_array, check_int, check_number

__all__ = ["FATES", "Fates", "initial_conditions", "free_run_fates", "periodic"]

#: The fates of a free run, in the order they are decided.
FATES = ("diverged", "reached", "fixed_point", "cycle", "other")


@dataclasses.dataclass
class Fates:
    """What :func:`free_run_fates` found.

    Attributes:
        labels: the fate of each initial condition (one of :data:`FATES`).
        counts: ``{fate: number of initial conditions}`` for every fate.
        fractions: ``{fate: fraction}``.
        dstsp: D_stsp of each bounded run against the data (NaN for a diverged one).
        max_dstsp: the bound a run's D_stsp had to meet to count as reached.
        x0: the initial conditions ``[n, N]``.
    """

    labels: List[str]
    counts: Dict[str, int]
    fractions: Dict[str, float]
    dstsp: np.ndarray
    max_dstsp: float
    x0: np.ndarray

    @property
    def failed(self):
        """Fraction of initial conditions that did not reach the data's attractor."""
        n = len(self.labels)
        return (n - self.counts["reached"]) / n

    def to_dict(self):
        """JSON-able summary (counts, fractions, bound; not the per-run arrays)."""
        return {"n": len(self.labels), "counts": dict(self.counts),
                "fractions": dict(self.fractions), "max_dstsp": float(self.max_dstsp)}


def initial_conditions(x_ref, n=100, spread=0.1, seed=0):
    """``n`` initial conditions ``[n, N]`` around the attractor of the data ``x_ref``.

    Points of ``x_ref`` drawn uniformly at random, each moved by a Gaussian of
    ``spread`` times each variable's standard deviation: the attractor and its
    neighbourhood, where a user would start a model.
    """
    x_ref = check_array(x_ref, "x_ref", min_length=2).astype(np.float64)
    n = check_int(n, "n", where="initial_conditions")
    spread = check_number(spread, "spread", 0, where="initial_conditions")
    rng = np.random.default_rng(check_int(seed, "seed", 0, where="initial_conditions"))
    base = x_ref[rng.integers(0, x_ref.shape[0], n)]
    return base + spread * x_ref.std(0) * rng.standard_normal(base.shape)


def periodic(x, tol=1e-2, max_period=None):
    """The period (in steps, a float) of the trajectory ``x [T, N]``, or None.

    ``x`` returns after p + u steps (p whole, 0 <= u <= 1) when every ``x_t``
    (t <= T - p - 1) lies within ``tol`` of the segment from ``x_{t+p}`` to
    ``x_{t+p+1}`` (a distance in the units of ``x``), at the fraction u of it; for
    the smallest such p up to ``max_period`` (default T // 2), ``p + median(u)`` is
    returned. A sampled cycle of a flow whose period is not a whole number of steps
    is periodic by this test (it lies between two samples), a chaotic trajectory is
    not (for no p do all of its states return).

    Example:
        >>> theta = 2 * np.pi * np.arange(400) / 37.3           # period 37.3 steps
        >>> round(periodic(np.stack([np.cos(theta), np.sin(theta)], 1), tol=1e-2), 2)
        37.3
    """
    x = check_array(x, "x", min_length=4).astype(np.float64)
    T = x.shape[0]
    max_period = T // 2 if max_period is None else check_int(max_period, "max_period")
    for p in range(1, min(max_period, T - 2) + 1):
        a, b, c = x[:T - p - 1], x[p:T - 1], x[p + 1:]
        seg = c - b
        length2 = np.einsum("ij,ij->i", seg, seg)
        u = np.einsum("ij,ij->i", a - b, seg) / np.where(length2 > 0, length2, 1.0)
        u = np.clip(np.where(length2 > 0, u, 0.0), 0.0, 1.0)
        dist = np.linalg.norm(a - (b + u[:, None] * seg), axis=1)
        if dist.max() <= tol:
            return p + float(np.median(u))
    return None


def free_run_fates(model, x_ref, n=100, steps=10_000, burn_in=5_000, spread=0.1, seed=0,
                   max_dstsp=None, bound_factor=10.0, cycle_tol=1e-2, cycle_window=2_000,
                   x0=None):
    """Free runs of ``model`` from ``n`` initial conditions, each classified (:data:`FATES`).

    Args:
        model: a model with ``generate(x0 [B, N], steps) -> [B, steps, N]`` (e.g. a
            :class:`~keras_dsr.models.DSRModel`) or such a callable.
        x_ref: the data ``[T, N]`` whose attractor the runs should reach (in the
            units the model generates in); at least ``2 * steps`` states keep the
            floor's sample as large as a run's.
        n, spread, seed: the initial conditions (:func:`initial_conditions`).
        steps: states of each run that are classified, after ``burn_in`` steps.
        max_dstsp: D_stsp bound of a reached run (default: D_stsp of ``steps``
            states of the second half of ``x_ref`` against its first half, + 0.2).
        bound_factor: a state beyond ``bound_factor`` x the data's largest deviation
            from its mean has diverged.
        cycle_tol: tolerance of :func:`periodic` relative to the data's largest
            standard deviation, on the last ``cycle_window`` states.
        x0: initial conditions ``[n, N]`` to use instead of drawing them.

    Returns:
        a :class:`Fates`.
    """
    from keras_dsr import measures as M

    x_ref = check_array(x_ref, "x_ref", min_length=20).astype(np.float64)
    steps = check_int(steps, "steps", 20, where="free_run_fates")
    burn_in = check_int(burn_in, "burn_in", 0, where="free_run_fates")
    bound_factor = check_number(bound_factor, "bound_factor", 1, True, "free_run_fates")
    cycle_tol = check_number(cycle_tol, "cycle_tol", 0, True, "free_run_fates")
    cycle_window = check_int(cycle_window, "cycle_window", 4, where="free_run_fates")
    if x0 is None:
        x0 = initial_conditions(x_ref, n, spread, seed)
    else:
        x0 = check_array(x0, "x0").astype(np.float64)
        if x0.shape[1] != x_ref.shape[1]:
            raise ValueError(f"free_run_fates: x0 has {x0.shape[1]} variable(s), x_ref "
                             f"{x_ref.shape[1]}.")
    half = x_ref.shape[0] // 2
    first = x_ref[:half]  # runs and the floor are scored against the first half
    if max_dstsp is None:  # D_stsp depends on the sample size: the floor's has `steps`
        max_dstsp = M.state_space_divergence(first, x_ref[half:half + steps]) + 0.2
    max_dstsp = check_number(max_dstsp, "max_dstsp", 0, where="free_run_fates")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a diverging run is a fate here
        runs = M._generate(model, x0.astype("float32"), burn_in + steps)
    runs = np.asarray(runs, dtype=np.float64)[:, burn_in:]
    mean, std = x_ref.mean(0), x_ref.std(0)
    bound = bound_factor * np.abs(x_ref - mean).max()
    scale = float(std.max())
    labels, dstsp = [], np.full(len(x0), np.nan)
    for i, run in enumerate(runs):
        if not np.all(np.isfinite(run)) or np.abs(run - mean).max() > bound:
            labels.append("diverged")
            continue
        dstsp[i] = M.state_space_divergence(first, run)
        if dstsp[i] <= max_dstsp:
            labels.append("reached")
        elif np.all(run.std(0) < 1e-3 * std):
            labels.append("fixed_point")
        elif periodic(run[-cycle_window:], tol=cycle_tol * scale) is not None:
            labels.append("cycle")
        else:
            labels.append("other")
    counts = {f: labels.count(f) for f in FATES}
    return Fates(labels=labels, counts=counts,
                 fractions={f: counts[f] / len(labels) for f in FATES}, dstsp=dstsp,
                 max_dstsp=float(max_dstsp), x0=x0)
