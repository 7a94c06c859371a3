"""Console entry point of ``keras-dsr``: selects the Keras backend, then runs the command.

Keras reads its backend once, at import, and ``import keras_dsr`` imports Keras.
The ``keras-dsr`` script therefore starts here, outside the ``keras_dsr``
package: ``--backend NAME`` (anywhere on the command line) is put into
``KERAS_BACKEND`` before anything imports Keras, and :func:`keras_dsr.cli.main`
runs the command.

Example (a shell):
    $ keras-dsr --backend torch --version
    keras-dsr 0.1.0 (keras 3.15.1, backend torch)
"""

import os
import signal
import sys


def _interrupted_early(signum, frame):
    """Ctrl-C while Python modules load (nothing written yet): end with 130 at once."""
    sys.stderr.write("keras-dsr: interrupted\n")
    os._exit(130)


_SCRIPT = os.path.basename((getattr(sys, "argv", None) or [""])[0])
if __name__ == "__main__" or _SCRIPT in ("keras-dsr", "keras-dsr.exe", "keras_dsr_cli.py"):
    try:  # the keras-dsr process itself (not an import by other code)
        signal.signal(signal.SIGINT, _interrupted_early)  # keras_dsr.cli.main: its own
    except ValueError:  # pragma: no cover - not the main thread
        pass

import argparse  # noqa: E402

BACKENDS = ("jax", "tensorflow", "torch")


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


def main(argv=None):
    """``keras-dsr`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Ctrl-C at any moment (importing the backend, compiling, training, writing) ends
    the process with exit code 130; every file is written atomically, so none is
    left half-written.
    """
    try:
        code = _run(argv)
    except KeyboardInterrupt:  # before the command's own handler is installed
        print("keras-dsr: interrupted", file=sys.stderr)
        code = 130
    if code == 130:
        # End here, without the interpreter's shutdown, during which a backend's
        # compile threads that were cut short can crash the process (a segmentation
        # fault after Ctrl-C).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return code


def _run(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    backend = requested_backend(argv)
    if backend is not None and "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend  # first: importing tensorflow imports keras
        error = backend_error(backend)
        if error:
            print(f"keras-dsr: error: {error}", file=sys.stderr)
            return 2
    from keras_dsr.cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
