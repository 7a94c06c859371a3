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

Each subcommand is a module of this package (``keras_dsr.cli.train``, ...) with
``HELP``, ``add_arguments(parser)`` and ``run(args)``.

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

import os
import signal
import sys


def _interrupted_early(signum, frame):
    """Ctrl-C while Python modules load (nothing written yet): end with 130 at once."""
    sys.stderr.write("keras-dsr: interrupted\n")
    os._exit(130)


def interrupt_early():
    """In the ``keras-dsr`` process itself: Ctrl-C before :func:`main` runs ends it (130)."""
    try:
        signal.signal(signal.SIGINT, _interrupted_early)  # main(): its own handler
    except ValueError:  # pragma: no cover - not the main thread
        pass


if os.path.basename((getattr(sys, "argv", None) or [""])[0]) in ("keras-dsr", "keras-dsr.exe"):
    interrupt_early()  # the console script (not an import by other code)

import argparse  # noqa: E402
import threading  # noqa: E402

from keras_dsr.cli._args import _recipe  # noqa: E402,F401  (tests build recipes from options)
from keras_dsr.cli._interrupt import _INTERRUPTED, _on_sigint  # noqa: E402
from keras_dsr.cli._shared import BACKENDS, UsageError  # noqa: E402

#: The subcommands, in the order of ``keras-dsr --help``: each a module of this package.
COMMANDS = ("systems", "simulate", "train", "evaluate", "generate", "plot", "reconstruct",
            "zoo", "demo")


def backend_error(backend):
    """None if the package of ``backend`` imports, else a one-line error text."""
    import importlib

    try:
        importlib.import_module(backend)
    except Exception as e:  # noqa: BLE001 - ImportError, or a broken installation
        return (f"--backend {backend}: the {backend} package cannot be imported ({e}); "
                f"install it or choose another of {', '.join(BACKENDS)}.")
    return None


def requested_backend(argv):
    """The valid ``--backend`` value in ``argv``, or None (absent or invalid)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend")
    known, _ = pre.parse_known_args(argv)
    return known.backend if known.backend in BACKENDS else None


def _version():
    import keras

    import keras_dsr

    return (f"keras-dsr {keras_dsr.__version__} (keras {keras.__version__}, "
            f"backend {keras.backend.backend()})")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: the problem and where to look."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser():
    """The argument parser of ``keras-dsr`` (imports keras_dsr for the Recipe defaults)."""
    import importlib

    from keras_dsr.cli._args import _common

    parser = _Parser(
        prog="keras-dsr", description=__doc__.split("\n")[0],
        epilog="Run 'keras-dsr COMMAND --help' for the options of a command.",
        parents=[_common(True)])
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common(False)]
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=common)
        p.set_defaults(func=module.run)
        module.add_arguments(p)
    return parser


def _select_backend(argv):
    """Set KERAS_BACKEND from ``--backend`` before keras is imported; an error text or None.

    Keras reads its backend once, at import; this package imports Keras only inside
    the commands, so the choice is made here, first.
    """
    backend = requested_backend(argv)
    if backend is None:
        return None  # absent, or invalid: the full parser reports it
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != backend:
        return "--backend must be chosen before keras is imported"
    os.environ["KERAS_BACKEND"] = backend  # first: importing tensorflow imports keras
    return backend_error(backend)


def run(argv):
    """``keras-dsr`` with the arguments ``argv`` (a list); returns the exit code.

    Ctrl-C at any moment (importing the backend, compiling, training, writing) gives
    exit code 130; every file is written atomically, so none is left half-written.
    """
    try:
        return _run(argv)
    except KeyboardInterrupt:  # before the command's own handler is installed
        print("keras-dsr: interrupted", file=sys.stderr)
        return 130


def main(argv=None):
    """The ``keras-dsr`` command (the console script's entry point); returns the exit code.

    ``main(argv)`` with a list runs the command in this process, as :func:`run` does.
    ``main()`` is the process itself, on ``sys.argv[1:]``: after Ctrl-C (exit code 130)
    the process ends at once, without the interpreter's shutdown, during which a
    backend's compile threads that were cut short can crash it (a segmentation fault
    after Ctrl-C); once the command has returned, Ctrl-C is ignored while the
    interpreter shuts down, so the exit code is the command's.
    """
    if argv is not None:
        return run(list(argv))
    code = run(sys.argv[1:])
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    try:  # the work is done: a Ctrl-C now must not kill the interpreter's shutdown (which
        # restores the default SIGINT action, ending the process by the signal: -2)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # pragma: no cover - not the main thread
        pass
    return code


def _run(argv):
    argv = list(argv)
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
    previous = None
    if threading.current_thread() is threading.main_thread():
        _INTERRUPTED.clear()
        previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
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
