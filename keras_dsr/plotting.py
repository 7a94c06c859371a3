"""Figures for DSR: attractors, power spectra, time series, training curves.

Needs matplotlib (the ``plot`` extra: ``pip install keras-dsr[plot]``). Figures
are drawn on ``matplotlib.figure.Figure`` with the Agg canvas, so no display and
no global backend change is needed (headless servers, CI). Every function returns
the Figure and, when ``path`` is given, writes it as PNG.

Example:
    >>> from keras_dsr.systems import simulate
    >>> x = simulate("lorenz63", 5000).x
    >>> fig = plot_attractor(x, x[::-1], path="attractor.png")  # doctest: +SKIP
"""

import numpy as np

__all__ = ["plot_attractor", "plot_power_spectrum", "plot_time_series",
           "plot_training_curves", "smoothed_spectrum"]

_TRUE = dict(color="0.25", lw=0.6, label="true")
_GEN = dict(color="tab:red", lw=0.6, alpha=0.8, label="generated")


def _figure(figsize):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "keras_dsr.plotting needs matplotlib: pip install 'keras-dsr[plot]'"
        ) from e
    fig = Figure(figsize=figsize, constrained_layout=True)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi):
    if path is not None:
        from keras_dsr.io import atomic_path

        with atomic_path(path) as tmp:  # a killed run leaves no half-written PNG
            fig.savefig(tmp, dpi=dpi, format="png")
    return fig


def _arr(x, name):
    if x is None:
        return None
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must have shape [T, N], got {x.shape}.")
    return x


def _names(n, names):
    if names is None:
        return [f"x{i + 1}" for i in range(n)]
    if len(names) < n:
        raise ValueError(f"names must have at least {n} entries, got {len(names)}.")
    return list(names)


def plot_attractor(x_true, x_gen=None, path=None, dims=(0, 1, 2), max_points=20_000,
                   names=None, title=None, dpi=120):
    """True (and generated) attractor: a 3-D view and the three 2-D projections.

    Args:
        x_true: ``[T, N]`` true trajectory (N >= 2; with N == 2 only the plane).
        x_gen: optional ``[T', N]`` generated trajectory.
        path: PNG file to write (optional).
        dims: the three variables shown.
        max_points: at most this many leading points of each trajectory are drawn.
    """
    x_true = _arr(x_true, "x_true")
    x_gen = _arr(x_gen, "x_gen")
    n = x_true.shape[1]
    if n < 2:
        raise ValueError("plot_attractor needs at least 2 variables.")
    names = _names(n, names)
    dims = tuple(d for d in dims if d < n)[:3]
    if len(dims) < 2:
        dims = (0, 1)
    data = [(x_true[:max_points], _TRUE)]
    if x_gen is not None:
        data.append((x_gen[:max_points], _GEN))
    pairs = [(dims[0], dims[1])] if len(dims) == 2 else [
        (dims[0], dims[1]), (dims[0], dims[2]), (dims[1], dims[2])]
    ncol = len(pairs) + (1 if len(dims) == 3 else 0)
    fig = _figure((3.6 * ncol, 3.6))
    col = 1
    if len(dims) == 3:
        ax = fig.add_subplot(1, ncol, 1, projection="3d")
        for x, style in data:
            ax.plot(x[:, dims[0]], x[:, dims[1]], x[:, dims[2]], **style)
        ax.set_xlabel(names[dims[0]])
        ax.set_ylabel(names[dims[1]])
        ax.set_zlabel(names[dims[2]])
        ax.legend(loc="upper left", fontsize="small")
        col = 2
    for k, (i, j) in enumerate(pairs):
        ax = fig.add_subplot(1, ncol, col + k)
        for x, style in data:
            ax.plot(x[:, i], x[:, j], **style)
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi)


def smoothed_spectrum(x, sigma=20.0):
    """The spectra D_H compares: z-score, ``|rfft|**2``, Gaussian smoothing, sum 1.

    ``x [T, N]`` -> ``[T // 2 + 1, N]``.
    """
    from scipy.ndimage import gaussian_filter1d

    x = _arr(x, "x")
    sd = x.std(0)
    z = (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)
    ps = gaussian_filter1d(np.abs(np.fft.rfft(z, axis=0)) ** 2, sigma, axis=0)
    ps = np.clip(ps, 0, None)
    tot = ps.sum(0)
    return ps / np.where(tot > 0, tot, 1.0)


def plot_power_spectrum(x_true, x_gen=None, path=None, dt=1.0, sigma=20.0, max_freq=None,
                        names=None, title=None, dpi=120):
    """Smoothed, normalised power spectra per variable (as in D_H), log scale.

    Args:
        dt: sampling interval, for a frequency axis in cycles per time unit.
        max_freq: highest frequency shown (default: the Nyquist frequency).
    """
    x_true = _arr(x_true, "x_true")
    x_gen = _arr(x_gen, "x_gen")
    n = x_true.shape[1]
    names = _names(n, names)
    T = x_true.shape[0] if x_gen is None else min(x_true.shape[0], x_gen.shape[0])
    f = np.fft.rfftfreq(T, d=dt)
    fig = _figure((3.6 * n, 3.0))
    p = smoothed_spectrum(x_true[:T], sigma)
    q = None if x_gen is None else smoothed_spectrum(x_gen[:T], sigma)
    keep = f <= (max_freq if max_freq is not None else f[-1])
    for i in range(n):
        ax = fig.add_subplot(1, n, i + 1)
        ax.semilogy(f[keep], np.maximum(p[keep, i], 1e-300), **_TRUE)
        if q is not None:
            ax.semilogy(f[keep], np.maximum(q[keep, i], 1e-300), **_GEN)
        ax.set_xlabel("frequency (1 / time unit)" if dt != 1.0 else "frequency (1 / step)")
        ax.set_title(names[i])
        if i == 0:
            ax.set_ylabel("normalised power")
            ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi)


def plot_time_series(x_true, x_gen=None, path=None, steps=1000, dt=1.0, names=None,
                     title=None, dpi=120):
    """The first ``steps`` samples of each variable, true and generated, stacked."""
    x_true = _arr(x_true, "x_true")
    x_gen = _arr(x_gen, "x_gen")
    n = x_true.shape[1]
    names = _names(n, names)
    fig = _figure((8.0, 1.6 * n + 0.6))
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for i, ax in enumerate(axes):
        xt = x_true[:steps, i]
        ax.plot(np.arange(xt.size) * dt, xt, **_TRUE)
        if x_gen is not None:
            xg = x_gen[:steps, i]
            ax.plot(np.arange(xg.size) * dt, xg, **_GEN)
        ax.set_ylabel(names[i])
    axes[0].legend(fontsize="small", loc="upper right")
    axes[-1].set_xlabel("time" if dt != 1.0 else "step")
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi)


def plot_training_curves(history, path=None, keys=None, title=None, dpi=120):
    """Training curves: one panel per quantity (loss, alpha, measures...).

    Args:
        history: a ``keras.callbacks.History`` (``model.fit``'s return value) or
            a dict ``{name: [value per epoch]}``.
        keys: the quantities to show (default: all). ``val_<name>`` is drawn in
            the same panel as ``<name>``. Non-finite values (a diverged epoch's
            ``inf``) are left out of the line and marked with an x at the top.
    """
    h = getattr(history, "history", history)
    if not isinstance(h, dict) or not h:
        raise TypeError("history must be a keras History or a non-empty dict of lists.")
    keys = list(h) if keys is None else list(keys)
    missing = [k for k in keys if k not in h]
    if missing:
        raise ValueError(f"keys {missing} not in history (has {sorted(h)}).")
    panels = []
    for k in keys:
        base = k[4:] if k.startswith("val_") and k[4:] in h else k
        if base not in panels:
            panels.append(base)
    fig = _figure((3.6 * len(panels), 3.0))
    for i, base in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for k in (base, "val_" + base):
            if k not in h or k not in keys and not (k == base and "val_" + base in keys):
                continue
            y = np.asarray(h[k], dtype=np.float64)
            ep = np.arange(1, y.size + 1)
            ok = np.isfinite(y)
            ax.plot(ep[ok], y[ok], marker="o", ms=3, label=k)
            if (~ok).any():
                top = np.max(y[ok]) if ok.any() else 1.0
                ax.plot(ep[~ok], np.full((~ok).sum(), top), "x", color="k")
        ax.set_xlabel("epoch")
        ax.set_title(base)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi)
