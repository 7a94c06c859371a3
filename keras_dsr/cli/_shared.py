"""Constants and small helpers shared by the ``keras-dsr`` subcommands."""

import os
import sys

from keras_dsr.cards import LABELS
from keras_dsr.cards import fmt as _fmt
from keras_dsr.io import atomic_write, check_writable


BACKENDS = ("jax", "tensorflow", "torch")


METHODS = ("deer", "quasi", "damped", "sequential")
OBSERVATIONS = ("identity", "affine")


MEASURES = ("dstsp", "dh", "pe", "lyap")


DATA_EXT = (".npy", ".csv")


PE_STEPS = 20


class UsageError(Exception):
    """A user error: printed on stderr as ``keras-dsr CMD: error: ...``, exit code 2."""


def _say(args, *msg):
    if not args.quiet:
        print(*msg, flush=True)


def _verbose(args):
    """Keras fit verbosity: a progress bar on a terminal, a line per epoch otherwise."""
    if args.quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


def _fmt_list(values):
    return "[" + ", ".join(f"{float(v):.6g}" for v in values) + "]"


def _check_out(path, flag="--output"):
    """UsageError unless a file can be written at ``path`` (checked before any work)."""
    try:
        check_writable(path)
    except ValueError as e:
        raise UsageError(f"{flag} {path!r}: {e}") from None


def _check_output(path, extensions):
    if not path.lower().endswith(extensions):
        raise UsageError(f"--output {path!r}: expected a file name ending in "
                         f"{' or '.join(extensions)}.")


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


DATA_HELP = "a system name (see 'keras-dsr systems') or a .npy / .csv file [T, N]"
MEASURES_HELP = ("comma-separated measures: dstsp (D_stsp), dh (D_H), pe (PE(20)), "
                 "lyap (lambda_max; needs dt)")


def length_help():
    """Help text of ``--length``: its default is ``reconstruct``'s test length."""
    from keras_dsr.cli._data import _default_test_length

    return ("test steps simulated for a system (default: as reconstruct, "
            f"{_default_test_length()})")
