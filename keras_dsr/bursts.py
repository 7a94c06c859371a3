"""Spikes and bursts of a spiking/bursting signal (e.g. Hindmarsh–Rose x); numpy only.

Definitions (all times in the signal's time units, ``index * dt``):

* **spike**: an upward crossing of ``threshold`` by x, counted only if x has
  fallen below ``rearm`` since the previous counted spike (hysteresis, so a
  wiggle around the threshold is one spike, not several). Its time is the first
  sample at or above ``threshold``.
* **burst**: a maximal group of spikes whose consecutive inter-spike intervals
  are all <= ``gap``; an interval > ``gap`` (a long quiescent phase) starts a
  new burst.
* **inter-burst interval (IBI)**: onset-to-onset time of consecutive bursts
  (the burst period), onset = time of a burst's first spike.
* **spikes per burst**: number of spikes in a burst.

Edge handling: the signal window may cut a burst, so the first burst (its onset
may lie before the window) is dropped from both statistics, and the last burst
(it may continue after the window) from the spike counts. IBIs are the
differences of the onsets of bursts 2..n.

:data:`HR_DEFAULTS` are the settings for Hindmarsh–Rose x in ``keras_dsr``
standard units (z-scored with the training statistics; dt = 0.05): spikes peak
near x = 5 and the quiescent baseline stays below ~1, so ``threshold = 2.5``,
``rearm = 0.5``. Inter-spike intervals of the true system are bimodal: ~12-37
time units inside a burst and ~45-73 between bursts, so ``gap = 40`` time units
separates them.

Example:
    >>> x = np.where(np.arange(400) % 50 < 2, 5.0, 0.0)   # a spike every 50 samples
    >>> st = burst_statistics(x, dt=0.1, gap=4.0)          # 5 time units apart: 8 bursts
    >>> st["n_bursts"], st["ibi_mean"], st["spb_mean"]
    (8, 5.0, 1.0)
"""

import numpy as np

from keras_dsr._checks import check_array, check_number

__all__ = ["detect_spikes", "group_bursts", "burst_statistics", "HR_DEFAULTS"]

#: ``threshold``, ``rearm`` and ``gap`` for Hindmarsh–Rose x in standard units.
HR_DEFAULTS = dict(threshold=2.5, rearm=0.5, gap=40.0)


def _positive(value, name):
    """``float(value)`` for a finite number > 0; ValueError naming ``name`` otherwise."""
    return check_number(value, name, 0, True)


def _series(x, name, min_length):
    """One series ``[T]`` from ``[T]`` or ``[T, 1]`` (finite, real, at least ``min_length``)."""
    x = check_array(x, name, min_length=min_length)
    if x.shape[1] != 1:
        raise ValueError(f"{name} must be one series [T] or [T, 1], got shape {x.shape}.")
    return x[:, 0].astype(np.float64)


def detect_spikes(x, dt, threshold=2.5, rearm=0.5):
    """Spike times (time units) of the signal ``x`` sampled every ``dt``.

    Args:
        x: the signal, ``[T]`` or ``[T, 1]``, finite.
        dt: sampling interval (time units), > 0.
        threshold: a spike is an upward crossing of this level.
        rearm: the level x must fall below before the next crossing counts
            (``rearm < threshold``).

    Returns:
        the spike times, ``[n_spikes]`` (float64, ``index * dt``).

    Raises:
        ValueError: naming the argument that is out of range.

    Example:
        >>> x = np.zeros(100); x[[10, 11, 40]] = 5.0
        >>> detect_spikes(x, dt=0.5).tolist()      # 10-11 is one spike
        [5.0, 20.0]
    """
    x = _series(x, "x", 1)
    dt = _positive(dt, "dt")
    if not (np.isfinite(threshold) and np.isfinite(rearm)):
        raise ValueError(f"threshold ({threshold!r}) and rearm ({rearm!r}) must be finite.")
    if rearm >= threshold:
        raise ValueError(f"rearm ({rearm}) must be below threshold ({threshold}).")
    above = x >= threshold
    ups = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    if above[0]:
        ups = np.concatenate([[0], ups])
    spikes, last = [], None
    for i in ups:
        if last is None or np.min(x[last:i]) < rearm:
            spikes.append(i)
            last = i
    return np.asarray(spikes, dtype=np.float64) * dt


def group_bursts(spike_times, gap=40.0):
    """Split sorted spike times into bursts (a list of arrays) at intervals > ``gap``.

    Args:
        spike_times: ``[n]`` (or ``[n, 1]``), non-decreasing; may be empty.
        gap: the longest inter-spike interval inside a burst (time units), > 0.

    Example:
        >>> bursts = group_bursts([0, 10, 20, 100, 110, 300], gap=40)
        >>> [len(b) for b in bursts], bursts[1].tolist()
        ([3, 2, 1], [100.0, 110.0])
    """
    s = _series(spike_times, "spike_times", 0)
    gap = _positive(gap, "gap")
    if np.any(np.diff(s) < 0):
        raise ValueError("spike_times must be sorted (non-decreasing).")
    if s.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(s) > gap) + 1
    return np.split(s, cuts)


def burst_statistics(x, dt, threshold=2.5, rearm=0.5, gap=40.0):
    """Spikes, bursts, inter-burst intervals and spikes per burst of signal ``x``.

    Arguments as in :func:`detect_spikes` and :func:`group_bursts`.

    Returns:
        dict with ``n_spikes``, ``n_bursts`` (all detected), ``ibi`` (array of
        inter-burst intervals, time units), ``ibi_mean``, ``ibi_sd``,
        ``spikes_per_burst`` (array, complete bursts), ``spb_mean``, ``spb_sd``,
        ``isi_mean`` (mean inter-spike interval inside bursts), ``first_spike``
        and ``last_spike`` (times, from the start of ``x``) and ``duration``
        (``len(x) * dt``), which show whether the signal keeps spiking to its end.
        Statistics of an empty set are NaN.
    """
    spikes = detect_spikes(x, dt, threshold=threshold, rearm=rearm)
    bursts = group_bursts(spikes, gap=gap)
    onsets = np.array([b[0] for b in bursts[1:]])
    ibi = np.diff(onsets) if onsets.size > 1 else np.zeros(0)
    complete = bursts[1:-1]
    spb = np.array([len(b) for b in complete], dtype=np.float64)
    within = np.concatenate([np.diff(b) for b in complete]) if complete else np.zeros(0)

    def _m(a):
        return float(np.mean(a)) if a.size else float("nan")

    def _s(a):
        return float(np.std(a)) if a.size else float("nan")

    return dict(n_spikes=int(spikes.size), n_bursts=len(bursts), ibi=ibi,
                ibi_mean=_m(ibi), ibi_sd=_s(ibi), spikes_per_burst=spb,
                spb_mean=_m(spb), spb_sd=_s(spb), isi_mean=_m(within),
                first_spike=float(spikes[0]) if spikes.size else float("nan"),
                last_spike=float(spikes[-1]) if spikes.size else float("nan"),
                duration=float(np.size(x) * dt))
