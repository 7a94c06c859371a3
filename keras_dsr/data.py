"""Training data: random windows from long trajectories, and loaders for user data.

:class:`TrajectoryWindows` is a ``keras.utils.PyDataset`` (no TensorFlow needed)
that yields batches of random windows ``(batch, T, N)`` cut from one or several
trajectories; :func:`load_trajectory` reads ``.npy`` / ``.csv`` files with
clear errors for bad files.

Examples:
    >>> from keras_dsr.systems import simulate
    >>> x = simulate("lorenz63", 5_000).x
    >>> ds = TrajectoryWindows(x, seq_len=200, batch_size=16, steps_per_epoch=10)
    >>> xb, yb = ds[0]
    >>> xb.shape
    (16, 200, 3)
"""

import os

import keras
import numpy as np

from keras_dsr._checks import check_array, check_int

__all__ = ["TrajectoryWindows", "load_trajectory", "standardize"]

MIN_LENGTH = 10




def standardize(x, mean=None, std=None):
    """z-score ``x [T, N]`` per variable; returns ``(x_std, mean, std)``.

    Pass ``mean``/``std`` to apply known statistics (e.g. of the training set).

    Examples:
        >>> z, m, s = standardize(np.array([[0.0], [2.0]]))
        >>> z.ravel().tolist(), m.tolist(), s.tolist()
        ([-1.0, 1.0], [1.0], [1.0])
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = x.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float64)
        std = x.std(axis=0) if std is None else np.asarray(std, dtype=np.float64)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
        raise ValueError(
            f"standardize: the mean / std of the data are not finite (mean {mean.tolist()}, "
            f"std {std.tolist()}): values up to {np.max(np.abs(x)):.3g} are too large to "
            "standardise in float64; rescale the data first."
        )
    std = np.where(std > 0, std, 1.0)
    return (x - mean) / std, mean, std


def load_trajectory(path, min_length=MIN_LENGTH, delimiter=",", dtype="float32",
                    return_stats=False, standardize_data=False):
    """Load a trajectory ``[T, N]`` from a ``.npy`` or ``.csv`` file.

    ``.npy``: a numeric array [T, N] (or [T] for one variable). ``.csv``: one
    time step per row, one variable per column, separated by ``delimiter``; a
    non-numeric first row is taken as a header and skipped.

    Args:
        path: file path.
        min_length: minimum number of time steps.
        standardize_data: z-score each variable; with ``return_stats=True``
            ``(x, mean, std)`` is returned so generated data can be mapped back.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unsupported extension, unreadable content, wrong shape (not
            [T, N]; a file that looks transposed, N > T, is refused), NaN/inf, or
            fewer than ``min_length`` time steps. The message names the file.

    Examples:
        >>> x = load_trajectory("lorenz.npy")   # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No trajectory file at {path!r}.")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        with open(path, "rb") as fh:
            magic = fh.read(6)
        if magic != b"\x93NUMPY":
            raise ValueError(f"{path!r} is not a valid .npy file (no NumPy header; "
                             f"{os.path.getsize(path)} bytes).")
        try:
            x = np.load(path, allow_pickle=False)
        except ValueError as e:
            if "allow_pickle" in str(e) or "Object arrays" in str(e):
                raise ValueError(f"{path!r} holds Python objects (dtype object), not numbers; "
                                 "save a numeric array [T, N].") from e
            raise ValueError(f"{path!r} is not a valid .npy file (corrupt or truncated: "
                             f"{e}).") from e
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{path!r} is not a valid .npy file (corrupt or truncated: "
                             f"{e}).") from e
    elif ext == ".csv":
        with open(path) as fh:
            lines = [ln for ln in fh.read().splitlines() if ln.strip()]
        if not lines:
            raise ValueError(f"{path!r} is empty.")
        try:
            [float(v) for v in lines[0].split(delimiter)]
            skip = 0
        except ValueError:
            skip = 1  # header row
        try:
            x = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2)
        except ValueError as e:
            raise ValueError(
                f"Could not parse {path!r} as numeric CSV (delimiter {delimiter!r}): {e}"
            ) from e
    else:
        raise ValueError(f"Unsupported file type {ext!r} for {path!r}; expected .npy or .csv.")
    x = check_array(x, f"The data in {path!r}", min_length=min_length, dtype=dtype)
    if x.shape[1] > x.shape[0]:
        raise ValueError(
            f"The data in {path!r} has shape {x.shape}: more variables than time steps. "
            "Expected [T, N] with time along the first axis; transpose it (x.T)."
        )
    if standardize_data:
        try:
            x, mean, std = standardize(x)
        except ValueError as e:
            raise ValueError(f"The data in {path!r}: {e}") from None
        x = x.astype(dtype)
    else:
        x = x.astype(dtype)
        mean, std = np.zeros(x.shape[1]), np.ones(x.shape[1])
    return (x, mean, std) if return_stats else x


class TrajectoryWindows(keras.utils.PyDataset):
    """Random windows ``(batch, seq_len, N)`` from one or several trajectories.

    Each batch draws ``batch_size`` windows; a window first picks a trajectory
    with probability proportional to its number of possible windows
    ``T_k - seq_len + 1`` and then a uniform start. Batch ``i`` of epoch ``e``
    is drawn with the generator ``numpy.random.default_rng([seed, e, i])``, so
    the data are reproducible and independent of worker order. The *order* in which
    ``model.fit`` asks for the batches of an epoch is Keras's: with its default
    ``shuffle=True`` it permutes them with Python's global ``random`` (Keras 3.15's
    PyDataset adapter), so two fits from the same weights see the same windows in a
    different order unless ``keras.utils.set_random_seed`` (or
    :func:`keras_dsr.utils.set_random_seed`, as :func:`keras_dsr.recipes.train` does)
    runs first or ``fit`` gets ``shuffle=False``.

    Each item is ``(x, x)`` (input and target are the same window, as for
    teacher-forced DSR training), or ``((x, u), x)`` when ``inputs`` are given
    (external inputs ``u`` aligned with the observations, cut at the same times).
    With ``noise > 0`` Gaussian noise of standard deviation ``noise`` (in data
    units) is added to the window (input and target alike).

    Args:
        data: an array ``[T, N]`` or a list of them (same N).
        seq_len: window length T, from 10 up to the length of the longest
            trajectory (shorter trajectories are never sampled).
        batch_size: windows per batch.
        steps_per_epoch: batches per epoch (``len(dataset)``).
        inputs: optional external inputs ``[T, K]`` (or a list matching ``data``).
        noise: standard deviation of the augmentation noise (0 = none).
        seed: integer seed (``None``: fresh entropy, not reproducible).
        dtype: dtype of the batches.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of
            ``keras.utils.PyDataset``.

    Examples:
        >>> x = np.random.default_rng(0).normal(size=(1000, 3))
        >>> ds = TrajectoryWindows(x, seq_len=50, batch_size=4, steps_per_epoch=3)
        >>> len(ds), ds[0][0].shape
        (3, (4, 50, 3))
    """

    def __init__(self, data, seq_len, batch_size=16, steps_per_epoch=100, inputs=None,
                 noise=0.0, seed=0, dtype="float32", **kwargs):
        super().__init__(**kwargs)
        trajs = list(data) if isinstance(data, (list, tuple)) else [data]
        if not trajs:
            raise ValueError("data must be an array [T, N] or a non-empty list of them.")
        self.trajectories = [
            check_array(x, f"data[{k}]" if len(trajs) > 1 else "data", MIN_LENGTH,
                        dtype).astype(dtype)
            for k, x in enumerate(trajs)
        ]
        n = {x.shape[1] for x in self.trajectories}
        if len(n) != 1:
            raise ValueError(f"All trajectories must have the same number of variables N, got {sorted(n)}.")
        self.inputs = None
        if inputs is not None:
            ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            if len(ins) != len(self.trajectories):
                raise ValueError(
                    f"inputs must match data: {len(self.trajectories)} trajectories but "
                    f"{len(ins)} input arrays."
                )
            self.inputs = []
            for k, (u, x) in enumerate(zip(ins, self.trajectories)):
                u = check_array(u, f"inputs[{k}]").astype(dtype)
                if u.shape[0] != x.shape[0]:
                    raise ValueError(
                        f"inputs[{k}] has {u.shape[0]} time steps but data[{k}] has "
                        f"{x.shape[0]}; inputs must be aligned with the observations."
                    )
                self.inputs.append(u)
        for name, v, lo in (("seq_len", seq_len, MIN_LENGTH), ("batch_size", batch_size, 1),
                            ("steps_per_epoch", steps_per_epoch, 1)):
            check_int(v, name, lo)
        longest = max(x.shape[0] for x in self.trajectories)
        if seq_len > longest:
            raise ValueError(
                f"seq_len={seq_len} is longer than the longest trajectory ({longest} steps)."
            )
        if not np.isscalar(noise) or not noise >= 0:
            raise ValueError(f"noise must be a number >= 0, got {noise!r}.")
        self.seq_len = int(seq_len)
        self.batch_size = int(batch_size)
        self.steps_per_epoch = int(steps_per_epoch)
        self.noise = float(noise)
        self.seed = seed if seed is not None else int(np.random.SeedSequence().entropy % 2**32)
        self.dtype = dtype
        self.epoch = 0
        n_win = np.array([max(x.shape[0] - self.seq_len + 1, 0) for x in self.trajectories],
                         dtype=np.float64)
        self._probs = n_win / n_win.sum()

    def __len__(self):
        return self.steps_per_epoch

    def window_starts(self, index):
        """(trajectory ids [B], start times [B]) of batch ``index`` this epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        ids = rng.choice(len(self.trajectories), size=self.batch_size, p=self._probs)
        starts = np.empty(self.batch_size, dtype=np.int64)
        for b, k in enumerate(ids):
            starts[b] = rng.integers(0, self.trajectories[k].shape[0] - self.seq_len + 1)
        return ids, starts, rng

    def __getitem__(self, index):
        if not 0 <= int(index) < self.steps_per_epoch:
            raise IndexError(f"index {index} out of range for {self.steps_per_epoch} batches.")
        ids, starts, rng = self.window_starts(index)
        L = self.seq_len
        x = np.stack([self.trajectories[k][s:s + L] for k, s in zip(ids, starts)])
        if self.noise > 0:
            x = (x + self.noise * rng.standard_normal(x.shape)).astype(self.dtype)
        if self.inputs is None:
            return x, x
        u = np.stack([self.inputs[k][s:s + L] for k, s in zip(ids, starts)])
        return (x, u), x

    def on_epoch_end(self):
        self.epoch += 1
