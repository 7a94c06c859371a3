"""Figures: written as PNG files, headless."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from keras_dsr import plotting  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _traj(T=2000, N=3, seed=0):
    t = np.arange(T) * 0.01
    rng = np.random.default_rng(seed)
    cols = [np.sin((k + 1) * t + rng.uniform(0, 6)) for k in range(N)]
    return np.stack(cols, 1)


def _is_png(path):
    with open(path, "rb") as fh:
        return fh.read(8) == PNG


def test_attractor_3d_and_2d(tmp_path):
    p = tmp_path / "att.png"
    fig = plotting.plot_attractor(_traj(), _traj(seed=1), path=p, title="L63")
    assert _is_png(p)
    assert len(fig.axes) == 4  # one 3-D view + three projections
    assert fig.axes[0].name == "3d"
    p2 = tmp_path / "att2.png"
    fig2 = plotting.plot_attractor(_traj(N=2), path=p2)
    assert _is_png(p2) and len(fig2.axes) == 1
    with pytest.raises(ValueError, match="at least 2 variables"):
        plotting.plot_attractor(_traj(N=1))


def test_power_spectrum_is_the_dh_spectrum(tmp_path):
    x = _traj(4096)
    p = tmp_path / "ps.png"
    fig = plotting.plot_power_spectrum(x, x[::-1], path=p, dt=0.01)
    assert _is_png(p) and len(fig.axes) == 3
    spec = plotting.smoothed_spectrum(x)
    np.testing.assert_allclose(spec.sum(0), 1.0)
    # the plotted true line is the smoothed spectrum of variable 1
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), np.maximum(spec[:, 0], 1e-300))
    np.testing.assert_allclose(line.get_xdata(), np.fft.rfftfreq(4096, 0.01))


def test_time_series(tmp_path):
    p = tmp_path / "ts.png"
    fig = plotting.plot_time_series(_traj(), _traj(seed=2), path=p, steps=500, dt=0.01,
                                    names=["x", "y", "z"])
    assert _is_png(p) and len(fig.axes) == 3
    assert fig.axes[0].get_lines()[0].get_xdata().size == 500
    assert fig.axes[2].get_ylabel() == "z"


def test_training_curves(tmp_path):
    hist = {"loss": [3.0, 2.0, 1.0], "alpha": [1.0, 0.5, 0.2],
            "val_dstsp": [9.0, float("inf"), 1.0], "val_dh": [0.5, 0.3, 0.2]}
    p = tmp_path / "tc.png"
    fig = plotting.plot_training_curves(hist, path=p)
    assert _is_png(p) and len(fig.axes) == 4
    ax = [a for a in fig.axes if a.get_title() == "val_dstsp"][0]
    xs = ax.get_lines()[0].get_xdata()
    np.testing.assert_array_equal(xs, [1, 3])  # the inf epoch is left out of the line
    with pytest.raises(ValueError, match="not in history"):
        plotting.plot_training_curves(hist, keys=["mae"])
    with pytest.raises(TypeError, match="history must be"):
        plotting.plot_training_curves([])


def test_does_not_change_the_global_backend():
    import matplotlib

    before = matplotlib.get_backend()
    plotting.plot_time_series(_traj(200))
    assert matplotlib.get_backend() == before
