"""Delay embedding of scalar or few-channel series, with lag and dimension chosen from data.

A measured series x_t (one channel, or a few) is lifted into a state space by
delay coordinates (Takens 1981; Sauer, Yorke & Casdagli 1991)::

    y_i = (x_i, x_{i+lag}, x_{i+2 lag}, ..., x_{i+(dim-1) lag})

:func:`delay_embed` builds these vectors; the rest chooses ``lag`` and ``dim``:

- lag: the first minimum of the auto mutual information (Fraser & Swinney 1986),
  estimated with a histogram (:func:`auto_mutual_information`); when the curve has
  no minimum within ``max_lag``, the first lag where the autocorrelation falls
  below 1/e (:func:`estimate_lag`).
- dimension: false nearest neighbours (Kennel, Brown & Abarbanel 1992,
  :func:`false_nearest_neighbors`) or Cao's averaged false neighbours (Cao 1997,
  :func:`cao_e1_e2`), both with neighbours from ``scipy.spatial.cKDTree`` and a
  Theiler window that keeps temporally adjacent samples out of the neighbour
  search (:func:`estimate_dimension`).
- both at once: :func:`choose_embedding`.

Why not PECUZAL (Krämer et al. 2021), the method the Durstewitz lab used for its
ECG benchmark: its Python implementation on PyPI, ``pecuzal-embedding``, has had
no release since version 1.3.4 (August 2021), and it is a pure-Python
reimplementation whose cost grows with the number of candidate delays times the
number of points; the maintained implementation is the Julia package
DelayEmbeddings.jl. This module therefore uses the two classical, independent
criteria (AMI for the lag, FNN / Cao for the dimension), which need only numpy
and scipy and are quick on 10^4-10^5 points. For non-uniform delays, pass the
delays explicitly to :func:`delay_embed` (``lag`` as a sequence).

Measured on Lorenz-63's x (``keras_dsr.systems.simulate("lorenz63", 20_000,
seed=s)``, dt = 0.01, seeds 0-4; ``tests/test_embedding.py``): first AMI
minimum at 17-21 samples (0.17-0.21 time units, within the 0.15-0.2 time units
usually quoted for this system), FNN gives dimension 3 for every seed (false
fraction about 7 % at d = 2, 0 at d = 3), and so does Cao's rule; 3 is the
embedding dimension Kennel et al. (1992) report for Lorenz-63.

Example:
    >>> import numpy as np
    >>> x = np.arange(10.0)
    >>> delay_embed(x, dim=3, lag=2)[:2]
    array([[0., 2., 4.],
           [1., 3., 5.]])
"""

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "auto_mutual_information",
    "cao_e1_e2",
    "choose_embedding",
    "delay_embed",
    "estimate_dimension",
    "estimate_lag",
    "false_nearest_neighbors",
]


def _as_series(x, name="x"):
    """Validate a finite numeric series [T] or [T, C]; return it as float64 [T, C]."""
    try:
        arr = np.asarray(x)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"{name} must be an array [T] or [T, C], got {type(x)}.") from e
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == bool):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}.")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must have shape [T] or [T, C] (time steps x channels), got shape "
            f"{arr.shape}."
        )
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values.")
    return arr


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _delays(dim, lag):
    """Offsets (0, ...) of the delay coordinates from ``dim`` and ``lag``."""
    dim = _check_int(dim, "dim", 1)
    if isinstance(lag, (list, tuple, np.ndarray)):
        offsets = [int(v) for v in np.asarray(lag).ravel()]
        if (len(offsets) != dim or offsets[0] != 0 or any(
                b <= a for a, b in zip(offsets[:-1], offsets[1:]))):
            raise ValueError(
                f"lag given as a sequence must hold dim={dim} strictly increasing "
                f"offsets starting at 0, got {list(np.asarray(lag).ravel())!r}."
            )
        return np.asarray(offsets)
    lag = _check_int(lag, "lag", 1)
    return lag * np.arange(dim)


def delay_embed(x, dim, lag):
    """Delay-coordinate embedding of a series.

    Row ``i`` of the result is ``(x[i], x[i + lag], ..., x[i + (dim-1) lag])``:
    for a multichannel series ``x [T, C]`` each delay contributes all C
    channels, delay-major: column ``k * C + c`` holds channel ``c`` at delay
    ``k * lag``, so the first C columns are the series itself (row i is time i).

    Args:
        x: series ``[T]`` or ``[T, C]`` (finite numbers).
        dim: number of delay coordinates per channel (int >= 1).
        lag: delay in samples (int >= 1), or a sequence of ``dim`` strictly
            increasing offsets starting at 0 for non-uniform delays.

    Returns:
        float64 array ``[T - max_offset, dim * C]`` (``max_offset = (dim-1) * lag``
        for a uniform lag).

    Raises:
        ValueError: bad ``dim`` / ``lag``, or a series too short to give at
            least 2 delay vectors.

    Example:
        >>> delay_embed(np.array([[0., 10.], [1., 11.], [2., 12.]]), dim=2, lag=1)
        array([[ 0., 10.,  1., 11.],
               [ 1., 11.,  2., 12.]])
    """
    x = _as_series(x)
    offsets = _delays(dim, lag)
    T = x.shape[0]
    n = T - int(offsets[-1])
    if n < 2:
        raise ValueError(
            f"x has {T} samples; dim={dim} with lag={lag!r} needs at least "
            f"{int(offsets[-1]) + 2} (max offset + 2)."
        )
    return np.concatenate([x[o:o + n] for o in offsets], axis=1)


def _sturges_bins(n):
    return int(np.ceil(np.log2(n))) + 1


def auto_mutual_information(x, max_lag, bins=None):
    """Auto mutual information I(k) of a scalar series, k = 0..max_lag (in nats).

    Histogram estimator: the range of ``x`` is cut into ``bins`` equal-width
    bins (the same edges for x_t and x_{t+k}); I(k) is the mutual information of
    the joint histogram of (x_t, x_{t+k}) over the T - k available pairs.
    Default ``bins``: Sturges' rule ``ceil(log2 T) + 1`` (16 bins at
    T = 2^15, the default bin count of TISEAN's ``mutual``).

    Args:
        x: scalar series ``[T]`` (or ``[T, 1]``).
        max_lag: largest lag (int >= 1, < T - 1).
        bins: number of bins (int >= 2) or None for Sturges' rule.

    Returns:
        float64 array ``[max_lag + 1]``; entry 0 is the histogram entropy of x.
    """
    x = _as_series(x)
    if x.shape[1] != 1:
        raise ValueError(
            f"auto_mutual_information takes a scalar series; x has {x.shape[1]} "
            f"channels (call it per channel)."
        )
    x = x[:, 0]
    T = x.size
    max_lag = _check_int(max_lag, "max_lag", 1)
    if max_lag > T - 2:
        raise ValueError(f"max_lag must be < T - 1 = {T - 1}, got {max_lag}.")
    bins = _sturges_bins(T) if bins is None else _check_int(bins, "bins", 2)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        raise ValueError("x is constant: its mutual information is undefined.")
    idx = np.minimum(((x - lo) / (hi - lo) * bins).astype(np.int64), bins - 1)
    out = np.empty(max_lag + 1)
    for k in range(max_lag + 1):
        a, b = idx[:T - k], idx[k:]
        joint = np.bincount(a * bins + b, minlength=bins * bins).reshape(bins, bins)
        p = joint / joint.sum()
        pa, pb = p.sum(1), p.sum(0)
        nz = p > 0
        out[k] = float(np.sum(p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])))
    return out


def _first_minimum(values):
    """First lag k >= 1 that is the smallest value of ``values`` within k +- w.

    w = max(2, round(k / 4)): a plain "I(k-1) > I(k) <= I(k+1)" test stops at
    the ripples a histogram estimator adds to the curve (about one bin of
    width per lag); asking for the minimum over a window that grows with k
    skips them and still finds a quarter period of a noisy sine within a few
    per cent (``tests/test_embedding.py``). None if no lag qualifies (the
    window must fit inside the computed curve).
    """
    values = np.asarray(values)
    for k in range(1, len(values) - 1):
        w = max(2, int(round(k / 4)))
        if k + w >= len(values):
            return None
        if values[k] < values[k - 1] and values[k] <= values[max(0, k - w):k + w + 1].min():
            return k
    return None


def _autocorrelation_decay(x, max_lag):
    """First lag where the autocorrelation of x falls below 1/e (None if never)."""
    x = x - x.mean()
    var = float(np.dot(x, x))
    if var == 0:
        return None
    for k in range(1, max_lag + 1):
        if np.dot(x[:-k], x[k:]) / var < np.exp(-1.0):
            return k
    return None


def estimate_lag(x, max_lag=None, bins=None, return_method=False):
    """Delay (in samples) from the first minimum of the auto mutual information.

    Per channel: the first lag k >= 1 at which I(k) < I(k-1) and I(k) is the
    smallest value of I over [k - w, k + w], w = max(2, round(k/4)) (a window
    that skips the ripples of the histogram estimator;
    :func:`auto_mutual_information`). A noise-free periodic signal gives a
    ragged histogram estimate (its delay pairs lie on a curve that crosses
    the grid irregularly); measured signals, with some noise, do not. When I(k) has no minimum up to
    ``max_lag``, the fallback is the first lag where the autocorrelation falls
    below 1/e; when that also fails, ``max_lag``. For several channels the
    smallest per-channel lag is returned (no channel is under-sampled).

    Args:
        x: series ``[T]`` or ``[T, C]``.
        max_lag: largest lag searched (default ``min(T // 10, 500)``, at least 2).
        bins: histogram bins (default: Sturges' rule, see
            :func:`auto_mutual_information`).
        return_method: also return which rule decided (``"ami_minimum"``,
            ``"autocorrelation_1/e"`` or ``"max_lag"``; for several channels, the
            rule of the channel whose lag was chosen).

    Returns:
        the lag (int >= 1), or ``(lag, method)``.

    Example:
        >>> t = np.arange(20_000)
        >>> noise = 0.05 * np.random.default_rng(0).standard_normal(t.size)
        >>> estimate_lag(np.sin(2 * np.pi * t / 100) + noise)   # a quarter period: 25
        26
    """
    x = _as_series(x)
    T = x.shape[0]
    if max_lag is None:
        max_lag = max(2, min(T // 10, 500))
    max_lag = _check_int(max_lag, "max_lag", 2)
    if max_lag > T - 2:
        raise ValueError(f"max_lag must be < T - 1 = {T - 1}, got {max_lag}.")
    best = None
    for c in range(x.shape[1]):
        ami = auto_mutual_information(x[:, c], max_lag, bins=bins)
        k, method = _first_minimum(ami), "ami_minimum"
        if k is None:
            k, method = _autocorrelation_decay(x[:, c], max_lag), "autocorrelation_1/e"
        if k is None:
            k, method = max_lag, "max_lag"
        if best is None or k < best[0]:
            best = (int(k), method)
    return best if return_method else best[0]


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
    lag = _check_int(lag, "lag", 1)
    max_dim = _check_int(max_dim, "max_dim", 1)
    theiler = lag if theiler is None else _check_int(theiler, "theiler", 0)
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
    lag = _check_int(lag, "lag", 1)
    max_dim = _check_int(max_dim, "max_dim", 1)
    theiler = lag if theiler is None else _check_int(theiler, "theiler", 0)
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
