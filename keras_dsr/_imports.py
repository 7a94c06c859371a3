"""What ``import keras_dsr`` arranges without importing Keras.

``import keras_dsr`` is cheap: it imports neither Keras nor a backend. Two things
still have to happen at the right moment, and this module makes them happen:

* **The backend default** (:func:`keras_dsr._backend.ensure_default_backend`) must be
  applied *before* Keras is first imported, because Keras reads its backend once, at
  import. :func:`install` puts a finder on ``sys.meta_path`` that applies it right
  before ``keras`` is first imported, by keras_dsr or by the user's own
  ``import keras``.
* **Registration** of the serialisable classes (``keras_dsr>DSRModel``, the cells,
  layers, regularizers, callbacks, losses and metrics) happens when their modules are
  imported; ``keras.saving.load_model`` finds a class only by its registered name.
  Right after Keras is imported, those modules are imported too (:func:`register`),
  so that ``import keras_dsr`` followed by ``keras.saving.load_model(path)`` works as
  it would with an eager package. When the Keras import came from inside a keras_dsr
  module that is still being executed, registration waits until that keras_dsr
  import has finished (importing the other modules earlier would meet a
  half-executed module).

Once registration is done the finder removes itself from ``sys.meta_path``.
"""

import importlib
import importlib.abc
import sys

from keras_dsr._backend import ensure_default_backend

#: The subpackages/modules whose import registers serialisable classes.
REGISTERING = ("cells", "layers", "regularizers", "losses", "metrics", "schedules", "callbacks",
               "models")

_state = {"registered": False, "registering": False}


def _initializing(exclude=()):
    """Whether a ``keras_dsr.*`` module (other than those in ``exclude``) is mid-import."""
    for name, module in list(sys.modules.items()):
        if not name.startswith("keras_dsr.") or name in exclude:
            continue
        if getattr(getattr(module, "__spec__", None), "_initializing", False):
            return True
    return False


def register(exclude=()):
    """Import the modules in :data:`REGISTERING` once Keras is imported; idempotent.

    Does nothing while Keras is not imported (the finder calls it again right after)
    or while a keras_dsr module other than those in ``exclude`` is still being
    executed (then it runs when that import finishes).

    Returns:
        True when every serialisable class is registered.
    """
    if _state["registered"]:
        return True
    if _state["registering"] or "keras" not in sys.modules or _initializing(exclude):
        return False
    _state["registering"] = True
    try:
        for name in REGISTERING:
            importlib.import_module(f"keras_dsr.{name}")
        _state["registered"] = True
    finally:
        _state["registering"] = False
    _uninstall()
    return True


class _Loader(importlib.abc.Loader):
    """Wraps a module's own loader: after the module has run, try :func:`register`."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        # get_code, get_source, is_package, get_filename, ...: the module's own loader's
        # (``python -m keras_dsr.cli`` runs the module through runpy's get_code).
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # Keep the module's own loader visible (importlib.resources, inspect, reload).
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        register(exclude=(module.__name__,))


class _Finder(importlib.abc.MetaPathFinder):
    """Sees the first ``import keras`` and every keras_dsr import until registration.

    Every ``keras_dsr.*`` module is wrapped, also those found before Keras is
    imported: the outermost one of an import chain that pulls Keras in is the one
    after which registration can run.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "keras":
            ensure_default_backend()  # before the module exists: Keras reads it at import
        elif not fullname.startswith("keras_dsr."):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


_FINDER = _Finder()


def install():
    """Arrange the backend default and registration (see the module docstring)."""
    if "keras" in sys.modules:  # Keras already imported: its backend is final.
        register()
        return
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def _uninstall():
    try:
        sys.meta_path.remove(_FINDER)
    except ValueError:
        pass
