"""From a system's states or a recording to training data: which variables, which embedding.

:class:`Observation` is the measurement applied to a series ``[T, D]``: keep some
columns (``columns``), then delay-embed them (``dim``, ``lag``). The same object maps
training data, test data and the independent trajectory of the floor, so they are
all scored in one space. :func:`prepare` builds it from the options of the
``keras-dsr`` command (``--observe``, ``--embed``, ``--latent``, ``--observation``)
and returns the training array with the model settings that go with it.

Example:
    >>> from keras_dsr.systems import simulate
    >>> x = simulate("lorenz63", 5_000, seed=0).x
    >>> p = prepare(x, observe="x", embed="3:17", latent=6)
    >>> p.x.shape, p.channels, p.recipe_changes()
    ((4966, 3), (0,), {'latent_dim': 6, 'observation': 'identity'})
"""

import dataclasses
from typing import Optional, Tuple, Union

import numpy as np

from keras_dsr._checks import check_int
from keras_dsr.embedding.delay import _as_series, _delays, delay_embed
from keras_dsr.embedding.dimension import choose_embedding

__all__ = ["Observation", "Prepared", "parse_embed", "parse_observe", "prepare"]

#: Variable names accepted by ``observe`` for the first four state variables.
VARIABLE_NAMES = ("x", "y", "z", "w")
OBSERVATION_MODELS = ("identity", "affine")


def parse_observe(spec, n_variables):
    """Observed columns from ``spec``: None (all), ``"x,z"``, ``"0,2"``, or a sequence.

    Names ``x``, ``y``, ``z``, ``w`` are columns 0-3. Returns a tuple of distinct
    ints in ``[0, n_variables)`` in the given order, or None for all columns.
    """
    if spec is None:
        return None
    items = spec.split(",") if isinstance(spec, str) else list(np.ravel(spec))
    cols = []
    for item in items:
        key = item.strip().lower() if isinstance(item, str) else item
        if isinstance(key, str) and key in VARIABLE_NAMES:
            col = VARIABLE_NAMES.index(key)
        elif isinstance(key, str) and key.isdigit():
            col = int(key)
        elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            col = int(key)
        else:
            raise ValueError(f"observe: {item!r} is not a variable; use indices 0..."
                             f"{n_variables - 1} or names {', '.join(VARIABLE_NAMES)}.")
        if not 0 <= col < n_variables:
            raise ValueError(f"observe: variable {item!r} (column {col}) is not among the "
                             f"{n_variables} variables of the data.")
        cols.append(col)
    if not cols or len(set(cols)) != len(cols):
        raise ValueError(f"observe must name distinct variables, got {spec!r}.")
    return tuple(cols)


def parse_embed(spec):
    """``None`` / ``"none"`` (no embedding), ``"auto"``, ``"DIM:LAG"`` or ``(dim, lag)``.

    Returns None, ``"auto"`` or a ``(dim, lag)`` pair of ints (dim >= 1, lag >= 1).
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none")):
        return None
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "auto":
            return "auto"
        parts = text.split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"embed must be 'auto', 'none' or 'DIM:LAG' (e.g. '3:17'), "
                             f"got {spec!r}.")
        spec = tuple(int(p) for p in parts)
    if not isinstance(spec, (tuple, list)) or len(spec) != 2:
        raise ValueError(f"embed must be 'auto', 'DIM:LAG' or a (dim, lag) pair, got {spec!r}.")
    return check_int(spec[0], "embed dim", 1), check_int(spec[1], "embed lag", 1)


@dataclasses.dataclass(frozen=True)
class Observation:
    """The measurement: keep ``columns`` of a series, then delay-embed with ``dim``, ``lag``.

    Attributes:
        columns: the observed columns of the input (None: all).
        dim: delay coordinates per channel (1: no embedding).
        lag: delay in samples (int), or ``dim`` increasing offsets from 0.
    """

    columns: Optional[Tuple[int, ...]] = None
    dim: int = 1
    lag: Union[int, Tuple[int, ...]] = 1

    def __post_init__(self):
        _delays(self.dim, self.lag)  # validates dim and lag
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(int(c) for c in self.columns))
        if not isinstance(self.lag, int):
            object.__setattr__(self, "lag", tuple(int(v) for v in self.lag))

    @property
    def offset(self):
        """Samples lost at the end by the embedding (the largest delay)."""
        return int(_delays(self.dim, self.lag)[-1])

    def n_channels(self, n_variables):
        """C: observed channels of data with ``n_variables`` columns."""
        return n_variables if self.columns is None else len(self.columns)

    def n_features(self, n_variables):
        """N = dim * C: columns of the observed (embedded) data."""
        return self.dim * self.n_channels(n_variables)

    def channels_of(self, n_variables):
        """Columns of the output that are the recorded channels themselves (delay 0):
        ``(0, ..., C-1)`` for input with ``n_variables`` columns (delay-major order)."""
        return tuple(range(self.n_channels(n_variables)))

    def apply(self, x):
        """The observation of ``x`` ``[T, D]`` (or ``[T]``): ``[T - offset, dim * C]`` float64."""
        x = _as_series(x)
        if self.columns is not None:
            if max(self.columns) >= x.shape[1]:
                raise ValueError(f"Observation: columns {self.columns} do not exist in data "
                                 f"with {x.shape[1]} columns.")
            x = x[:, list(self.columns)]
        return x if self.dim == 1 else delay_embed(x, self.dim, self.lag)

    def per_column(self, values):
        """Per-variable values ``[D]`` (e.g. a mean or std) as the output's columns ``[dim * C]``.

        Each delay repeats the observed variables, so a per-variable statistic of the
        input is the statistic of every output column made from that variable.
        """
        v = np.asarray(values, dtype=np.float64).ravel()
        if self.columns is not None:
            if max(self.columns) >= v.size:
                raise ValueError(f"Observation: columns {self.columns} do not exist among "
                                 f"{v.size} values.")
            v = v[list(self.columns)]
        return np.tile(v, self.dim)

    def to_dict(self):
        """JSON-ready dict (for a model card); inverse :meth:`from_dict`."""
        lag = self.lag if isinstance(self.lag, int) else list(self.lag)
        cols = None if self.columns is None else list(self.columns)
        return {"columns": cols, "dim": self.dim, "lag": lag}

    @classmethod
    def from_dict(cls, config):
        unknown = sorted(set(config) - {"columns", "dim", "lag"})
        if unknown:
            raise ValueError(f"Observation: unknown field(s) {unknown}.")
        lag = config.get("lag", 1)
        return cls(columns=config.get("columns"), dim=config.get("dim", 1),
                   lag=lag if isinstance(lag, int) else tuple(lag))


@dataclasses.dataclass
class Prepared:
    """What :func:`prepare` returns.

    Attributes:
        x: training data ``[T', N]`` float32 (observed, embedded).
        observation: the :class:`Observation` to apply to test and floor data.
        latent_dim: the model's latent size M (None: M = N).
        observation_model: ``"identity"`` or ``"affine"``.
        channels: the columns of ``x`` that are the recorded channels (delay 0).
    """

    x: np.ndarray
    observation: Observation
    latent_dim: Optional[int]
    observation_model: str
    channels: Tuple[int, ...]

    def recipe_changes(self):
        """The :class:`~keras_dsr.recipes.Recipe` fields these options set."""
        return {"latent_dim": self.latent_dim, "observation": self.observation_model}


def prepare(x, observe=None, embed=None, latent=None, observation="identity", method="fnn",
            max_dim=8):
    """Training data and model settings from a series and the command's options.

    Args:
        x: states or recording ``[T, D]`` (or ``[T]``), already in model units
            (e.g. standardised, with any observation noise added).
        observe: observed variables (``--observe``): None (all), ``"x"``, ``"x,z"``,
            ``"0,2"`` or a sequence of column indices (:func:`parse_observe`).
        embed: delay embedding (``--embed``): None / ``"none"``, ``"auto"`` (lag by
            the first minimum of the auto mutual information, dimension by
            ``method``: :func:`~keras_dsr.embedding.choose_embedding`), ``"DIM:LAG"``
            or ``(dim, lag)``.
        latent: the model's latent size M (``--latent``); None: M = N. With the
            identity observation M >= N (the number of prepared columns); the
            affine observation allows M < N (the lab's EEG setup: 64 channels
            from M = 16).
        observation: ``"identity"`` or ``"affine"`` (``--observation``).
        method, max_dim: dimension criterion and search limit of ``embed="auto"``.

    Returns:
        a :class:`Prepared`. Test data and the floor's trajectory go through
        ``result.observation.apply``; models are scored on ``result.channels``
        (or on all columns) with :func:`keras_dsr.observed.evaluate_observed`.
    """
    x = _as_series(x)
    if observation not in OBSERVATION_MODELS:
        raise ValueError(f"observation must be one of {OBSERVATION_MODELS}, got "
                         f"{observation!r}.")
    columns = parse_observe(observe, x.shape[1])
    emb = parse_embed(embed)
    selected = x if columns is None else x[:, list(columns)]
    if emb == "auto":
        dim, lag, _ = choose_embedding(selected, method=method, max_dim=max_dim)
    elif emb is None:
        dim, lag = 1, 1
    else:
        dim, lag = emb
    obs = Observation(columns=columns, dim=dim, lag=lag)
    y = obs.apply(x)
    n = y.shape[1]
    if latent is not None:
        latent = check_int(latent, "latent", 1)
        if latent < n and observation == "identity":
            raise ValueError(f"latent (M = {latent}) must be >= the number of observed "
                             f"columns N = {n} (channels x embedding dimension) with the "
                             f"identity observation; use observation='affine' for M < N.")
    return Prepared(x=y.astype(np.float32), observation=obs, latent_dim=latent,
                    observation_model=observation, channels=obs.channels_of(x.shape[1]))
