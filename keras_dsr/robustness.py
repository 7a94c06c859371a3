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
* ``"fixed_point"``: every variable's standard deviation over the run is below
  ``1e-3`` of the data's;
* ``"cycle"``: the run is periodic: for some period p (in steps, 1 <= p <= half the
  checked tail), every state lies within ``cycle_tol`` (relative to the data's
  scale) of the segment between the states p and p + 1 steps later, so a cycle of
  a flow whose period is not a whole number of steps is found too;
* ``"reached"``: the run's states are distributed like the data: D_stsp
  (:func:`keras_dsr.measures.state_space_divergence`) of the run against the first
  half of the data at most ``max_dstsp``. With a ``reference`` (the true system,
  e.g. :func:`system_generator`), the bound is calibrated on it: the largest D_stsp
  of the true system's own runs from the same initial conditions (same burn-in, same
  length), + 0.2, so that a run counts as reached when it is distributed like the
  data at least as well as the worst true run (however few slow episodes, bursts or
  lobe switches, a run of ``steps`` states holds); the true runs are classified too
  (:attr:`Fates.reference_counts`: how many of the truth's own runs this
  classification would call off the attractor). Without one: D_stsp of ``steps``
  states of the data's second half against its first half, + 0.2 (the zoo's
  criterion relative to a floor of the same sample size, since D_stsp grows as
  samples shrink);
* ``"other"``: bounded and neither of those: another attractor (or a long
  transient).

A fixed point or a cycle is never counted as reached, however lax the bound: a
chaotic attractor's runs are neither.

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

__all__ = ["FATES", "Fates", "initial_conditions", "free_run_fates", "periodic",
           "system_generator"]

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
        reference_dstsp: with a ``reference``, D_stsp of each of its runs against
            the data (NaN for a diverged one); otherwise None.
        reference_counts: with a ``reference``, ``{fate: number}`` of its own runs,
            classified the same way (all reached, unless a true run looks periodic,
            still or diverged); otherwise None.
        reference_labels: with a ``reference``, the fate of each of its runs.
    """

    labels: List[str]
    counts: Dict[str, int]
    fractions: Dict[str, float]
    dstsp: np.ndarray
    max_dstsp: float
    x0: np.ndarray
    reference_dstsp: np.ndarray = None
    reference_counts: Dict[str, int] = None
    reference_labels: List[str] = None

    @property
    def failed(self):
        """Fraction of initial conditions that did not reach the data's attractor; with a
        reference, among the starts from which the true system reached it (a start
        that the true system leaves too is not held against the model)."""
        if self.reference_labels is None:
            n = len(self.labels)
            return (n - self.counts["reached"]) / n
        kept = [m for m, r in zip(self.labels, self.reference_labels) if r == "reached"]
        return (len(kept) - kept.count("reached")) / max(len(kept), 1)

    def to_dict(self):
        """JSON-able summary (counts, fractions, bound; not the per-run arrays)."""
        out = {"n": len(self.labels), "counts": dict(self.counts),
               "fractions": dict(self.fractions), "max_dstsp": float(self.max_dstsp)}
        if self.reference_dstsp is not None:
            out["calibrated"] = "reference"
            out["reference_counts"] = dict(self.reference_counts)
            out["failed"] = self.failed
        return out


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


def system_generator(system, dt=None, mean=None, std=None, params=None):
    """The true ``system`` as a generator ``(x0 [B, D], steps) -> [B, steps, D]``, in the
    units of the data ``(x - mean) / std`` (None: physical units), for
    :func:`free_run_fates` ``reference``: each run integrated from ``x0`` (no burn-in,
    :func:`keras_dsr.systems.simulate_ensemble`) and sampled every ``dt``; the first
    state returned is one step after ``x0``, as a model's ``generate``. A start from
    which the integration fails (the flow leaves every bound, e.g. outside Rössler's
    basin) gives a run of NaN (a diverged run). The system's observation must be its
    full state.
    """
    from keras_dsr.systems import get_system, simulate_ensemble

    spec = get_system(system)
    d = spec.dim
    mean = np.zeros(d) if mean is None else np.asarray(mean, dtype=np.float64)
    std = np.ones(d) if std is None else np.asarray(std, dtype=np.float64)

    def solve(x0, steps):
        runs = simulate_ensemble(system, steps + 1, seeds=list(range(len(x0))), dt=dt,
                                 burn_in=0, standardize=False, x0=x0, params=params)
        if runs[0].clean.shape[1] != d:
            raise ValueError(f"system_generator: {system!r} observes "
                             f"{runs[0].clean.shape[1]} of its {d} variables; a reference "
                             "run needs the full state.")
        return np.stack([(r.clean[1:] - mean) / std for r in runs])

    def generate(x0, steps):
        x0 = np.asarray(x0, dtype=np.float64) * std + mean
        try:
            return solve(x0, steps)
        except RuntimeError:  # some start leaves the basin: solve each alone, NaN if so
            out = np.full((len(x0), steps, d), np.nan)
            for i, x in enumerate(x0):
                try:
                    out[i] = solve(x[None], steps)[0]
                except RuntimeError:
                    pass
            return out
    return generate


def free_run_fates(model, x_ref, n=100, steps=10_000, burn_in=5_000, spread=0.1, seed=0,
                   max_dstsp=None, bound_factor=10.0, cycle_tol=1e-2, cycle_window=2_000,
                   x0=None, reference=None):
    """Free runs of ``model`` from ``n`` initial conditions, each classified (:data:`FATES`).

    Args:
        model: a model with ``generate(x0 [B, N], steps) -> [B, steps, N]`` (e.g. a
            :class:`~keras_dsr.models.DSRModel`) or such a callable.
        x_ref: the data ``[T, N]`` whose attractor the runs should reach (in the
            units the model generates in); at least ``2 * steps`` states keep the
            floor's sample as large as a run's.
        n, spread, seed: the initial conditions (:func:`initial_conditions`).
        steps: states of each run that are classified, after ``burn_in`` steps.
        max_dstsp: D_stsp bound of a reached run (default: the largest D_stsp of the
            ``reference`` runs + 0.2; without a reference, D_stsp of ``steps`` states
            of the second half of ``x_ref`` against its first half, + 0.2).
        bound_factor: a state beyond ``bound_factor`` x the data's largest deviation
            from its mean has diverged.
        cycle_tol: tolerance of :func:`periodic` relative to the data's largest
            standard deviation, on the last ``cycle_window`` states.
        x0: initial conditions ``[n, N]`` to use instead of drawing them.
        reference: the true system as a generator like ``model`` (in the same
            units, e.g. :func:`system_generator`), run from the same initial
            conditions to calibrate ``max_dstsp``.

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
    mean, std = x_ref.mean(0), x_ref.std(0)
    bound = bound_factor * np.abs(x_ref - mean).max()

    def run_all(generator):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a diverging run is a fate
            runs = M._generate(generator, x0.astype("float32"), burn_in + steps)
        runs = np.asarray(runs, dtype=np.float64)[:, burn_in:]
        ok = [bool(np.all(np.isfinite(r)) and np.abs(r - mean).max() <= bound) for r in runs]
        dstsp = np.array([M.state_space_divergence(first, r) if k else np.nan
                          for r, k in zip(runs, ok)])
        return runs, ok, dstsp

    scale = float(std.max())

    def classify(runs, bounded, dstsp, bound):
        labels = []
        for run, ok, d in zip(runs, bounded, dstsp):
            if not ok:
                labels.append("diverged")
            elif np.all(run.std(0) < 1e-3 * std):
                labels.append("fixed_point")
            elif periodic(run[-cycle_window:], tol=cycle_tol * scale) is not None:
                labels.append("cycle")
            elif d <= bound:
                labels.append("reached")
            else:
                labels.append("other")
        return labels

    ref_dstsp = ref_counts = ref_labels = None
    if reference is not None:
        ref_runs, ref_ok, ref_dstsp = run_all(reference)
        if not any(ref_ok):
            raise ValueError("free_run_fates: every run of `reference` diverged (is it the "
                             "true system in the units of x_ref?).")
        if max_dstsp is None:
            max_dstsp = float(np.nanmax(ref_dstsp)) + 0.2
    if max_dstsp is None:  # D_stsp depends on the sample size: the floor's has `steps`
        max_dstsp = M.state_space_divergence(first, x_ref[half:half + steps]) + 0.2
    max_dstsp = check_number(max_dstsp, "max_dstsp", 0, where="free_run_fates")
    if reference is not None:
        ref_labels = classify(ref_runs, ref_ok, ref_dstsp, max_dstsp)
        ref_counts = {f: ref_labels.count(f) for f in FATES}
        del ref_runs
    runs, bounded, dstsp = run_all(model)
    labels = classify(runs, bounded, dstsp, max_dstsp)
    counts = {f: labels.count(f) for f in FATES}
    return Fates(labels=labels, counts=counts,
                 fractions={f: counts[f] / len(labels) for f in FATES}, dstsp=dstsp,
                 max_dstsp=float(max_dstsp), x0=x0, reference_dstsp=ref_dstsp,
                 reference_counts=ref_counts, reference_labels=ref_labels)
