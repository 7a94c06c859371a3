"""Delay-coordinate vectors and the lag from the auto mutual information."""

import numpy as np

from keras_dsr._checks import check_array, check_int

def _as_series(x, name="x"):
    """Validate a finite numeric series [T] or [T, C]; return it as float64 [T, C]."""
    return check_array(x, name).astype(np.float64)


def _delays(dim, lag):
    """Offsets (0, ...) of the delay coordinates from ``dim`` and ``lag``."""
    dim = check_int(dim, "dim", 1)
    if isinstance(lag, (list, tuple, np.ndarray)):
        offsets = [int(v) for v in np.asarray(lag).ravel()]
        if (len(offsets) != dim or offsets[0] != 0 or any(
                b <= a for a, b in zip(offsets[:-1], offsets[1:]))):
            raise ValueError(
                f"lag given as a sequence must hold dim={dim} strictly increasing "
                f"offsets starting at 0, got {list(np.asarray(lag).ravel())!r}."
            )
        return np.asarray(offsets)
    lag = check_int(lag, "lag", 1)
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
    max_lag = check_int(max_lag, "max_lag", 1)
    if max_lag > T - 2:
        raise ValueError(f"max_lag must be < T - 1 = {T - 1}, got {max_lag}.")
    bins = _sturges_bins(T) if bins is None else check_int(bins, "bins", 2)
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
    max_lag = check_int(max_lag, "max_lag", 2)
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
