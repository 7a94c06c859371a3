"""The embedding dimension from false nearest neighbours or Cao's method."""

import numpy as np
from scipy.spatial import cKDTree

from keras_dsr._checks import check_int
from keras_dsr.embedding.delay import _as_series, delay_embed, estimate_lag

def _nearest_outside_window(points, theiler, k0=None):
    """Index of each point's nearest neighbour j with |i - j| > theiler (Euclidean).

    Queries ``cKDTree`` for increasing k until every point has such a neighbour.
    """
    n = points.shape[0]
    if n <= 2 * theiler + 1:
        raise ValueError(
            f"Too few delay vectors ({n}) for a Theiler window of {theiler}: need more "
            f"than {2 * theiler + 1}."
        )
    tree = cKDTree(points)
    k = min(n, k0 or (2 * theiler + 2))
    idx = np.arange(n)
    result = np.full(n, -1)
    dist = np.zeros(n)
    todo = idx
    while todo.size:
        d, j = tree.query(points[todo], k=k)
        d, j = d.reshape(todo.size, -1), j.reshape(todo.size, -1)
        ok = np.abs(j - todo[:, None]) > theiler
        has = ok.any(axis=1)
        first = ok.argmax(axis=1)
        rows = np.nonzero(has)[0]
        result[todo[rows]] = j[rows, first[rows]]
        dist[todo[rows]] = d[rows, first[rows]]
        todo = todo[~has]
        if k >= n:
            break
        k = min(n, 2 * k)
    return result, dist


def false_nearest_neighbors(x, lag, max_dim=8, rtol=15.0, atol=2.0, theiler=None):
    """Fraction of false nearest neighbours for dim = 1..max_dim (Kennel et al. 1992).

    For each delay vector y_i in dimension d, with nearest neighbour y_j
    (Euclidean, ``cKDTree``, |i - j| > ``theiler``) at distance R_d(i), the pair
    is false if adding the (d+1)-th delay coordinate separates it:
    ``|x_{i+d lag} - x_{j+d lag}| / R_d(i) > rtol`` (criterion 1), or
    ``R_{d+1}(i) / R_A > atol`` with R_A the standard deviation of the series
    (criterion 2). Multichannel series add all C channels per delay (the
    norm of that block is used). Only vectors that have a (d+1)-th coordinate
    enter, so every dimension uses T - d*lag points.

    Args:
        x: series ``[T]`` or ``[T, C]``.
        lag: delay in samples (int >= 1).
        max_dim: largest dimension tested (int >= 1).
        rtol, atol: Kennel's thresholds (defaults 15 and 2, as in the paper).
        theiler: exclusion window in samples (default ``lag``).

    Returns:
        float64 array ``[max_dim]``: entry d-1 is the false fraction at dim d.
    """
    x = _as_series(x)
    lag = check_int(lag, "lag", 1)
    max_dim = check_int(max_dim, "max_dim", 1)
    theiler = lag if theiler is None else check_int(theiler, "theiler", 0)
    if not (np.isscalar(rtol) and rtol > 0 and np.isscalar(atol) and atol > 0):
        raise ValueError(f"rtol and atol must be positive numbers, got {rtol!r}, {atol!r}.")
    r_a = float(np.sqrt(np.sum(x.var(axis=0))))
    if r_a == 0:
        raise ValueError("x is constant: false nearest neighbours are undefined.")
    T = x.shape[0]
    if T - max_dim * lag < 2 * theiler + 3:
        raise ValueError(
            f"x has {T} samples: too short for max_dim={max_dim} with lag={lag} "
            f"(need more than {max_dim * lag + 2 * theiler + 2})."
        )
    out = np.empty(max_dim)
    for d in range(1, max_dim + 1):
        n = T - d * lag
        y = delay_embed(x, d, lag)[:n]
        nxt = x[d * lag:d * lag + n]
        j, r = _nearest_outside_window(y, theiler)
        extra = np.linalg.norm(nxt - nxt[j], axis=1)
        r = np.maximum(r, np.finfo(float).tiny)
        crit1 = extra / r > rtol
        crit2 = np.sqrt(r ** 2 + extra ** 2) / r_a > atol
        out[d - 1] = float(np.mean(crit1 | crit2))
    return out


def cao_e1_e2(x, lag, max_dim=8, theiler=None):
    """Cao's (1997) E1(d) and E2(d), d = 1..max_dim.

    With y_i^(d) the delay vectors and n(i, d) the nearest neighbour of y_i^(d)
    in the maximum norm (|i - n| > ``theiler``):
    a(i, d) = ||y_i^(d+1) - y_n^(d+1)||_inf / ||y_i^(d) - y_n^(d)||_inf,
    E(d) = mean_i a(i, d), E1(d) = E(d+1) / E(d);
    E*(d) = mean_i |x_{i + d lag} - x_{n + d lag}|, E2(d) = E*(d+1) / E*(d).
    E1 stops changing (close to 1) once d is large enough for an embedding;
    E2 stays near 1 for every d only for stochastic data.

    Args:
        x: series ``[T]`` or ``[T, C]`` (the max norm runs over all entries).
        lag: delay in samples (int >= 1).
        max_dim: largest d for which E1 and E2 are returned (int >= 1).
        theiler: exclusion window in samples (default ``lag``).

    Returns:
        ``(e1, e2)``: float64 arrays ``[max_dim]``, entry d-1 for dimension d.
    """
    x = _as_series(x)
    lag = check_int(lag, "lag", 1)
    max_dim = check_int(max_dim, "max_dim", 1)
    theiler = lag if theiler is None else check_int(theiler, "theiler", 0)
    T = x.shape[0]
    if T - (max_dim + 1) * lag < 2 * theiler + 3:
        raise ValueError(
            f"x has {T} samples: too short for max_dim={max_dim} with lag={lag} "
            f"(need more than {(max_dim + 1) * lag + 2 * theiler + 2})."
        )
    e, e_star = [], []
    for d in range(1, max_dim + 2):
        n = T - d * lag
        y = delay_embed(x, d, lag)[:n]
        nxt = x[d * lag:d * lag + n]
        tree = cKDTree(y)
        k = min(n, 2 * theiler + 2)
        dist, j = tree.query(y, k=k, p=np.inf)
        ok = np.abs(j - np.arange(n)[:, None]) > theiler
        if not ok.any(axis=1).all():
            raise RuntimeError("Cao's method found a point without a neighbour outside "
                               "the Theiler window; use a longer series.")
        first = ok.argmax(axis=1)
        rows = np.arange(n)
        jj, dd = j[rows, first], dist[rows, first]
        if np.any(dd == 0):
            raise ValueError(
                "x has repeated delay vectors (zero neighbour distance): Cao's method "
                "needs distinct points (add a little noise or remove duplicates)."
            )
        step = np.abs(nxt - nxt[jj]).max(axis=1)
        e.append(float(np.mean(np.maximum(dd, step) / dd)))
        e_star.append(float(np.mean(step)))
    e, e_star = np.asarray(e), np.asarray(e_star)
    return e[1:] / e[:-1], e_star[1:] / e_star[:-1]


def estimate_dimension(x, lag, method="fnn", max_dim=8, threshold=None, theiler=None):
    """Embedding dimension from false nearest neighbours or Cao's E1.

    - ``method="fnn"``: the smallest d whose false-neighbour fraction
      (:func:`false_nearest_neighbors`) is at most ``threshold`` (default 0.01).
    - ``method="cao"``: the smallest d with E1(d) >= ``threshold`` (default
      0.7) times the largest E1 up to ``max_dim``, i.e. going from d to d+1
      dimensions no longer stretches neighbour distances much
      (:func:`cao_e1_e2`; E1 approaches 1 only slowly on finite data, hence
      the relative threshold). On Lorenz-63's x (20 000 samples, seeds 0-4,
      lag from :func:`estimate_lag`) E1(2) is 0.08-0.18 and E1(3) 0.76-0.91
      of a maximum near 1, so 0.7 separates them with margin on both sides.

    Raises RuntimeError when no d <= ``max_dim`` passes (data too short, too
    noisy, or the dimension is larger than ``max_dim``).
    """
    if method not in ("fnn", "cao"):
        raise ValueError(f"method must be 'fnn' or 'cao', got {method!r}.")
    if method == "fnn":
        threshold = 0.01 if threshold is None else threshold
        scores = false_nearest_neighbors(x, lag, max_dim=max_dim, theiler=theiler)
        passed = np.nonzero(scores <= threshold)[0]
        what = f"false-neighbour fraction <= {threshold}"
    else:
        threshold = 0.7 if threshold is None else threshold
        scores, _ = cao_e1_e2(x, lag, max_dim=max_dim, theiler=theiler)
        passed = np.nonzero(scores >= threshold * scores.max())[0]
        what = f"Cao's E1 >= {threshold} * max E1"
    if passed.size == 0:
        raise RuntimeError(
            f"No embedding dimension up to max_dim={max_dim} has {what} (scores "
            f"{np.round(scores, 4).tolist()}); raise max_dim, use more data, or "
            f"reduce the noise."
        )
    return int(passed[0]) + 1


def choose_embedding(x, method="fnn", max_lag=None, max_dim=8, bins=None,
                     threshold=None):
    """Choose (dim, lag) from the data and embed.

    The lag from :func:`estimate_lag` (first AMI minimum, autocorrelation 1/e
    fallback), then the dimension from :func:`estimate_dimension` at that lag.

    Args:
        x: series ``[T]`` or ``[T, C]``.
        method: ``"fnn"`` or ``"cao"``.
        max_lag, bins: passed to :func:`estimate_lag`.
        max_dim, threshold: passed to :func:`estimate_dimension`.

    Returns:
        ``(dim, lag, embedded)`` with ``embedded = delay_embed(x, dim, lag)``
        of shape ``[T - (dim-1) lag, dim * C]``.

    Example:
        >>> from keras_dsr.systems import simulate
        >>> x = simulate("lorenz63", 20_000, seed=0).x[:, 0]
        >>> dim, lag, y = choose_embedding(x)
        >>> dim, lag, y.shape
        (3, 18, (19964, 3))
    """
    lag = estimate_lag(x, max_lag=max_lag, bins=bins)
    dim = estimate_dimension(x, lag, method=method, max_dim=max_dim, threshold=threshold)
    return dim, lag, delay_embed(x, dim, lag)
