"""Data pipeline: random windows (PyDataset) and file loaders."""

import keras
import numpy as np
import pytest

from keras_dsr.data import TrajectoryWindows, load_trajectory, standardize


def _ramp(T, N=3, offset=0.0):
    # x[t, n] = t + 1000 n + offset: a window's start is readable from its values
    return (np.arange(T)[:, None] + 1000.0 * np.arange(N)[None, :] + offset).astype("float32")


def test_is_a_pydataset_with_the_right_shapes():
    ds = TrajectoryWindows(_ramp(500), seq_len=40, batch_size=8, steps_per_epoch=5)
    assert isinstance(ds, keras.utils.PyDataset)
    assert len(ds) == 5
    x, y = ds[0]
    assert x.shape == (8, 40, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, y)
    # every window is a contiguous slice of the trajectory
    d = np.diff(x, axis=1)
    np.testing.assert_array_equal(d, 1.0)
    np.testing.assert_array_equal(x[:, :, 1] - x[:, :, 0], 1000.0)
    with pytest.raises(IndexError):
        ds[5]


def test_windows_from_full_length_up_to_1e5():
    x = _ramp(100_000, N=2)
    ds = TrajectoryWindows(x, seq_len=100_000, batch_size=2, steps_per_epoch=1)
    xb, _ = ds[0]
    assert xb.shape == (2, 100_000, 2)
    np.testing.assert_array_equal(xb[0], x)  # only one possible window
    ds10 = TrajectoryWindows(x, seq_len=10, batch_size=4, steps_per_epoch=1)
    assert ds10[0][0].shape == (4, 10, 2)


def test_seeding_is_reproducible_and_epochs_differ():
    x = _ramp(2000)
    a = TrajectoryWindows(x, seq_len=20, batch_size=4, steps_per_epoch=3, seed=1)
    b = TrajectoryWindows(x, seq_len=20, batch_size=4, steps_per_epoch=3, seed=1)
    c = TrajectoryWindows(x, seq_len=20, batch_size=4, steps_per_epoch=3, seed=2)
    np.testing.assert_array_equal(a[1][0], b[1][0])
    np.testing.assert_array_equal(a[2][0], a[2][0])  # same index, same batch
    assert not np.array_equal(a[1][0], c[1][0])
    first = a[0][0]
    a.on_epoch_end()
    assert not np.array_equal(first, a[0][0])


def test_starts_are_uniform_over_all_windows():
    x = _ramp(60, N=1)
    ds = TrajectoryWindows(x, seq_len=11, batch_size=500, steps_per_epoch=20, seed=0)
    starts = np.concatenate([ds[i][0][:, 0, 0] for i in range(20)]).astype(int)
    counts = np.bincount(starts, minlength=50)
    assert starts.min() == 0 and starts.max() == 49  # T - seq_len, inclusive
    assert counts.size == 50
    # chi-square against the uniform distribution over 50 starts (10 000 draws)
    chi2 = np.sum((counts - 200.0) ** 2 / 200.0)
    assert chi2 < 90  # 49 dof: p ~ 1e-4


def test_several_trajectories_sampled_by_number_of_windows():
    a = _ramp(1010, N=2)              # 1001 windows of length 10
    b = _ramp(109, N=2, offset=1e6)   # 100 windows
    ds = TrajectoryWindows([a, b], seq_len=10, batch_size=1000, steps_per_epoch=4)
    firsts = np.concatenate([ds[i][0][:, 0, 0] for i in range(4)])
    frac_b = np.mean(firsts >= 1e6)
    np.testing.assert_allclose(frac_b, 100 / 1101, atol=0.02)
    # a trajectory shorter than seq_len is never used
    c = _ramp(15, N=2, offset=5e6)
    ds2 = TrajectoryWindows([a, c], seq_len=20, batch_size=200, steps_per_epoch=2)
    assert np.all(ds2[0][0] < 5e6)


def test_noise_augmentation_and_inputs():
    x = _ramp(300)
    u = np.sin(np.arange(300))[:, None].astype("float32")
    ds = TrajectoryWindows(x, seq_len=30, batch_size=64, steps_per_epoch=2, noise=0.5,
                           inputs=u, seed=3)
    (xb, ub), yb = ds[0]
    clean = TrajectoryWindows(x, seq_len=30, batch_size=64, steps_per_epoch=2, inputs=u,
                              seed=3)[0][0][0]
    np.testing.assert_allclose((xb - clean).std(), 0.5, rtol=0.05)
    np.testing.assert_array_equal(xb, yb)
    # the input window is cut at the same times as the observation window
    t0 = clean[:, 0, 0].astype(int)
    np.testing.assert_array_equal(ub[:, :, 0], np.stack([u[s:s + 30, 0] for s in t0]))


def test_constructor_errors():
    x = _ramp(100)
    with pytest.raises(ValueError, match="seq_len must be an integer >= 10"):
        TrajectoryWindows(x, seq_len=5)
    with pytest.raises(ValueError, match="longer than the longest trajectory"):
        TrajectoryWindows(x, seq_len=101)
    with pytest.raises(ValueError, match="same number of variables"):
        TrajectoryWindows([x, _ramp(100, N=2)], seq_len=10)
    with pytest.raises(ValueError, match="aligned with the observations"):
        TrajectoryWindows(x, seq_len=10, inputs=np.zeros((99, 1)))
    with pytest.raises(ValueError, match="NaN/inf"):
        bad = x.copy()
        bad[7, 2] = np.nan
        TrajectoryWindows(bad, seq_len=10)
    with pytest.raises(ValueError, match=r"shape \[T, N\]"):
        TrajectoryWindows(np.zeros((10, 10, 2)), seq_len=10)
    with pytest.raises(ValueError, match="noise must be"):
        TrajectoryWindows(x, seq_len=10, noise=-1.0)


def test_load_npy_and_csv(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 3))
    np.save(tmp_path / "a.npy", x)
    np.testing.assert_allclose(load_trajectory(tmp_path / "a.npy"), x, rtol=1e-6)
    np.savetxt(tmp_path / "a.csv", x, delimiter=",", header="x,y,z", comments="")
    got, mean, std = load_trajectory(tmp_path / "a.csv", standardize_data=True,
                                     return_stats=True, dtype="float64")
    np.testing.assert_allclose(got * std + mean, x, atol=1e-9)
    np.testing.assert_allclose(got.std(0), 1.0, atol=1e-9)
    np.savetxt(tmp_path / "b.csv", x, delimiter=",")  # no header
    np.testing.assert_allclose(load_trajectory(tmp_path / "b.csv"), x, rtol=1e-6)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No trajectory file"):
        load_trajectory(tmp_path / "missing.npy")
    (tmp_path / "a.txt").write_text("1,2\n")
    with pytest.raises(ValueError, match="Unsupported file type '.txt'"):
        load_trajectory(tmp_path / "a.txt")
    np.save(tmp_path / "cube.npy", np.zeros((20, 3, 2)))
    with pytest.raises(ValueError, match=r"shape \[T, N\].*\(20, 3, 2\)"):
        load_trajectory(tmp_path / "cube.npy")
    x = np.ones((50, 2))
    x[12, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(ValueError, match="time step 12, variable 1"):
        load_trajectory(tmp_path / "nan.npy")
    np.save(tmp_path / "short.npy", np.ones((5, 2)))
    with pytest.raises(ValueError, match="too short: 5 time steps, at least 10"):
        load_trajectory(tmp_path / "short.npy")
    np.save(tmp_path / "wide.npy", np.ones((3, 1000)))
    with pytest.raises(ValueError, match="transpose"):
        load_trajectory(tmp_path / "wide.npy", min_length=2)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(ValueError, match="Could not parse"):
        load_trajectory(tmp_path / "bad.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_trajectory(tmp_path / "empty.csv")


def test_standardize_with_given_stats():
    z, m, s = standardize(np.array([[1.0, 2.0], [3.0, 2.0]]))
    np.testing.assert_allclose(z, [[-1.0, 0.0], [1.0, 0.0]])  # constant column: std -> 1
    z2, _, _ = standardize(np.array([[5.0, 2.0]]), mean=m, std=s)
    np.testing.assert_allclose(z2, [[3.0, 0.0]])


def test_fit_consumes_the_dataset():
    x = np.random.default_rng(0).normal(size=(300, 3)).astype("float32")
    ds = TrajectoryWindows(x, seq_len=20, batch_size=4, steps_per_epoch=3)
    model = keras.Sequential([keras.Input((20, 3)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    hist = model.fit(ds, epochs=2, verbose=0)
    assert len(hist.history["loss"]) == 2
