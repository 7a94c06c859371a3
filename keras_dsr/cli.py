"""The ``keras-dsr`` command: reconstruct, train, evaluate and inspect DSR models.

Subcommands (``keras-dsr COMMAND --help`` for the options of each):
    systems      the benchmark systems: name, dimensions, dt, lambda_max, equations
    simulate     simulate a system into a .npy / .csv file
    train        train a GTF-DEER model on a system or a data file; model + card
    evaluate     measures (D_stsp, D_H, PE(20), lambda_max) of a model on data
    generate     free run of a trained model from an initial condition
    plot         attractor, power-spectrum and time-series figures of a model
    reconstruct  simulate, train, score against the floor, figures, model + card
    zoo          pretrained presets: list, show NAME, evaluate NAME (criteria check)
    demo         DEER vs a sequential loop on a GTF-forced shPLRNN (Lorenz-63)

Global options (before or after the command): ``--backend`` selects the Keras
backend (default: ``KERAS_BACKEND``, else JAX), ``--seed`` the seed of weights,
windows and simulated data, ``--quiet`` silences progress output.

Units: a model works in standardised units (each variable z-scored with the
training data's mean and std). ``train`` and ``reconstruct`` write that
transformation into the model card (``MODEL.json`` next to ``MODEL.keras``);
``evaluate``, ``generate`` and ``plot`` read it, so data files, ``--x0`` and
generated files are in the units of the training data. Measures are computed in
the model's standardised units.

Recipe options default to :class:`keras_dsr.recipes.Recipe` (shown in ``--help``).

Exit codes: 0 success; 1 the work failed (the demo's check, or training diverged:
nothing is saved then); 2 a usage or input error (unknown system, missing or malformed file, wrong shapes, an output path
that cannot be written), reported in one line on stderr without a traceback and
before any training; 130 interrupted (Ctrl-C, at any moment).

Files: every model, card, figure, data and score file is written to a temporary
file beside it and moved into place (:mod:`keras_dsr.io`), so a killed or
interrupted command leaves the previous file complete. ``train --resume`` keeps the
last completed epoch in ``MODEL.keras.backup/`` (Keras ``BackupAndRestore``): run
the same command again to continue an interrupted training to the result of an
uninterrupted one.

Example:
    $ keras-dsr reconstruct lorenz63 --steps 300 --output-dir runs/l63
    $ keras-dsr evaluate runs/l63/model.keras lorenz63 --measures dstsp,dh,pe,lyap
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import time

from keras_dsr.io import atomic_path, atomic_write, check_writable

BACKENDS = ("jax", "tensorflow", "torch")
METHODS = ("deer", "quasi", "damped", "sequential")
MEASURES = ("dstsp", "dh", "pe", "lyap")
LABELS = {"dstsp": "D_stsp", "dh": "D_H", "pe": "PE(20)", "lyap": "lambda_max"}
DATA_EXT = (".npy", ".csv")
PE_STEPS = 20


class UsageError(Exception):
    """A user error: printed on stderr as ``keras-dsr CMD: error: ...``, exit code 2."""


def _median_time(fn, args, repeats):
    from keras import ops

    def run():
        out = fn(*args)
        leaves = out if isinstance(out, (tuple, list)) else (out,)
        for leaf in leaves:  # force completion (async backends)
            if isinstance(leaf, (tuple, list)):
                for item in leaf:
                    ops.convert_to_numpy(item)
            else:
                ops.convert_to_numpy(leaf)

    t0 = time.perf_counter()
    run()  # compile + first run
    first = time.perf_counter() - t0
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t0)
    return first, statistics.median(samples)


def demo(args):
    import numpy as np

    import keras
    from keras import ops

    from keras_dsr.cells import ClippedShallowPLRNN
    from keras_dsr.ops import deer_solve, sequential_solve
    from keras_dsr.systems import simulate
    from keras_dsr.utils import compile_function, value_and_grad

    t_len, alpha = args.steps, args.alpha
    print(f"keras_dsr demo | backend {keras.backend.backend()} | T = {t_len} | alpha = {alpha}")
    data = simulate("lorenz63", t_len + 1, seed=args.seed).x.astype("float32")
    zhat = ops.convert_to_tensor(data[None, 1:])  # [1, T, 3]: data-inferred states
    z0 = ops.convert_to_tensor(data[None, 0])
    cell = ClippedShallowPLRNN(latent_dim=3, hidden_dim=args.hidden, seed=args.seed)
    cell.build((None, 3))
    print(f"model: clipped shPLRNN, M = 3, L = {args.hidden}; data: Lorenz-63, dt = 0.01")

    def forced(z, u):  # GTF (docs/method.md, "GTF-DEER"): (1 - alpha) F(z) + alpha * zhat
        return (1.0 - alpha) * cell(z) + alpha * u

    def forced_jac(z, u):
        return (1.0 - alpha) * cell.jacobian(z)

    def solve(method):
        def run(z0, zhat):
            if method == "sequential":
                return sequential_solve(forced, z0, zhat), {}
            return deer_solve(forced, z0, zhat, jacobian_fn=forced_jac, method=method,
                              initial_guess=zhat)
        return compile_function(run)

    seq_fn = solve("sequential")
    z_seq = ops.convert_to_numpy(seq_fn(z0, zhat)[0])
    _, t_seq = _median_time(seq_fn, (z0, zhat), args.repeats)
    rows = [("sequential loop", 0, 0.0, t_seq)]
    for method in ("deer", "quasi"):
        fn = solve(method)
        z, info = fn(z0, zhat)
        diff = float(np.max(np.abs(ops.convert_to_numpy(z) - z_seq)))
        _, t_m = _median_time(fn, (z0, zhat), args.repeats)
        rows.append((method, int(ops.convert_to_numpy(info["iterations"])), diff, t_m))
    print("\nforward solve of the forced recurrence (compiled; median of repeats):")
    print(f"  {'method':<16}{'Newton iters':>13}{'max |z - z_seq|':>18}{'time (ms)':>12}")
    for name, it, diff, t_m in rows:
        print(f"  {name:<16}{it:>13}{diff:>18.2e}{t_m * 1e3:>12.2f}")

    def loss(method):
        def fn(*weights):  # the cell's trainable weights, passed functionally
            def f(z, u):
                free, _ = cell.stateless_call(list(weights), [], z)
                return (1.0 - alpha) * free + alpha * u

            if method == "bptt":
                z = sequential_solve(f, z0, zhat)
            else:
                z, _ = deer_solve(f, z0, zhat, method=method, initial_guess=zhat)
            return ops.mean((z - zhat) ** 2)
        return value_and_grad(fn)

    w_vals = [ops.convert_to_tensor(w) for w in cell.trainable_variables]
    _, g_ref = loss("bptt")(*w_vals)
    g_ref = [ops.convert_to_numpy(g) for g in g_ref]
    _, t_bptt = _median_time(loss("bptt"), w_vals, args.repeats)
    print("\nforward + gradient of the GTF loss (compiled; median of repeats):")
    print(f"  {'method':<16}{'max rel. grad err':>18}{'time (ms)':>12}{'vs BPTT':>9}")
    print(f"  {'BPTT':<16}{0.0:>18.2e}{t_bptt * 1e3:>12.2f}{1.0:>9.2f}")
    for method in ("deer",):
        _, g = loss(method)(*w_vals)
        err = max(float(np.max(np.abs(ops.convert_to_numpy(x) - y)) / np.max(np.abs(y)))
                  for x, y in zip(g, g_ref))
        _, t_m = _median_time(loss(method), w_vals, args.repeats)
        print(f"  {method:<16}{err:>18.2e}{t_m * 1e3:>12.2f}{t_m / t_bptt:>9.2f}")

    # Chaos: the unforced Euler-stepped Lorenz-63 map makes plain DEER overflow.
    def lorenz_euler(z, u=None):
        x, y, w = z[..., 0:1], z[..., 1:2], z[..., 2:3]
        return z + 0.01 * ops.concatenate([10 * (y - x), x * (28 - w) - y, x * y - 8 / 3 * w], -1)

    lz0 = ops.convert_to_tensor(np.array([[1.0, 1.0, 20.0]], "float32"))
    z, info = compile_function(lambda z0: deer_solve(lorenz_euler, z0, length=t_len))(lz0)
    z_ref = compile_function(lambda z0: sequential_solve(lorenz_euler, z0, length=t_len))(lz0)
    same = bool(np.array_equal(ops.convert_to_numpy(z), ops.convert_to_numpy(z_ref)))
    print("\nunforced chaotic map (Euler Lorenz-63, alpha = 0):")
    print(f"  converged = {bool(ops.convert_to_numpy(info['converged']))}, "
          f"fell back to sequential = {bool(ops.convert_to_numpy(info['fell_back']))}, "
          f"values equal sequential = {same}, finite = {bool(ops.convert_to_numpy(info['finite']))}")
    ok = rows[1][2] < 1e-3 and same
    print("\nresult:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1


# ---------------------------------------------------------------- helpers
def _say(args, *msg):
    if not args.quiet:
        print(*msg, flush=True)


def _verbose(args):
    """Keras fit verbosity: a progress bar on a terminal, a line per epoch otherwise."""
    if args.quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


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
    if _is_data_path(spec):
        raw, system = _load_file(spec)[0].astype("float64"), None
        dt = args.dt if args.dt is not None else (data.get("dt") if data.get("source") == "file"
                                                   else None)
        info = {"source": "file", "path": os.path.abspath(spec), "shape": list(raw.shape)}
    else:
        system = _system(spec)
        dt = args.dt if args.dt is not None else (data.get("dt") if data.get("system") ==
                                                   system.name else None)
        n = length or _default_test_length()
        _say(args, f"simulating {system.name}: {n} test steps (seed {seed})")
        raw = _simulate(system.name, n, seed=seed, dt=dt, standardize=False).x
        dt = dt or system.dt
        info = {"source": "system", "system": system.name, "steps": n, "seed": seed}
    info["dt"] = dt
    mean, std = _units(card, raw)
    return Data(((raw - mean) / std).astype("float32"), mean, std, dt, info, system)


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


def _card_paths(model_path):
    stem = os.path.splitext(model_path)[0]
    return stem + ".json", stem + ".md"


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


def _nonneg_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


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
    if recipe.latent_dim is not None and recipe.latent_dim < n_features:
        raise UsageError(f"--latent {recipe.latent_dim}: the latent size must be at least the "
                         f"number of observed variables ({n_features}).")


def _check_out(path, flag="--output"):
    """UsageError unless a file can be written at ``path`` (checked before any work)."""
    try:
        check_writable(path)
    except ValueError as e:
        raise UsageError(f"{flag} {path!r}: {e}") from None


def _machine():
    import keras

    import keras_dsr

    backend = keras.backend.backend()
    device = "cpu"
    try:
        if backend == "jax":
            import jax

            d = jax.devices()[0]
            device = f"{d.platform}: {d.device_kind} x{jax.device_count()}"
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                device = f"cuda: {torch.cuda.get_device_name(0)}"
        elif backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            device = f"gpu x{len(gpus)}" if gpus else "cpu"
    except Exception:  # noqa: BLE001 - device details are informative only
        pass
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "backend": backend, "device": device,
            "keras": keras.__version__, "keras_dsr": keras_dsr.__version__}


def _final_logs(history):
    return {k: float(v[-1]) for k, v in getattr(history, "history", {}).items() if v}


def _card_markdown(model_path, card):
    """The readable MODEL.md of ``card``."""
    recipe = card["recipe"]
    lines = [f"# Model card: {os.path.basename(model_path)}", "",
             f"Created {card['created']} by `{card['command']}`.", "",
             "## Data", ""]
    lines += [f"- {k}: {v}" for k, v in card["data"].items()]
    lines += ["- standardisation: x_model = (x - mean) / std, mean = "
              f"{_fmt_list(card['standardization']['mean'])}, std = "
              f"{_fmt_list(card['standardization']['std'])}", "", "## Recipe", "",
              "| field | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in recipe.items()]
    tr = card["training"]
    lines += ["", "## Training", "", f"- time: {tr['seconds']:.1f} s",
              f"- epochs: {tr['epochs']}"]
    lines += [f"- final {k}: {v:.4g}" for k, v in tr["final"].items()]
    if card.get("scores"):
        lines += ["", "## Measures", "", "| measure | model | floor (true vs true) |",
                  "| --- | --- | --- |"]
        floor = card.get("floor") or {}
        lines += [f"| {LABELS[k]} | {v:.4g} | {_fmt(floor.get(k))} |"
                  for k, v in card["scores"].items()]
    lines += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in card["machine"].items()]
    return "\n".join(lines) + "\n"


def _fmt(v):
    return "-" if v is None else f"{v:.4g}"


def _fmt_list(values):
    return "[" + ", ".join(f"{float(v):.6g}" for v in values) + "]"


def _make_card(args, data, recipe, history, seconds, scores=None, floor=None):
    card = {
        "keras_dsr_model_card": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "keras-dsr " + " ".join(args.argv),
        "data": data.info,
        "standardization": {"mean": [float(v) for v in data.mean],
                            "std": [float(v) for v in data.std]},
        "recipe": recipe.to_dict(),
        "training": {"seconds": seconds,
                     "epochs": history.epoch[-1] + 1 if history.epoch else 0,
                     "final": _final_logs(history)},
        "machine": _machine(),
    }
    if history.epoch and history.epoch[0] > 0:  # train --resume continued a run
        card["training"]["resumed_at_epoch"] = history.epoch[0]
    if scores is not None:
        card["scores"], card["floor"] = scores, floor
    return card


# ---------------------------------------------------------------- Ctrl-C
_INTERRUPTED = []  # set by the SIGINT handler: raised again at the next safe point


def _on_sigint(signum, frame):
    """Record the interrupt and raise KeyboardInterrupt.

    JAX runs Python callbacks from its garbage-collector hook ("_xla_gc_callback");
    a KeyboardInterrupt raised inside one is printed as "Exception ignored" and
    lost. The flag survives: :class:`_InterruptCheck` (after each batch) and
    :func:`_raise_if_interrupted` (after training and after writing) raise it again.
    """
    _INTERRUPTED.append(signum)
    raise KeyboardInterrupt


def _raise_if_interrupted():
    if _INTERRUPTED:
        raise KeyboardInterrupt


def _interrupt_callback_class():
    import keras

    class InterruptCheck(keras.callbacks.Callback):
        """Raise KeyboardInterrupt at the next batch / epoch end after a swallowed Ctrl-C."""

        def on_train_batch_end(self, batch, logs=None):
            _raise_if_interrupted()

        def on_epoch_end(self, epoch, logs=None):
            _raise_if_interrupted()

    return InterruptCheck


def _InterruptCheck():  # noqa: N802 - builds the Keras callback lazily (keras import)
    return _interrupt_callback_class()()


def _backup_dir(model_path):
    return model_path + ".backup"


def _save_model(args, model, path, card):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    import signal
    import threading

    json_path, md_path = _card_paths(path)
    text = json.dumps(card, indent=2, default=float)
    markdown = _card_markdown(path, card)
    # Model and card go to temporary files beside them first (a Ctrl-C or a kill there
    # leaves the previous files untouched); then the three are moved into place one after
    # the other, with Ctrl-C held back for those microseconds so they stay a set.
    block = threading.current_thread() is threading.main_thread() and hasattr(
        signal, "pthread_sigmask")
    try:
        with atomic_path(path) as tmp_model:
            model.save(tmp_model)
            with atomic_write(json_path) as fh:
                fh.write(text)
                with atomic_write(md_path) as fm:
                    fm.write(markdown)
                    if block:
                        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    finally:
        if block:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _say(args, f"wrote {path}, {json_path}, {md_path}")


def _print_scores(scores, floor=None, reference=None):
    """Measure table; ``floor``: an independent true trajectory's scores."""
    with_floor = floor is not None
    head = f"{'measure':<12}{'model':>12}" + (f"{'floor':>12}" if with_floor else "")
    print(head)
    for k, v in scores.items():
        row = f"{LABELS[k]:<12}{v:>12.4g}"
        if with_floor:
            row += f"{_fmt(floor.get(k)):>12}"
        if k == "lyap" and reference is not None:
            row += f"   (true system: {reference:.4g})"
        print(row)
    if with_floor:
        print("floor: the same measures of an independent true trajectory (no model can do "
              "better); '-': none.")
        if "lyap" in scores:
            print("lambda_max floor: the true system's published value.")


def _save_figures(outdir, x_true, x_gen, dt, title, history=None):
    """Attractor, power spectra, time series (and training curves) as PNGs in ``outdir``."""
    from keras_dsr import plotting

    os.makedirs(outdir, exist_ok=True)
    paths = []
    try:
        if x_true.shape[1] >= 2:
            paths.append(os.path.join(outdir, "attractor.png"))
            plotting.plot_attractor(x_true, x_gen, path=paths[-1], title=title)
        paths.append(os.path.join(outdir, "power_spectrum.png"))
        plotting.plot_power_spectrum(x_true, x_gen, path=paths[-1], dt=dt or 1.0, title=title)
        paths.append(os.path.join(outdir, "time_series.png"))
        plotting.plot_time_series(x_true, x_gen, path=paths[-1], dt=dt or 1.0,
                                  steps=min(x_true.shape[0], max(1000, int(20 / (dt or 1.0)))),
                                  title=title)
        if history is not None and getattr(history, "history", None):
            paths.append(os.path.join(outdir, "training.png"))
            plotting.plot_training_curves(history, path=paths[-1], title=title)
    except ImportError as e:
        raise UsageError(f"{e} (figures need matplotlib)") from None
    return paths


# ---------------------------------------------------------------- commands
def cmd_systems(args):
    from keras_dsr.systems import get_system, list_systems

    rows = [(s.name, str(s.n_obs), str(s.dim), f"{s.dt:g}", _fmt(s.lyapunov_ref),
             s.equations.split("   (")[0]) for s in map(get_system, list_systems())]
    head = ("name", "N", "D", "dt", "lambda_max", "equations (default parameters)")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(5)]
    for r in [head] + rows:
        eq = r[5] if len(r[5]) <= 72 else r[5][:71] + "~"
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + eq)
    print("N: observed variables, D: state dimension, dt: default sampling interval "
          "(time units),\nlambda_max: published largest Lyapunov exponent (per time unit).")
    return 0


def _save_array(path, x, columns):
    import numpy as np

    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    if path.lower().endswith(".npy"):
        with atomic_write(path, "wb") as fh:
            np.save(fh, x)
    else:
        with atomic_write(path) as fh:
            np.savetxt(fh, x, delimiter=",", header=",".join(columns), comments="")


def _check_output(path, extensions):
    if not path.lower().endswith(extensions):
        raise UsageError(f"--output {path!r}: expected a file name ending in "
                         f"{' or '.join(extensions)}.")


def cmd_simulate(args):
    system = _system(args.system)
    _check_output(args.output, DATA_EXT)
    _check_out(args.output)
    tr = _simulate(system.name, args.steps, seed=args.seed, noise=args.noise, dt=args.dt,
                   burn_in=args.burn_in, standardize=args.standardize)
    _save_array(args.output, tr.x, [f"x{i + 1}" for i in range(tr.x.shape[1])])
    _say(args, f"wrote {args.output}: {system.name}, {tr.x.shape[0]} steps x {tr.x.shape[1]} "
               f"variables, dt = {tr.dt:g}, seed {args.seed}, noise {args.noise:g}"
               + (", standardised" if args.standardize else ""))
    return 0


def cmd_train(args):
    recipe = _recipe(args)
    _check_output(args.output, (".keras",))
    for path in (args.output, *_card_paths(args.output)):
        _check_out(path)
    data = _training_data(args.data, args, recipe)
    _check_length(recipe, data)
    from keras_dsr.recipes import train

    _say(args, f"training on {data.x.shape[0]} steps x {data.x.shape[1]} variables: {recipe}")
    callbacks = [_InterruptCheck()]
    backup = _backup_dir(args.output)
    if args.resume:
        import keras

        if os.path.isdir(backup):
            _say(args, f"resuming from the backup in {backup}")
        # after each epoch: weights, optimizer state and epoch count; deleted on success
        callbacks.insert(0, keras.callbacks.BackupAndRestore(backup, save_freq="epoch",
                                                             delete_checkpoint=True))
    try:
        model, history, seconds = train(recipe, data.x, callbacks=callbacks,
                                        verbose=_verbose(args))
    except KeyboardInterrupt:
        if args.resume:
            print(f"keras-dsr: the last completed epoch is kept in {backup}; run the same "
                  "command again (with --resume) to continue", file=sys.stderr)
        raise
    _raise_if_interrupted()
    final = _final_logs(history)
    _say(args, f"trained in {seconds:.1f} s; final loss {final.get('loss', float('nan')):.4g}, "
               f"alpha {final.get('alpha', float('nan')):.3f}")
    _save_model(args, model, args.output, _make_card(args, data, recipe, history, seconds))
    _raise_if_interrupted()
    return 0


def cmd_evaluate(args):
    from keras_dsr.measures import evaluate

    measures = _parse_measures(args.measures)
    if args.output:
        _check_out(args.output)
    model, card = _load_model(args.model)
    data = _test_data(args.data, args, card, length=args.length)
    _check_features(model, data, args.data)
    _check_eval_length(data, args.data)
    if "pe" in measures and data.x.shape[0] <= PE_STEPS:
        raise UsageError(f"PE({PE_STEPS}) needs more than {PE_STEPS} test steps.")
    if "lyap" in measures and not data.dt:
        raise UsageError("lambda_max needs the sampling interval: pass --dt.")
    _say(args, f"scoring {args.model} on {data.x.shape[0]} steps of {args.data}")
    scores = evaluate(model, data.x, measures=measures, dt=data.dt, pe_steps=PE_STEPS)
    ref = data.system.lyapunov_ref if data.system is not None else None
    _print_scores(scores, reference=ref)
    if args.output:
        with atomic_write(args.output) as fh:
            json.dump({"model": args.model, "data": data.info, "scores": scores}, fh, indent=2)
        _say(args, f"wrote {args.output}")
    return 0


def cmd_generate(args):
    import numpy as np

    _check_output(args.output, DATA_EXT)
    _check_out(args.output)
    model, card = _load_model(args.model)
    if (args.x0 is None) == (args.source is None):
        raise UsageError("give exactly one of --x0 and --from.")
    if args.x0 is not None:
        try:
            x0_raw = np.array([float(v) for v in args.x0.split(",")])
        except ValueError:
            raise UsageError(f"--x0 {args.x0!r}: expected comma-separated numbers.") from None
        if not np.all(np.isfinite(x0_raw)):
            raise UsageError(f"--x0 {args.x0!r}: every value must be a finite number "
                             "(no nan or inf).")
        if x0_raw.size != model.observed_dim:
            raise UsageError(f"--x0 has {x0_raw.size} value(s); the model observes "
                             f"{model.observed_dim}.")
        if card:
            mean, std = _units(card, x0_raw[None])
        else:  # no card: --x0 is in model units
            mean, std = np.zeros(x0_raw.size), np.ones(x0_raw.size)
        data = Data(None, mean, std, None, {})
        x0 = (x0_raw - mean) / std
    else:
        data = _test_data(args.source, args, card, length=max(args.index + 1, 2))
        _check_features(model, data, args.source)
        if not -data.x.shape[0] <= args.index < data.x.shape[0]:
            raise UsageError(f"--index {args.index} is outside the data "
                             f"({data.x.shape[0]} steps).")
        x0 = data.x[args.index]
    x = model.generate(np.asarray(x0, "float32"), args.steps)
    x = data.to_raw(np.asarray(x, "float64"))
    _save_array(args.output, x, [f"x{i + 1}" for i in range(x.shape[1])])
    _say(args, f"wrote {args.output}: {x.shape[0]} generated steps x {x.shape[1]} variables"
               + ("" if card or args.x0 is None else " (no model card: model units)"))
    return 0


def cmd_plot(args):
    from keras_dsr.measures import generate_for_evaluation

    _check_out(os.path.join(args.output_dir, "attractor.png"), "--output-dir")
    model, card = _load_model(args.model)
    data = _test_data(args.data, args, card, length=args.length)
    _check_features(model, data, args.data)
    _check_eval_length(data, args.data)
    x_gen = generate_for_evaluation(model, data.x)
    paths = _save_figures(args.output_dir, data.x, x_gen, data.dt,
                          f"{os.path.basename(args.model)} on {os.path.basename(args.data)}")
    _say(args, "wrote " + ", ".join(paths))
    return 0


def cmd_reconstruct(args):
    from keras_dsr.recipes import reconstruct

    system = _autonomous(_system(args.system))
    recipe = _recipe(args)
    measures = _parse_measures(args.measures)
    _check_latent(recipe, system.n_obs)
    outdir = args.output_dir or f"keras_dsr_{system.name}"
    for name in ("model.keras", "model.json", "model.md", "attractor.png"):
        _check_out(os.path.join(outdir, name), "--output-dir")
    if recipe.seq_len > recipe.train_length:
        raise UsageError(f"--seq-len {recipe.seq_len} is longer than the training data "
                         f"(--train-length {recipe.train_length}).")
    test_length = args.test_length or _default_test_length()
    if "pe" in measures and test_length <= PE_STEPS:
        raise UsageError(f"PE({PE_STEPS}) needs --test-length > {PE_STEPS}.")
    _say(args, f"reconstructing {system.name} (dt = {system.dt:g}): training on "
               f"{recipe.train_length} simulated steps, testing on {test_length}")
    _say(args, f"recipe: {recipe}")
    res = reconstruct(system.name, recipe, measures=measures, test_length=test_length,
                      with_floor=True, callbacks=[_InterruptCheck()], verbose=_verbose(args))
    _raise_if_interrupted()
    final = _final_logs(res.history)
    _say(args, f"trained in {res.seconds:.1f} s; final loss {final.get('loss', float('nan')):.4g}, "
               f"alpha {final.get('alpha', float('nan')):.3f}")
    print(f"\n{system.name}: free-running model vs the test trajectory")
    floor = dict(res.floor or {})
    if "lyap" in measures and system.lyapunov_ref is not None:
        floor["lyap"] = system.lyapunov_ref
    _print_scores(res.scores, floor=floor)
    data = Data(res.train.x, res.train.mean, res.train.std, res.train.dt,
                {"source": "system", "system": system.name, "steps": recipe.train_length,
                 "seed": recipe.seed, "dt": res.train.dt, "noise": 0.0,
                 "test_steps": test_length, "test_seed": recipe.seed + 1}, system)
    paths = _save_figures(outdir, res.test.x, res.generated, res.train.dt,
                          f"{system.name}: true vs generated", history=res.history)
    _say(args, "wrote " + ", ".join(paths))
    card = _make_card(args, data, recipe, res.history, res.seconds, scores=res.scores,
                      floor=floor)
    _save_model(args, res.model, os.path.join(outdir, "model.keras"), card)
    _raise_if_interrupted()
    return 0


# ---------------------------------------------------------------- parser
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


def cmd_zoo(args):
    """``zoo list | show NAME | evaluate NAME``: the shipped pretrained presets."""
    from keras_dsr import zoo

    try:
        return _zoo(args)
    except zoo.PresetError as e:  # an unknown name, a bad manifest or preset file
        raise UsageError(str(e)) from None


def _zoo(args):
    import json

    from keras_dsr import zoo
    from keras_dsr.zoo.criteria import check_scores, preset_scores, true_reference

    names = zoo.list_presets()
    if args.action == "list":
        if not names:
            print("no presets are shipped with this installation (see zoo/README.md).")
            return 0
        print(f"{'name':<14}{'system':<18}{'D_stsp':>9}{'D_H':>9}{'lambda_max':>12}")
        for name in names:
            info = zoo.preset_info(name)
            sc = info.get("card", {}).get("scores", {})
            print(f"{name:<14}{str(info.get('system')):<18}{_fmt(sc.get('dstsp')):>9}"
                  f"{_fmt(sc.get('dh')):>9}{_fmt(sc.get('lyap')):>12}")
        return 0
    if not args.name:
        raise UsageError(f"zoo {args.action} needs a preset name; shipped: {names}")
    try:
        info = zoo.preset_info(args.name)
        if args.action == "show":
            print(json.dumps(info, indent=1, sort_keys=True))
            return 0
        model = zoo.load_preset(args.name)
    except zoo.PresetError as e:
        raise UsageError(str(e)) from None
    ok, lines = check_scores(args.name, preset_scores(model, args.name),
                             true_reference(args.name))
    print("\n".join(lines))
    print("criteria met" if ok else "criteria NOT met")
    return 0 if ok else 1


def _version():
    import keras

    import keras_dsr

    return (f"keras-dsr {keras_dsr.__version__} (keras {keras.__version__}, "
            f"backend {keras.backend.backend()})")


def build_parser():
    """The argument parser of ``keras-dsr`` (imports keras_dsr for the Recipe defaults)."""
    parser = argparse.ArgumentParser(
        prog="keras-dsr", description=__doc__.split("\n")[0],
        epilog="Run 'keras-dsr COMMAND --help' for the options of a command.",
        parents=[_common(True)])
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common(False)]

    def add(name, func, text):
        p = sub.add_parser(name, help=text, description=text, parents=common)
        p.set_defaults(func=func)
        return p

    data_help = "a system name (see 'keras-dsr systems') or a .npy / .csv file [T, N]"
    add("systems", cmd_systems, "list the benchmark systems")

    p = add("simulate", cmd_simulate, "simulate a system into a .npy / .csv file")
    p.add_argument("system", help="system name (see 'keras-dsr systems')")
    p.add_argument("--steps", type=_positive_int, default=10_000, help="samples (default 10000)")
    p.add_argument("--noise", type=_nonneg_float, default=0.0,
                   help="observation noise, fraction of each variable's std (default 0)")
    p.add_argument("--dt", type=_positive_float, help="sampling interval (default: the system's)")
    p.add_argument("--burn-in", type=_nonneg_float, help="transient discarded, in time units "
                   "(default: the system's)")
    p.add_argument("--standardize", action="store_true", help="z-score each variable")
    p.add_argument("--output", "-o", required=True, help="output file (.npy or .csv)")

    p = add("train", cmd_train, "train a GTF-DEER model; writes MODEL.keras and its card")
    p.add_argument("data", help=data_help + " (standardised for training)")
    p.add_argument("--output", "-o", required=True, help="model file (.keras); the card "
                   "goes next to it (.json, .md)")
    p.add_argument("--dt", type=_positive_float, help="sampling interval: of the file's data (recorded "
                   "in the card), or to simulate a system with")
    p.add_argument("--noise", type=_nonneg_float, default=0.0,
                   help="observation noise of simulated data (default 0)")
    p.add_argument("--resume", action="store_true", help="keep the state of the last "
                   "completed epoch in MODEL.keras.backup/ while training (Keras "
                   "BackupAndRestore) and continue from it if it exists; pass it to the first "
                   "run too. Deleted when training completes")
    _add_recipe_options(p)

    measures_help = ("comma-separated measures: dstsp (D_stsp), dh (D_H), pe (PE(20)), "
                     "lyap (lambda_max; needs dt)")
    length_help = ("test steps simulated for a system (default: as reconstruct, "
                   f"{_default_test_length()})")
    p = add("evaluate", cmd_evaluate, "measures of a trained model on data or a system")
    p.add_argument("model", help="trained model (.keras)")
    p.add_argument("data", help=data_help + "; a system is simulated from seed --seed + 1")
    p.add_argument("--measures", default="dstsp,dh,pe", help=measures_help +
                   " (default dstsp,dh,pe)")
    p.add_argument("--length", type=_positive_int, help=length_help)
    p.add_argument("--dt", type=_positive_float, help="sampling interval (default: card / system)")
    p.add_argument("--output", "-o", help="also write the scores as JSON")

    p = add("generate", cmd_generate, "free run of a trained model")
    p.add_argument("model", help="trained model (.keras)")
    p.add_argument("--x0", help="initial observation, comma-separated, in data units "
                   "(write --x0=-1,2,3 when the first value is negative)")
    p.add_argument("--from", dest="source", help="take the initial observation from " +
                   data_help)
    p.add_argument("--index", type=int, default=0, help="time step of --from (default 0)")
    p.add_argument("--steps", type=_positive_int, default=10_000, help="steps (default 10000)")
    p.add_argument("--dt", type=_positive_float, help=argparse.SUPPRESS)
    p.add_argument("--output", "-o", required=True, help="output file (.npy or .csv)")

    p = add("plot", cmd_plot, "attractor, power spectra and time series of a model (PNG)")
    p.add_argument("model", help="trained model (.keras)")
    p.add_argument("data", help=data_help)
    p.add_argument("--output-dir", default=".", help="folder for the PNGs (default .)")
    p.add_argument("--length", type=_positive_int, help=length_help)
    p.add_argument("--dt", type=_positive_float, help="sampling interval (default: card / system)")

    p = add("reconstruct", cmd_reconstruct,
            "simulate a system, train, score against the floor; figures, model and card")
    p.add_argument("system", help="system name (see 'keras-dsr systems')")
    p.add_argument("--output-dir", help="output folder (default ./keras_dsr_SYSTEM)")
    p.add_argument("--test-length", type=_positive_int, help=length_help.replace(
        "test steps simulated for a system", "test steps"))
    p.add_argument("--measures", default="dstsp,dh", help=measures_help +
                   " (default dstsp,dh)")
    _add_recipe_options(p)

    p = add("zoo", cmd_zoo, "pretrained presets: list, show NAME, evaluate NAME "
            "(recomputes the measures and checks the criteria; exit 1 if not met)")
    p.add_argument("action", choices=("list", "show", "evaluate"))
    p.add_argument("name", nargs="?", help="preset name (for show / evaluate)")

    p = add("demo", demo, "DEER vs sequential on a GTF-forced shPLRNN (Lorenz-63)")
    p.add_argument("--steps", type=int, default=10_000, help="sequence length T")
    p.add_argument("--alpha", type=float, default=0.3, help="GTF forcing in [0, 1)")
    p.add_argument("--hidden", type=int, default=50, help="hidden units L")
    p.add_argument("--repeats", type=int, default=5, help="timing repeats")
    return parser


def _select_backend(argv):
    """Set KERAS_BACKEND from ``--backend`` before keras is imported; an error text or None.

    The ``keras-dsr`` script (``keras_dsr_cli``) does this before importing this module;
    here it matters for ``main`` called in-process.
    """
    from keras_dsr_cli import backend_error, requested_backend

    backend = requested_backend(argv)
    if backend is None:
        return None  # absent, or invalid: the full parser reports it
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != backend:
        return "--backend must be chosen before keras is imported"
    os.environ["KERAS_BACKEND"] = backend  # first: importing tensorflow imports keras
    return backend_error(backend)


def main(argv=None):
    """Run ``keras-dsr`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    error = _select_backend(argv)
    if error:
        print(f"keras-dsr: error: {error}", file=sys.stderr)
        return 2
    import keras_dsr  # noqa: F401  (default backend)

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return e.code if isinstance(e.code, int) else 0
    args.argv = argv
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        _INTERRUPTED.clear()
        previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        if args.command == "demo":
            if args.steps < 2:
                raise UsageError("--steps must be >= 2")
            if not 0.0 <= args.alpha < 1.0:
                raise UsageError("--alpha must be in [0, 1)")
        return args.func(args)
    except UsageError as e:
        print(f"keras-dsr {args.command}: error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:  # TrainingDiverged: training failed, nothing was saved
        print(f"keras-dsr {args.command}: {e} Nothing was written.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("keras-dsr: interrupted; nothing was written by the interrupted step",
              file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
