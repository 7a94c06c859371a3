"""Argument types of the ``keras-dsr`` options and the recipe options shared by ``train`` and ``reconstruct``."""

import argparse

from keras_dsr.cli._shared import BACKENDS, MEASURES, METHODS, OBSERVATIONS, UsageError


def _common(defaults):
    """Global options; ``defaults=False`` for the copy each subcommand accepts too."""
    p = argparse.ArgumentParser(add_help=False)
    kw = {} if defaults else {"default": argparse.SUPPRESS}
    p.add_argument("--backend", choices=BACKENDS,
                   help="Keras backend (default: KERAS_BACKEND, else jax)", **kw)
    p.add_argument("--seed", type=_nonneg_int, help="seed of weights, windows and simulated data "
                   "(default 0)", **({"default": 0} if defaults else kw))
    p.add_argument("--quiet", action="store_true", help="no progress output", **kw)
    return p


def _parse_measures(text):
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in MEASURES]
    if bad or not names:
        raise UsageError(f"--measures: unknown measure(s) {bad}; choose from "
                         f"{', '.join(MEASURES)} (comma-separated).")
    return tuple(dict.fromkeys(names))


def _alpha_type(text):
    if text == "adaptive":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'adaptive' or a number in [0, 1], "
                                         f"got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a constant alpha must be in [0, 1], got {value}")
    return value


def _number(text, low=None, low_open=False, what="a number"):
    """A finite float from ``text``, ``> low`` (``low_open``) or ``>= low``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise argparse.ArgumentTypeError(f"expected a number {'>' if low_open else '>='} "
                                         f"{low:g}, got {text!r}")
    return value


def _positive_float(text):
    return _number(text, 0.0, low_open=True)


def _nonneg_float(text):
    return _number(text, 0.0)


def _finite_float(text):
    return _number(text)


def _integer(text, low):
    """An int from ``text``, ``>= low``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
    return value


def _nonneg_int(text):
    return _integer(text, 0)


def _positive_int(text):
    return _integer(text, 1)


CPU_CHUNK = 250  # DEER chunk of the CLI on a CPU: a full Lorenz-63 training run took 0.73x
# the time of the whole-window solve (benchmarks/RESULTS_reconstruct.md)


def _chunk_type(text):
    if text in ("auto", "none"):
        return text
    return _positive_int(text)


def _resolve_chunk(value, seq_len):
    """``--chunk-size``: 'auto' -> CPU_CHUNK on a CPU (if shorter than the window), else None."""
    if value == "none":
        return None
    if value == "auto":
        from keras_dsr.ops.auto import current_platform

        return CPU_CHUNK if current_platform() == "cpu" and seq_len > CPU_CHUNK else None
    return value


# Recipe options: (flag, Recipe field, argparse type, help)
RECIPE_OPTIONS = (
    ("--cell", "cell", str, "latent model"),
    ("--cell-init", "cell_init", str, "initialisation of the cell: 'random' or "
     "'least_squares' (polynomial cell: the field fitted to finite differences first)"),
    ("--latent", "latent_dim", _positive_int, "latent size M (default: N)"),
    ("--observation", "observation", str, "observation model: 'identity' (the first N "
     "latent units are observed) or 'affine' (x = B z, B learned)"),
    ("--hidden", "hidden_dim", _positive_int, "hidden size L"),
    ("--seq-len", "seq_len", _positive_int, "training window length T (steps)"),
    ("--batch-size", "batch_size", _positive_int, "windows per batch"),
    ("--steps", "steps", _positive_int, "optimiser steps in total"),
    ("--steps-per-epoch", "steps_per_epoch", _positive_int, "optimiser steps per epoch"),
    ("--lr", "learning_rate", _positive_float, "initial Adam learning rate (cosine decay)"),
    ("--alpha", "alpha", _alpha_type, "GTF forcing: 'adaptive' or a constant in [0, 1]"),
    ("--gtf-gamma", "gtf_gamma", _finite_float, "adaptive GTF smoothing factor"),
    ("--estimator", "alpha_estimator", str, "adaptive GTF Jacobian-norm estimator"),
    ("--method", "method", str, "DEER method (" + ", ".join(METHODS) + ")"),
    ("--train-length", "train_length", _positive_int, "steps of simulated training data"),
    ("--latent-l2", "latent_l2", _nonneg_float, "LatentL2 penalty on the connection matrices"),
    ("--chunk-size", "chunk_size", _chunk_type, "DEER chunk length in steps: an int, 'none' "
     "(whole window) or 'auto' (default: %d on a CPU, whole window on an accelerator; same "
     "result, less time and memory on a CPU)" % CPU_CHUNK),
)


def add_observation_options(p):
    """``--observe`` and ``--embed`` (:func:`keras_dsr.embedding.prepare`) of ``train`` and
    ``reconstruct``."""
    p.add_argument("--observe", metavar="VARS", help="train on these variables only: "
                   "names (x, y, z, w) or column indices, comma-separated (default: all); "
                   "test data and the floor are observed alike (recorded in the card)")
    p.add_argument("--embed", metavar="auto|DIM:LAG|none", help="delay-embed the observed "
                   "variables: 'auto' (lag from the first minimum of the auto mutual "
                   "information, dimension by false nearest neighbours), 'DIM:LAG' (e.g. "
                   "3:17) or 'none' (default)")


def _add_recipe_options(p):
    from keras_dsr.recipes import CELL_INITS, CELLS, Recipe

    defaults = Recipe()
    g = p.add_argument_group("recipe (defaults: keras_dsr.recipes.Recipe())")
    for flag, field, typ, text in RECIPE_OPTIONS:
        kw = {"choices": CELLS} if field == "cell" else {}
        if field == "cell_init":
            kw = {"choices": CELL_INITS}
        if field == "method":
            kw = {"choices": METHODS}
        if field == "observation":
            kw = {"choices": OBSERVATIONS}
        default = "" if field == "chunk_size" else f" (default: {getattr(defaults, field)})"
        g.add_argument(flag, dest=field, type=typ, default=None, metavar=None if kw else "X",
                       help=text + default, **kw)


def _recipe(args):
    """The Recipe: ``Recipe()`` with the options given on the command line."""
    from keras_dsr.layers.gtf_deer import ESTIMATORS
    from keras_dsr.recipes import Recipe

    changes = {field: getattr(args, field) for _, field, _, _ in RECIPE_OPTIONS
               if getattr(args, field) is not None}
    changes["seed"] = args.seed
    changes["chunk_size"] = _resolve_chunk(changes.get("chunk_size", "auto"),
                                           changes.get("seq_len", Recipe().seq_len))
    if changes.get("alpha_estimator", ESTIMATORS[0]) not in ESTIMATORS:
        raise UsageError(f"--estimator must be one of {', '.join(ESTIMATORS)}.")
    from keras_dsr.data import MIN_LENGTH

    if changes.get("seq_len", MIN_LENGTH) < MIN_LENGTH:  # the training windows' minimum
        raise UsageError(f"--seq-len {changes['seq_len']}: the training window must be at "
                         f"least {MIN_LENGTH} steps.")
    try:
        return Recipe().replace(**changes)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _check_length(recipe, data):
    """The recipe fits the data: window length and latent size (before any training)."""
    if recipe.seq_len > data.x.shape[0]:
        raise UsageError(f"--seq-len {recipe.seq_len} is longer than the training data "
                         f"({data.x.shape[0]} steps); choose a shorter --seq-len.")
    _check_latent(recipe, data.x.shape[1])


def _check_latent(recipe, n_features):
    if (recipe.latent_dim is not None and recipe.latent_dim < n_features
            and recipe.observation != "affine"):
        raise UsageError(f"--latent {recipe.latent_dim}: the latent size must be at least the "
                         f"number of observed variables ({n_features}) with the identity "
                         f"observation (--observation affine allows fewer).")
