"""The pretrained zoo: reconstructions of standard chaotic systems shipped in the wheel.

Each preset is a ``.keras`` file in ``keras_dsr/zoo/presets/`` with an entry in
``manifest.json`` there: its SHA-256, the system it reconstructs, the recipe that
trained it (:class:`keras_dsr.recipes.Recipe`; rebuilt from scratch by
``python zoo/build.py NAME`` in the repository), and its model card (measures
against a held-out test trajectory and the floor of an independent true
trajectory). Loading checks the file's SHA-256 and uses Keras' safe mode.

Example:
    >>> from keras_dsr import zoo
    >>> zoo.list_presets()                       # doctest: +SKIP
    ['chen', 'chua', 'lorenz63', 'lorenz96', 'rucklidge', 'sprott_b']
    >>> model = zoo.load_preset("lorenz63")      # a DSRModel, on any backend
    >>> traj = model.generate([0.1, 0.2, 0.3], steps=10_000)   # [10000, 3]
"""

import contextlib
import hashlib
import json
import os

from keras_dsr.io import atomic_save_model, atomic_write

__all__ = ["list_presets", "preset_info", "preset_path", "load_preset", "install_preset",
           "remove_preset", "sha256", "PresetError", "PRESET_DIR"]

PRESET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets")
MANIFEST = "manifest.json"


class PresetError(ValueError):
    """A preset is unknown, missing from the installation, or corrupted."""


def sha256(path):
    """Hex SHA-256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(preset_dir=None):
    path = os.path.join(preset_dir or PRESET_DIR, MANIFEST)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as e:
        raise PresetError(f"The zoo manifest {MANIFEST!r} is unreadable ({e}); reinstall "
                          "keras-dsr.") from e
    if not isinstance(manifest, dict):
        raise PresetError(f"The zoo manifest {MANIFEST!r} is a {type(manifest).__name__}, "
                          "expected an object; reinstall keras-dsr.")
    return manifest


_SHA_HEX = frozenset("0123456789abcdef")


def _check_entry(name, entry):
    """A manifest entry that can be used: an object with a file name and a SHA-256."""
    if not isinstance(entry, dict):
        raise PresetError(f"Preset {name!r}: its manifest entry is a "
                          f"{type(entry).__name__}, expected an object; reinstall keras-dsr.")
    file = entry.get("file")
    if not isinstance(file, str) or not file or os.path.basename(file) != file:
        raise PresetError(f"Preset {name!r}: manifest 'file' = {file!r}; expected a file name "
                          "in the preset folder; reinstall keras-dsr.")
    digest = entry.get("sha256")
    if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _SHA_HEX):
        raise PresetError(f"Preset {name!r}: manifest 'sha256' = {digest!r}; expected 64 "
                          "lowercase hex digits; reinstall keras-dsr.")
    return entry


def list_presets(preset_dir=None):
    """Names of the shipped presets (sorted)."""
    return sorted(_manifest(preset_dir))


def preset_info(name, preset_dir=None):
    """The manifest entry of preset ``name``: system, recipe, card (measures), sha256.

    Raises:
        PresetError: unknown name (the message lists the known ones).
    """
    manifest = _manifest(preset_dir)
    if not isinstance(name, str) or name not in manifest:
        raise PresetError(f"Unknown preset {name!r}; known presets: {sorted(manifest)}.")
    return dict(_check_entry(name, manifest[name]), name=name)


def preset_path(name, preset_dir=None, verify=True):
    """Path of preset ``name``'s ``.keras`` file, its SHA-256 checked (``verify``).

    Raises:
        PresetError: unknown name, file missing, or checksum mismatch (corrupted).
    """
    info = preset_info(name, preset_dir)
    path = os.path.join(preset_dir or PRESET_DIR, info["file"])
    if not os.path.isfile(path):
        raise PresetError(f"Preset {name!r}: file {info['file']!r} is missing from the "
                          "installation; reinstall keras-dsr.")
    if verify:
        got = sha256(path)
        if got != info["sha256"]:
            raise PresetError(f"Preset {name!r}: file {info['file']!r} is corrupted "
                              f"(SHA-256 {got[:12]}..., expected {info['sha256'][:12]}...); "
                              "reinstall keras-dsr.")
    return path


def load_preset(name, compile=False, preset_dir=None):
    """Load preset ``name`` as a :class:`~keras_dsr.models.DSRModel` (safe mode).

    Args:
        name: a name from :func:`list_presets` (e.g. ``"lorenz63"``).
        compile: also compile it (Adam, observation MSE) for further training.

    Returns:
        the model; ``model.preset`` holds the manifest entry (system, dt, the
        standardisation ``mean``/``std`` of the training data, recipe, card).

    Raises:
        PresetError: unknown, missing or corrupted preset.
    """
    import keras

    from keras_dsr import _imports

    _imports.register()  # keras_dsr's serialisable classes, for load_model

    path = preset_path(name, preset_dir)
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    if compile:
        model.compile(optimizer="adam")
    model.preset = preset_info(name, preset_dir)
    return model


@contextlib.contextmanager
def _zoo_lock(directory):
    """An exclusive lock on the preset folder (POSIX ``flock``; none on Windows)."""
    os.makedirs(directory, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no concurrent builds
        fcntl = None
    with open(os.path.join(directory, ".manifest.lock"), "a") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _update_manifest(name, entry, preset_dir, locked=False):
    """Set (``entry`` a dict) or drop (``entry`` None) ``name`` in the manifest.

    Read-modify-write under an exclusive lock (POSIX), so that builds of different
    presets running side by side keep each other's entries (``locked``: the caller
    holds it).
    """
    directory = preset_dir or PRESET_DIR
    path = os.path.join(directory, MANIFEST)
    with contextlib.nullcontext() if locked else _zoo_lock(directory):
        manifest = _manifest(directory)
        if entry is None:
            manifest.pop(name, None)
        else:
            manifest[name] = entry
        with atomic_write(path) as fh:  # unique temporary name, fsync, os.replace
            json.dump(manifest, fh, indent=1, sort_keys=True)
            fh.write("\n")


def _check_preset_fields(system, dt, mean, std, model):
    """install_preset's arguments: a known system, dt > 0, matching finite mean / std > 0."""
    import numpy as np

    from keras_dsr.systems import list_systems

    if system not in list_systems():
        raise ValueError(f"install_preset: unknown `system` {system!r}; known systems: "
                         f"{', '.join(list_systems())}.")
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating, np.integer)) or \
            not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"install_preset: `dt` must be a finite number > 0, got {dt!r}.")
    arrays = {}
    for key, value in (("mean", mean), ("std", std)):
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"install_preset: `{key}` must be a list of numbers, got "
                             f"{value!r}.") from None
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
            raise ValueError(f"install_preset: `{key}` must be a non-empty 1-D list of finite "
                             f"numbers, got {value!r}.")
        arrays[key] = arr
    if arrays["mean"].size != arrays["std"].size:
        raise ValueError(f"install_preset: `mean` has {arrays['mean'].size} value(s) but "
                         f"`std` has {arrays['std'].size}.")
    if np.any(arrays["std"] <= 0):
        raise ValueError(f"install_preset: every `std` must be > 0, got {std!r}.")
    n = getattr(model, "observed_dim", None)
    if n is not None and n != arrays["mean"].size:
        raise ValueError(f"install_preset: `mean`/`std` have {arrays['mean'].size} value(s) "
                         f"but the model observes {n} variable(s).")


def install_preset(model, name, system, dt, mean, std, recipe=None, card=None,
                   preset_dir=None):
    """Save ``model`` as preset ``name`` and record it in the manifest (with its SHA-256).

    Used by ``zoo/build.py`` (which installs a model only when it meets the
    criteria of :mod:`keras_dsr.zoo.criteria`); also useful for a private zoo in
    ``preset_dir``.

    Args:
        model: a trained DSR model (saved as ``<name>.keras``).
        name: preset name.
        system: name of the system in :mod:`keras_dsr.systems`.
        dt: sampling interval of the training data (time units).
        mean, std: per-feature standardisation of the training data ``[N]``.
        recipe: the :class:`~keras_dsr.recipes.Recipe` (or its dict) that trained it.
        card: dict of measures and training facts, stored in the manifest.
        preset_dir: the folder (default: the package's ``presets``).

    Returns:
        the manifest entry.

    Example:
        >>> entry = install_preset(model, "mine", "lorenz63", 0.01, train.mean, train.std,
        ...                        preset_dir="my_zoo")        # doctest: +SKIP
        >>> load_preset("mine", preset_dir="my_zoo")            # doctest: +SKIP
    """
    import numpy as np

    if not isinstance(name, str) or not name or os.sep in name or name.startswith("."):
        raise ValueError(f"install_preset: `name` must be a non-empty file name, got {name!r}.")
    _check_preset_fields(system, dt, mean, std, model)
    directory = preset_dir or PRESET_DIR
    target = os.path.join(directory, f"{name}.keras")
    if recipe is not None and hasattr(recipe, "to_dict"):
        recipe = recipe.to_dict()
    entry = {
        "file": f"{name}.keras",
        "system": system,
        "dt": float(dt),
        "mean": np.asarray(mean, dtype=float).round(8).tolist(),
        "std": np.asarray(std, dtype=float).round(8).tolist(),
        "recipe": recipe,
    }
    if card is not None:
        entry["card"] = card
    # file, checksum and manifest entry as one step under the folder's lock: two
    # processes installing the same name cannot pair one's file with the other's checksum
    with _zoo_lock(directory):
        atomic_save_model(model, target)  # unique temporary .keras beside it, os.replace
        entry["sha256"] = sha256(target)
        _update_manifest(name, entry, preset_dir, locked=True)
    return entry


def remove_preset(name, preset_dir=None):
    """Drop preset ``name`` from the manifest; returns the path of its (kept) file."""
    _update_manifest(name, None, preset_dir)
    return os.path.join(preset_dir or PRESET_DIR, f"{name}.keras")
