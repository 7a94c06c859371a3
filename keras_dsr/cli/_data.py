"""Data and models as the ``keras-dsr`` subcommands read them: systems, files, model cards, units."""

import dataclasses
import json
import os
import sys

from keras_dsr.cli._shared import DATA_EXT, UsageError, _say
from keras_dsr.cli.card import _card_paths


def _is_data_path(spec):
    return spec.lower().endswith(DATA_EXT) or os.path.sep in spec or os.path.exists(spec)


def _system(name):
    """The registered system ``name`` or a UsageError listing the known ones."""
    from keras_dsr.systems import get_system, list_systems

    try:
        return get_system(name)
    except ValueError:
        raise UsageError(f"unknown system {name!r}; known systems: "
                         f"{', '.join(list_systems())}.") from None


def _autonomous(system):
    """``system``, or a UsageError if it is driven (DSRModel cannot take its input)."""
    from keras_dsr.recipes import check_autonomous

    try:
        check_autonomous(system)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return system


def _simulate(name, steps, **kwargs):
    """``keras_dsr.systems.simulate`` with bad arguments reported as a UsageError."""
    from keras_dsr.systems import simulate

    try:
        return simulate(name, steps, **kwargs)
    except (ValueError, RuntimeError) as e:
        raise UsageError(str(e)) from None


def _load_file(path, standardize=False):
    """``(x, mean, std)`` of a .npy / .csv file [T, N] (UsageError on a bad file).

    ``standardize``: z-score with the file's statistics (else ``x`` is raw).
    """
    from keras_dsr.data import load_trajectory

    if not path.lower().endswith(DATA_EXT):
        raise UsageError(f"{path!r}: expected a .npy or .csv data file or a system name.")
    try:
        return load_trajectory(path, standardize_data=standardize, return_stats=True)
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(str(e)) from None


@dataclasses.dataclass
class Data:
    """A trajectory in model units ``x`` [T, N], with how to map it back and its origin."""

    x: object
    mean: object
    std: object
    dt: object  # sampling interval in time units, or None when unknown
    info: dict  # where the data came from (for the model card)
    system: object = None

    def to_raw(self, y):
        return y * self.std + self.mean


def _training_data(spec, args, recipe):
    """Training data from a system name (simulated) or a .npy / .csv file (standardised)."""
    import numpy as np

    if _is_data_path(spec):
        x, mean, std = _load_file(spec, standardize=True)
        info = {"source": "file", "path": os.path.abspath(spec), "shape": list(x.shape),
                "dt": args.dt}
        return Data(x, np.asarray(mean), np.asarray(std), args.dt, info)
    system = _autonomous(_system(spec))
    _say(args, f"simulating {system.name}: {recipe.train_length} steps (seed {recipe.seed})")
    tr = _simulate(system.name, recipe.train_length, seed=recipe.seed, dt=args.dt,
                   noise=args.noise)
    info = {"source": "system", "system": system.name, "steps": recipe.train_length,
            "seed": recipe.seed, "dt": tr.dt, "noise": args.noise}
    return Data(tr.x.astype("float32"), tr.mean, tr.std, tr.dt, info, system)


def _test_data(spec, args, card, length=None, seed=None):
    """Test data in the model's units: a file, or a system simulated with ``seed``.

    Mapped to model units with the card's standardisation when there is a card,
    else z-scored with its own statistics.
    """
    seed = args.seed + 1 if seed is None else seed
    data = (card or {}).get("data", {})
    obs = _observation(card)
    if _is_data_path(spec):
        raw, system = _load_file(spec)[0].astype("float64"), None
        dt = args.dt if args.dt is not None else (data.get("dt") if data.get("source") == "file"
                                                   else None)
        info = {"source": "file", "path": os.path.abspath(spec), "shape": list(raw.shape)}
    else:
        system = _system(spec)
        dt = args.dt if args.dt is not None else (data.get("dt") if data.get("system") ==
                                                   system.name else None)
        n = (length or _default_test_length()) + (obs.offset if obs is not None else 0)
        _say(args, f"simulating {system.name}: {n} test steps (seed {seed})")
        raw = _simulate(system.name, n, seed=seed, dt=dt, standardize=False).x
        dt = dt or system.dt
        info = {"source": "system", "system": system.name, "steps": n, "seed": seed}
    info["dt"] = dt
    if obs is not None:  # the model's measurement: observed columns, delay embedding
        try:
            raw = obs.apply(raw)
        except ValueError as e:
            raise UsageError(f"{spec!r}: {e} (the model card's data.observation)") from None
        info["observation"] = obs.to_dict()
    mean, std = _units(card, raw)
    return Data(((raw - mean) / std).astype("float32"), mean, std, dt, info, system)


def _observation(card):
    """The measurement the model was trained on (card ``data.observation``), or None."""
    spec = ((card or {}).get("data") or {}).get("observation")
    if spec is None:
        return None
    from keras_dsr.embedding import Observation

    try:
        return Observation.from_dict(spec)
    except (TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"model card: 'data.observation' must be an object with columns, "
                         f"dim and lag ({e}).") from None


def _check_observation_options(args, n_variables=None):
    """``--observe`` (when the number of variables is known) and ``--embed``, before any work."""
    from keras_dsr.embedding import parse_embed, parse_observe

    try:
        parse_embed(args.embed)
        if n_variables is not None:
            parse_observe(args.observe, n_variables)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _observed_training_data(data, args, recipe):
    """``(data, recipe)`` after ``--observe`` / ``--embed``: the observed columns, delay
    embedded, with per-column statistics and the measurement recorded for the card."""
    if args.observe is None and args.embed is None:
        return data, recipe
    from keras_dsr.embedding import prepare

    try:
        prep = prepare(data.x, observe=args.observe, embed=args.embed,
                       latent=recipe.latent_dim, observation=recipe.observation)
    except ValueError as e:
        raise UsageError(str(e)) from None
    obs = prep.observation
    _say(args, f"observed columns {list(obs.columns) if obs.columns else 'all'}; delay "
               f"embedding dimension {obs.dim}, lag {obs.lag} -> {prep.x.shape[1]} "
               f"variables, {prep.x.shape[0]} steps")
    info = dict(data.info, observation=obs.to_dict())
    observed = Data(prep.x, obs.per_column(data.mean), obs.per_column(data.std), data.dt,
                    info, data.system)
    return observed, recipe.replace(**prep.recipe_changes())


def _units(card, raw):
    """``(mean, std)`` mapping data units to model units: the card's, else ``raw``'s own."""
    import numpy as np

    stats = (card or {}).get("standardization")
    if not stats:
        sd = raw.std(0)
        return raw.mean(0), np.where(sd > 0, sd, 1.0)
    mean, std = np.asarray(stats["mean"], float), np.asarray(stats["std"], float)
    if mean.shape != raw.shape[1:]:
        raise UsageError(f"the data have {raw.shape[-1]} variable(s) but the model was "
                         f"trained on {mean.size}.")
    return mean, std


def _default_test_length():
    import inspect

    from keras_dsr.recipes import reconstruct

    return inspect.signature(reconstruct).parameters["test_length"].default


def _load_model(path):
    """A trained DSR model and its card (or None): UsageError for a bad file."""
    import keras

    if not os.path.isfile(path):
        raise UsageError(f"no model file at {path!r}.")
    if not path.endswith(".keras"):
        raise UsageError(f"{path!r}: expected a .keras model file.")
    import zipfile

    if not zipfile.is_zipfile(path):  # a .keras file is a zip archive
        raise UsageError(f"could not load {path!r}: the file is corrupt or truncated (not a "
                         f".keras zip archive; {os.path.getsize(path)} bytes).")
    try:
        model = keras.saving.load_model(path, compile=False)  # generation only
    except Exception as e:  # noqa: BLE001 - anything Keras raises on a bad file
        raise UsageError(f"could not load {path!r} as a Keras model: {e}") from None
    if not hasattr(model, "generate") or getattr(model, "observed_dim", None) is None:
        raise UsageError(f"{path!r} is not a trained keras_dsr DSR model.")
    _check_weights(model, path)
    card = None
    json_path = _card_paths(path)[0]
    if os.path.isfile(json_path):
        try:
            with open(json_path) as fh:
                card = json.load(fh)
        except (OSError, ValueError) as e:
            print(f"keras-dsr: warning: ignoring the unreadable model card {json_path!r}: {e}",
                  file=sys.stderr)
    if card is not None:
        _check_card(card, json_path)
    return _model_units(model, card)


def _model_units(model, card):
    """The command works in the model's standardised units and maps data with the card's
    standardisation: a model that carries its data's units (``DSRModel.data_mean``) gives
    them to the card where the card has none, and generates in model units here."""
    mean = getattr(model, "data_mean", None)
    if mean is None:
        return model, card
    card = dict(card or {})
    card.setdefault("standardization", {"mean": list(mean), "std": list(model.data_std)})
    model.set_normalization(None, None)
    return model, card


EVAL_MIN_STEPS = 200  # D_H smooths the spectra over 20 frequency bins (sigma), D_stsp bins
# each variable into 30: below 200 steps (100 frequency bins) the scores mean nothing


def _check_eval_length(data, spec):
    if data.x.shape[0] < EVAL_MIN_STEPS:
        raise UsageError(f"{spec!r} has {data.x.shape[0]} time steps; evaluating a model "
                         f"needs at least {EVAL_MIN_STEPS}.")


def _check_card(card, path):
    """The model card's fields that are used (standardisation, dt): a clear error if bad."""
    import numpy as np

    if not isinstance(card, dict):
        raise UsageError(f"model card {path!r}: expected a JSON object, got a "
                         f"{type(card).__name__}.")
    stats = card.get("standardization")
    if stats is not None:
        if not isinstance(stats, dict) or "mean" not in stats or "std" not in stats:
            raise UsageError(f"model card {path!r}: 'standardization' must be an object with "
                             "'mean' and 'std' lists.")
        vals = {}
        for key in ("mean", "std"):
            v = stats[key]
            ok = isinstance(v, list) and v and all(
                isinstance(e, (int, float)) and not isinstance(e, bool) for e in v)
            if not ok or not np.all(np.isfinite(np.asarray(v, float))):
                raise UsageError(f"model card {path!r}: standardization {key} = {v!r}; expected "
                                 "a non-empty list of finite numbers.")
            vals[key] = np.asarray(v, float)
        if vals["mean"].shape != vals["std"].shape:
            raise UsageError(f"model card {path!r}: standardization mean has "
                             f"{vals['mean'].size} value(s) but std has {vals['std'].size}.")
        if np.any(vals["std"] <= 0):
            raise UsageError(f"model card {path!r}: standardization std = {stats['std']!r}; "
                             "every std must be > 0.")
    data = card.get("data")
    if data is not None and not isinstance(data, dict):
        raise UsageError(f"model card {path!r}: 'data' must be an object.")
    dt = (data or {}).get("dt")
    if dt is not None and (isinstance(dt, bool) or not isinstance(dt, (int, float))
                           or not np.isfinite(dt) or dt <= 0):
        raise UsageError(f"model card {path!r}: data dt = {dt!r}; expected a positive number "
                         "or null.")
    return card


def _check_weights(model, path):
    import numpy as np
    from keras import ops

    for w in model.weights:
        if not np.all(np.isfinite(ops.convert_to_numpy(w))):
            raise UsageError(f"{path!r}: the weight {w.path!r} holds NaN/inf values; the "
                             "model is unusable (retrain it).")


def _check_features(model, data, spec):
    n = data.x.shape[1]
    if n != model.observed_dim:
        raise UsageError(f"{spec!r} has {n} variable(s) but the model observes "
                         f"{model.observed_dim}.")
