"""keras_dsr.bursts: spike and burst detection, exact values on constructed signals."""

import numpy as np
import pytest

import keras_dsr
from keras_dsr.bursts import HR_DEFAULTS, burst_statistics, detect_spikes, group_bursts

DT = 0.05


def _signal(spike_times, total, dt=DT, wiggle_at=()):
    """Baseline -0.5 with Gaussian spikes of height 5 (width 0.3) at spike_times;
    ``wiggle_at``: times where x hovers around the threshold (2.4 <-> 2.6) without
    falling below the re-arm level, which must count as one spike."""
    t = np.arange(int(round(total / dt))) * dt
    x = np.full_like(t, -0.5)
    for s in spike_times:
        x += 5.5 * np.exp(-0.5 * ((t - s) / 0.3) ** 2)
    for w in wiggle_at:
        i = int(round(w / dt))
        x[i:i + 6] = [2.6, 2.4, 2.6, 2.4, 2.6, 1.0]
    return x


# bursts start at these times (time units); each has k spikes 15 time units apart
ONSETS = [20.0, 130.0, 250.0, 345.0, 470.0, 590.0]
COUNTS = [3, 4, 2, 3, 1, 4]


def _spikes():
    return np.concatenate([o + 15.0 * np.arange(k) for o, k in zip(ONSETS, COUNTS)])


def test_detect_spikes_times_and_hysteresis():
    x = _signal(_spikes(), 700.0, wiggle_at=[650.0])
    s = detect_spikes(x, DT, threshold=2.5, rearm=0.5)
    # crossing of 2.5 on the rising flank: ~0.3 * sqrt(2 ln(5.5/3)) = 0.33 before the
    # peak; the wiggle (never below the re-arm level) is one spike, at its first sample
    want = np.concatenate([_spikes() - 0.33, [650.0]])
    assert len(s) == len(want)
    np.testing.assert_allclose(s, want, atol=DT)


def test_group_bursts_and_statistics():
    spikes = _spikes()
    bursts = group_bursts(spikes, gap=40.0)
    assert [len(b) for b in bursts] == COUNTS
    st = burst_statistics(_signal(spikes, 700.0), DT, threshold=2.5, rearm=0.5, gap=40.0)
    assert st["n_spikes"] == sum(COUNTS) and st["n_bursts"] == len(ONSETS)
    # first burst dropped (its onset may precede the window): IBIs from onsets 2..n
    np.testing.assert_allclose(st["ibi"], np.diff(ONSETS[1:]), atol=DT)
    assert st["ibi_mean"] == pytest.approx(np.mean(np.diff(ONSETS[1:])), abs=DT)
    assert st["ibi_sd"] == pytest.approx(np.std(np.diff(ONSETS[1:])), abs=DT)
    # first and last bursts dropped from the spike counts (may be cut by the window)
    np.testing.assert_array_equal(st["spikes_per_burst"], COUNTS[1:-1])
    assert st["spb_mean"] == pytest.approx(np.mean(COUNTS[1:-1]))
    assert st["isi_mean"] == pytest.approx(15.0, abs=DT)
    assert st["first_spike"] == pytest.approx(ONSETS[0] - 0.33, abs=DT)
    assert st["last_spike"] == pytest.approx(ONSETS[-1] + 45.0 - 0.33, abs=DT)
    assert st["duration"] == pytest.approx(700.0)


def test_burst_statistics_window_starting_mid_burst_and_quiet_signal():
    # window starts inside a burst: its truncated first burst must not enter the IBIs
    spikes = _spikes()
    x = _signal(spikes, 700.0)[int(round(40.0 / DT)):]   # cut after 2 spikes of burst 1
    st = burst_statistics(x, DT)
    np.testing.assert_allclose(st["ibi"], np.diff(ONSETS[1:]), atol=DT)
    quiet = burst_statistics(np.zeros(1000), DT)
    assert quiet["n_spikes"] == 0 and quiet["n_bursts"] == 0
    assert np.isnan(quiet["ibi_mean"]) and np.isnan(quiet["spb_mean"])


def test_defaults_column_input_and_lazy_attribute():
    x = _signal(_spikes(), 700.0)
    st = burst_statistics(x, DT, **HR_DEFAULTS)
    assert st["n_bursts"] == len(ONSETS)   # the constructed signal has HR's units
    np.testing.assert_array_equal(detect_spikes(x[:, None], DT), detect_spikes(x, DT))
    assert [b.tolist() for b in group_bursts([0, 10, 100], gap=40)] == [[0.0, 10.0], [100.0]]
    assert group_bursts([]) == []
    assert keras_dsr.bursts.burst_statistics is burst_statistics


@pytest.mark.parametrize("call, match", [
    (lambda: detect_spikes(np.zeros(10), DT, threshold=1.0, rearm=2.0),
     r"rearm \(2.0\) must be below threshold \(1.0\)"),
    (lambda: detect_spikes(np.zeros(10), 0.0), r"dt must be a finite number > 0, got 0.0"),
    (lambda: detect_spikes(np.zeros(10), DT, threshold=np.nan), "must be finite"),
    (lambda: detect_spikes(np.zeros((10, 2)), DT), r"x must be one series .* \(10, 2\)"),
    (lambda: detect_spikes(np.zeros(0), DT), "x is too short: 0 time steps"),
    (lambda: detect_spikes(np.r_[0.0, np.nan], DT), "x contains 1 NaN/inf .* time step 1"),
    (lambda: group_bursts([0.0, 5.0], gap=-1.0), r"gap must be a finite number > 0"),
    (lambda: group_bursts([5.0, 0.0]), "spike_times must be sorted"),
    (lambda: burst_statistics(np.zeros(10), True), "dt must be a finite number > 0"),
])
def test_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


