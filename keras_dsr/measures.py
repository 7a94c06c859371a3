r"""Measures of dynamical-systems reconstruction quality (docs/method.md §Evaluation measures).

All measures compare a *generated* (free-running) trajectory with the *true* test
trajectory and follow the conventions of the Durstewitz lab's GTF/ALRNN code:

* :func:`state_space_divergence` (D_stsp): geometric agreement of the attractors, the
  KL divergence of Laplace-smoothed N-d histograms (30 bins per variable, N < 6;
  :func:`state_space_divergence_binning`) or of Gaussian mixtures on the points
  (N >= 6; :func:`state_space_divergence_gmm`).
* :func:`power_spectrum_distance` (D_H): per variable, the Hellinger distance of the
  smoothed (sigma = 20 frequency bins), normalised power spectra; averaged.
* :func:`prediction_error` (PE(n)): from each test point x_t the model generates
  n = 20 steps; mean squared error of the n-th generated step against x_{t+n}.
* :func:`lyapunov_max_model` (lambda_max): Benettin / QR on the model's Jacobians
  along a generated trajectory, per time unit (:mod:`keras_dsr.lyapunov`).

Evaluation protocol (:func:`generate_for_evaluation`): from an initial condition
taken from the test data, generate ``1.25 * T_test`` steps and drop the first
``0.25 * T_test`` as transient; compare the remaining ``T_test`` with the test set.

Numerical failure: a generated trajectory containing NaN or inf is never scored
silently. With ``nonfinite="warn"`` (default) D_stsp, D_H and PE return ``inf``
and emit a ``RuntimeWarning`` (so ``EarlyStopping`` / checkpoints treat it as the
worst value); with ``nonfinite="raise"`` they raise ``FloatingPointError``.
Non-finite *true* data always raises ``ValueError``.
"""

import warnings

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import logsumexp

from keras_dsr._checks import check_int

__all__ = [
    "evaluate",
    "generate_for_evaluation",
    "lyapunov_max_jacobians",
    "lyapunov_max_model",
    "lyapunov_max_system",
    "lyapunov_max_trajectory",
    "power_spectrum_distance",
    "prediction_error",
    "state_space_divergence",
    "state_space_divergence_binning",
    "state_space_divergence_gmm",
]

LAPLACE_EPS = 1e-5
GMM_DIM_THRESHOLD = 6


# ------------------------------------------------------------------ helpers
def _as_2d(x, name):
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a numeric array [T, N], got {type(x)}.") from e
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape [T, N] (or [T]), got shape {x.shape}.")
    if x.shape[0] < 2:
        raise ValueError(f"{name} must have at least 2 time steps, got shape {x.shape}.")
    return x


def _check_pair(x_true, x_gen, **positive):
    """Both trajectories as float64 ``[T, N]`` (``x_true`` finite); each of ``positive``
    (keyword: value) must be > 0."""
    for name, value in positive.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}.")
    x_true = _as_2d(x_true, "x_true")
    x_gen = _as_2d(x_gen, "x_gen")
    if x_true.shape[1] != x_gen.shape[1]:
        raise ValueError(
            f"x_true and x_gen must have the same number of variables N, got "
            f"{x_true.shape[1]} and {x_gen.shape[1]}."
        )
    if not np.all(np.isfinite(x_true)):
        raise ValueError("x_true contains NaN or inf; the test data must be finite.")
    return x_true, x_gen


def _nonfinite(what, nonfinite):
    msg = f"The generated trajectory contains NaN or inf (diverged); {what} = inf."
    if nonfinite == "raise":
        raise FloatingPointError(msg)
    if nonfinite != "warn":
        raise ValueError(f"nonfinite must be 'warn' or 'raise', got {nonfinite!r}.")
    warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return float("inf")


# ------------------------------------------------------------------ D_stsp
def _bin_indices(x, lo, width, n_bins):
    """Linear bin index of every point of x, and a mask of points inside the grid."""
    idx = np.floor((x - lo) / width).astype(np.int64)
    # numpy.histogram convention: the right edge belongs to the last bin
    idx[(idx == n_bins) & np.isclose(x, lo + n_bins * width)] = n_bins - 1
    inside = np.all((idx >= 0) & (idx < n_bins), axis=1)
    return np.ravel_multi_index(tuple(idx[inside].T), (n_bins,) * idx.shape[1])


def state_space_divergence_binning(x_true, x_gen, n_bins=30, nonfinite="warn"):
    """D_stsp by binning (for N < 6): KL divergence of smoothed N-d histograms.

    Grid: per dimension ``n_bins`` equal bins over ``[min - 0.1 sd, max + 0.1 sd]``
    of ``x_true``; generated points outside the grid are ignored. With counts
    h and K = n_bins**N bins, ``p = (h + 1e-5) / (sum h + 1e-5 K)`` and
    ``D_stsp = sum_k p_true,k log(p_true,k / p_gen,k)`` (nats).

    Args:
        x_true: test trajectory ``[T, N]``.
        x_gen: generated trajectory ``[T', N]``.
        n_bins: bins per dimension (30 in docs/method.md §Evaluation measures).
        nonfinite: ``"warn"`` (return inf with a RuntimeWarning) or ``"raise"``
            for a generated trajectory with NaN/inf.

    Returns:
        float >= 0 (0 for identical data; ~15 for a collapse to a fixed point).

    Example:
        >>> x = np.random.default_rng(0).normal(size=(10_000, 3))
        >>> state_space_divergence_binning(x, x)
        0.0
    """
    x_true, x_gen = _check_pair(x_true, x_gen)
    check_int(n_bins, "n_bins")
    if not np.all(np.isfinite(x_gen)):
        return _nonfinite("D_stsp", nonfinite)
    N = x_true.shape[1]
    sd = x_true.std(axis=0)
    lo = x_true.min(axis=0) - 0.1 * sd
    hi = x_true.max(axis=0) + 0.1 * sd
    width = (hi - lo) / n_bins
    width = np.where(width > 0, width, 1.0)  # constant true variable: one bin
    lin_t = _bin_indices(x_true, lo, width, n_bins)
    lin_g = _bin_indices(x_gen, lo, width, n_bins)
    K = float(n_bins) ** N
    z_t = lin_t.size + LAPLACE_EPS * K
    z_g = lin_g.size + LAPLACE_EPS * K
    if K <= 2_000_000:  # dense histograms
        h_t = np.bincount(lin_t, minlength=int(K)).astype(np.float64)
        h_g = np.bincount(lin_g, minlength=int(K)).astype(np.float64)
        p_t = (h_t + LAPLACE_EPS) / z_t
        p_g = (h_g + LAPLACE_EPS) / z_g
        kl = float(np.sum(p_t * np.log(p_t / p_g)))
    else:  # sparse: bins empty in both histograms all contribute the same term
        occ, inv = np.unique(np.concatenate([lin_t, lin_g]), return_inverse=True)
        h_t = np.bincount(inv[: lin_t.size], minlength=occ.size).astype(np.float64)
        h_g = np.bincount(inv[lin_t.size:], minlength=occ.size).astype(np.float64)
        p_t = (h_t + LAPLACE_EPS) / z_t
        p_g = (h_g + LAPLACE_EPS) / z_g
        n_empty = K - occ.size
        kl = float(np.sum(p_t * np.log(p_t / p_g))
                   + n_empty * (LAPLACE_EPS / z_t) * np.log(z_g / z_t))
    return 0.0 if abs(kl) < 1e-12 else kl


def _log_mixture_density(s, mu, var, block=128):
    """log of the mean of isotropic Gaussians N(mu_k, var I) at samples s [S, N].

    Evaluated in blocks of samples (cache-sized arrays) with ``scipy.special.logsumexp``.
    """
    n = s.shape[1]
    mu2 = np.sum(mu**2, axis=1)
    out = np.empty(s.shape[0])
    for i in range(0, s.shape[0], block):
        sb = s[i:i + block]
        a = sb @ mu.T
        a *= 2.0
        a -= mu2
        a -= np.sum(sb**2, axis=1)[:, None]  # a = -|s - mu|^2
        a *= 0.5 / var
        np.minimum(a, 0.0, out=a)  # rounding can make -|s - mu|^2 slightly positive
        out[i:i + block] = logsumexp(a, axis=1)
    return out - np.log(mu.shape[0]) - 0.5 * n * np.log(2.0 * np.pi * var)


def state_space_divergence_gmm(x_true, x_gen, scaling=1.0, max_points=10_000,
                               n_samples=1000, seed=0, nonfinite="warn"):
    """D_stsp by Gaussian mixtures (for N >= 6): Monte-Carlo KL divergence.

    Each trajectory defines a mixture of isotropic Gaussians with variance
    ``scaling`` centred on its first ``min(T, max_points)`` points; with
    ``n_samples`` samples s drawn from the true mixture,
    ``D_stsp = mean_s [log p_true(s) - log p_gen(s)]`` (nats). Densities are
    evaluated in log space (log-sum-exp), so no sample is lost to underflow
    even when it lies far from every generated point (the lab's float32 code
    drops such samples instead, which can only lower its estimate).

    Args:
        x_true, x_gen: ``[T, N]`` and ``[T', N]`` trajectories.
        scaling: variance of each Gaussian (1.0 in docs/method.md §Evaluation measures).
        max_points: at most this many leading points per trajectory (10**4).
        n_samples: Monte-Carlo samples (1000).
        seed: seed of the sampler (the estimate is random; fixed by default).

    Example:
        >>> x = np.random.default_rng(0).normal(size=(5_000, 6))
        >>> state_space_divergence_gmm(x, x)
        0.0
    """
    x_true, x_gen = _check_pair(x_true, x_gen, scaling=scaling)
    if not np.all(np.isfinite(x_gen)):
        return _nonfinite("D_stsp", nonfinite)
    mu_t = x_true[: int(max_points)]
    mu_g = x_gen[: int(max_points)]
    rng = np.random.default_rng(seed)
    comp = rng.integers(0, mu_t.shape[0], size=int(n_samples))
    s = mu_t[comp] + np.sqrt(scaling) * rng.standard_normal((int(n_samples), mu_t.shape[1]))
    kl = float(np.mean(_log_mixture_density(s, mu_t, scaling)
                       - _log_mixture_density(s, mu_g, scaling)))
    return 0.0 if abs(kl) < 1e-12 else kl


def state_space_divergence(x_true, x_gen, method="auto", n_bins=30, scaling=1.0,
                           nonfinite="warn", **kwargs):
    """D_stsp: binning for N < 6, Gaussian mixture for N >= 6 (``method="auto"``).

    ``method`` may also be ``"binning"`` or ``"gmm"``; extra keyword arguments go
    to :func:`state_space_divergence_gmm`. See the module docstring for formulas.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(10_000, 3))
        >>> state_space_divergence(x, x)
        0.0
    """
    n = np.shape(x_true)[1] if np.ndim(x_true) == 2 else 1
    if method == "auto":
        method = "binning" if n < GMM_DIM_THRESHOLD else "gmm"
    if method == "binning":
        return state_space_divergence_binning(x_true, x_gen, n_bins=n_bins,
                                              nonfinite=nonfinite)
    if method == "gmm":
        return state_space_divergence_gmm(x_true, x_gen, scaling=scaling,
                                          nonfinite=nonfinite, **kwargs)
    raise ValueError(f"method must be 'auto', 'binning' or 'gmm', got {method!r}.")


# ------------------------------------------------------------------ D_H
def _spectra(x, sigma):
    """Smoothed, normalised power spectra of each column of x [T, N] -> [F, N]."""
    sd = x.std(axis=0)
    const = sd == 0
    z = (x - x.mean(axis=0)) / np.where(const, 1.0, sd)
    ps = np.abs(np.fft.rfft(z, axis=0)) ** 2
    ps = gaussian_filter1d(ps, sigma, axis=0)
    ps = np.clip(ps, 0.0, None)
    tot = ps.sum(axis=0)
    ps = ps / np.where(tot > 0, tot, 1.0)
    return ps, const | (tot <= 0)


def power_spectrum_distance(x_true, x_gen, sigma=20.0, nonfinite="warn",
                            per_dimension=False):
    """D_H: Hellinger distance of smoothed power spectra, averaged over variables.

    Per variable: z-score, ``|rfft|**2``, ``gaussian_filter1d(sigma)`` over
    frequency bins, clip < 0, normalise to sum 1; ``H = sqrt(1 - sum sqrt(p q))``.
    Trajectories of different lengths are both cut to the shorter length. A
    constant generated variable (no fluctuation power, e.g. a fixed point) counts
    as maximally distant, H = 1.

    Args:
        x_true, x_gen: ``[T, N]`` trajectories (same sampling interval).
        sigma: smoothing width in frequency bins (20 in docs/method.md §Evaluation measures).
        per_dimension: also return the per-variable distances ``[N]``.

    Returns:
        float in [0, 1] (or ``(mean, [N])``).

    Example:
        >>> t = 0.05 * np.arange(4096)
        >>> x = np.stack([np.sin(t), np.cos(3 * t)], axis=1)
        >>> power_spectrum_distance(x, x)
        0.0
    """
    x_true, x_gen = _check_pair(x_true, x_gen, sigma=sigma)
    if not np.all(np.isfinite(x_gen)):
        v = _nonfinite("D_H", nonfinite)
        return (v, np.full(x_true.shape[1], v)) if per_dimension else v
    T = min(x_true.shape[0], x_gen.shape[0])
    p, _ = _spectra(x_true[:T], sigma)
    q, q_const = _spectra(x_gen[:T], sigma)
    # 1 - sum sqrt(p q) written as sum (sqrt p - sqrt q)^2 / 2 (equal because p and
    # q sum to 1); this form is exactly 0 for identical spectra, without rounding
    h = np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2, axis=0))
    h = np.where(q_const, 1.0, h)
    mean = float(np.mean(h))
    return (mean, h) if per_dimension else mean


# ------------------------------------------------------------------ protocol
def _generate(model, x0, steps, return_latent=False):
    if hasattr(model, "generate"):
        out = model.generate(x0, steps, return_latent=return_latent)
    elif callable(model):
        out = model(x0, steps)
    else:
        raise TypeError(
            "model must have a generate(x0, steps, return_latent=False) method or be "
            f"a callable (x0, steps) -> [B, steps, N]; got {type(model)}."
        )
    if return_latent:
        return tuple(np.asarray(_to_numpy(o)) for o in out)
    return np.asarray(_to_numpy(out))


def _to_numpy(x):
    if isinstance(x, np.ndarray):
        return x
    try:
        import keras

        return keras.ops.convert_to_numpy(x)
    except Exception:  # noqa: BLE001 - fall back to numpy's own conversion
        return np.asarray(x)


def generate_for_evaluation(model, x_test, init_index=0, transient_fraction=0.25):
    """Free-running trajectory for evaluation, following docs/method.md §Evaluation measures.

    From ``x_test[init_index]`` the model generates ``1.25 * T_test`` steps; the
    first ``0.25 * T_test`` are dropped, returning ``[T_test, N]``.

    Args:
        model: has ``generate(x0 [B, N], steps) -> [B, steps, N]`` (a DSR model)
            or is a callable with that signature.
        x_test: test trajectory ``[T_test, N]``.
        init_index: which test point is the initial condition.

    Example:
        >>> step = lambda x0, n: np.repeat(x0[:, None], n, axis=1)  # a fixed point
        >>> generate_for_evaluation(step, np.zeros((100, 3))).shape
        (100, 3)
    """
    x_test = _as_2d(x_test, "x_test")
    T = x_test.shape[0]
    if not -T <= int(init_index) < T:
        raise ValueError(f"init_index must index x_test (length {T}), got {init_index}.")
    n_drop = int(round(transient_fraction * T))
    x0 = x_test[int(init_index)][None, :]
    gen = _generate(model, x0.astype(np.float32), T + n_drop)
    if gen.ndim == 2:
        gen = gen[None]
    if gen.shape[1] != T + n_drop or gen.shape[2] != x_test.shape[1]:
        raise ValueError(
            f"model.generate returned shape {gen.shape}; expected "
            f"(1, {T + n_drop}, {x_test.shape[1]})."
        )
    return gen[0, n_drop:].astype(np.float64)


def prediction_error(model, x_test, n=20, max_inits=None, batch_size=1024, seed=0,
                     nonfinite="warn"):
    """PE(n): mean squared error of n-step-ahead predictions.

    From each test point x_t (t = 0 .. T-n-1, or ``max_inits`` of them chosen
    at random with ``seed``) the model generates n steps; the n-th generated
    step is compared with x_{t+n}: ``PE = mean_t mean_i (x_hat_{t+n,i} - x_{t+n,i})**2``.

    Args:
        model: a DSR model (``generate``) or a callable ``(x0, steps)``.
        x_test: ``[T, N]`` with T > n.
        n: prediction horizon in steps (20 in docs/method.md §Evaluation measures).
        max_inits: optional cap on the number of initial conditions.
        batch_size: initial conditions generated per call.

    Example:
        >>> stay = lambda x0, k: np.repeat(x0[:, None], k, axis=1)
        >>> prediction_error(stay, np.ones((50, 2)), n=5)
        0.0
    """
    x_test = _as_2d(x_test, "x_test")
    check_int(n, "n (steps)")
    T = x_test.shape[0]
    if T <= n:
        raise ValueError(f"x_test must be longer than n={n} steps, got {T}.")
    starts = np.arange(T - n)
    if max_inits is not None and max_inits < starts.size:
        starts = np.sort(np.random.default_rng(seed).choice(starts, int(max_inits), replace=False))
    sq = 0.0
    for i in range(0, starts.size, int(batch_size)):
        s = starts[i:i + int(batch_size)]
        gen = _generate(model, x_test[s].astype(np.float32), n)
        if gen.shape != (s.size, n, x_test.shape[1]):
            raise ValueError(f"model.generate returned shape {gen.shape}; expected "
                             f"({s.size}, {n}, {x_test.shape[1]}).")
        err = gen[:, n - 1].astype(np.float64) - x_test[s + n]
        if not np.all(np.isfinite(err)):
            return _nonfinite("PE", nonfinite)
        sq += float(np.sum(err**2))
    return sq / (starts.size * x_test.shape[1])


# ------------------------------------------------------------------ all at once
def evaluate(model, x_test, measures=("dstsp", "dh"), dt=None, init_index=0, n_bins=30,
             sigma=20.0, pe_steps=20, pe_max_inits=1000, lyap_steps=10_000,
             nonfinite="warn", x_gen=None):
    """Compute several measures of ``model`` on ``x_test`` (the protocol of docs/method.md §Evaluation measures).

    Args:
        measures: any of ``"dstsp"``, ``"dh"``, ``"pe"``, ``"lyap"``.
        dt: sampling interval, needed for ``"lyap"`` (per time unit).
        x_gen: a trajectory already generated with :func:`generate_for_evaluation`
            (otherwise generated here).

    Returns:
        dict ``{"dstsp": ..., "dh": ..., "pe": ..., "lyap": ...}`` (the requested ones).
    """
    known = {"dstsp", "dh", "pe", "lyap"}
    bad = [m for m in measures if m not in known]
    if bad:
        raise ValueError(f"Unknown measure(s) {bad}; expected some of {sorted(known)}.")
    x_test = _as_2d(x_test, "x_test")
    out = {}
    if {"dstsp", "dh"} & set(measures):
        if x_gen is None:
            x_gen = generate_for_evaluation(model, x_test, init_index=init_index)
        if "dstsp" in measures:
            out["dstsp"] = state_space_divergence(x_test, x_gen, n_bins=n_bins,
                                                  nonfinite=nonfinite)
        if "dh" in measures:
            out["dh"] = power_spectrum_distance(x_test, x_gen, sigma=sigma,
                                                nonfinite=nonfinite)
    if "pe" in measures:
        out["pe"] = prediction_error(model, x_test, n=pe_steps, max_inits=pe_max_inits,
                                     nonfinite=nonfinite)
    if "lyap" in measures:
        if dt is None:
            raise ValueError("dt (the sampling interval) is required for 'lyap'.")
        try:
            out["lyap"] = lyapunov_max_model(model, x_test[init_index], steps=lyap_steps,
                                             dt=dt, transient=min(1000, lyap_steps))
        except FloatingPointError as e:
            if nonfinite == "raise":
                raise
            warnings.warn(f"{e} Reported as lambda_max = inf.", RuntimeWarning,
                          stacklevel=2)
            out["lyap"] = float("inf")
    return out


# lambda_max lives in keras_dsr.lyapunov; its names stay importable from here.
from keras_dsr.lyapunov import (  # noqa: E402
    lyapunov_max_jacobians, lyapunov_max_model, lyapunov_max_system, lyapunov_max_trajectory)
