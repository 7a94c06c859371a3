"""experiments/sequence_length: the burst detector (exact values on a constructed
signal) and a smoke run of run.py."""

import os
import sys

import numpy as np
import pytest

from test_examples import run_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXP = os.path.join(ROOT, "experiments", "sequence_length")
sys.path.insert(0, EXP)

from bursts import burst_statistics, detect_spikes, group_bursts  # noqa: E402

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
    with pytest.raises(ValueError):
        detect_spikes(np.zeros(10), DT, threshold=1.0, rearm=2.0)


@pytest.mark.slow
def test_run_smoke(tmp_path):
    res = run_experiment("sequence_length", "--out", tmp_path)
    assert [r["T"] for r in res["rows"]] == [100, 1000]   # the smoke lengths
    for r in res["rows"]:  # D_stsp and D_H of each model: finite numbers
        assert np.isfinite(r["dstsp"]) and r["dstsp"] >= 0.0 and 0.0 <= r["dh"] <= 1.0
        assert r["bursts"]["duration"] > 0
    assert np.isfinite(res["floor"]["dstsp"]) and np.isfinite(res["floor"]["dh"])
    assert res["truth"]["n_bursts"] >= 3 and np.isfinite(res["truth"]["ibi_mean"])
    assert (tmp_path / "results.json").exists() and (tmp_path / "table.md").exists()
